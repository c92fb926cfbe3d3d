"""Text of the report: numbers, knob values and sources formatted for readers, and the one-line
summaries of a verdict (where it breaks, the budget check)."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from ..probe import Gap, Metric, Probe, Ratio
from ..results import LimitResult
from ..stats import Cell
from . import plots

# the source essays, named for readers (code cites them by file name)
SEEDS = {
    "000": "Vorhies, “Things that Aren't Working in Deep Learning” (seed 000)",
    "001": "SyncedReview, “Failures of Deep Learning” (2017), a summary of Shalev-Shwartz, Shamir & Shammah (seed 001)",
    "002": "Chollet, “The limitations of deep learning”, The Keras Blog 2017 (seed 002)",
    "003": "Ramsundar, “What Can't Deep Learning Do?” (seed 003)",
    "004": "Vitay, “Limits of deep learning”, Neurocomputing lecture notes (seed 004)",
}
_SEED_FILE = re.compile(r"(?:\.\./)?(?:shared/)?seeds/(\d{3})_[0-9a-f]+\.txt")


def for_readers(source: str) -> str:
    """'seeds/001_89d0….txt' -> its author and title; other sources unchanged."""
    return _SEED_FILE.sub(lambda m: SEEDS.get(m.group(1), f"seed {m.group(1)}"), source)


# --- small formatting helpers ---------------------------------------------------------------
def fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def fmt_time(t: float | None) -> str:
    if t is None:
        return "—"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_value(v: Any) -> str:
    if isinstance(v, tuple | list):
        return ",".join(fmt_value(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}" if abs(v) >= 1e-4 or v == 0 else f"{v:.3g}"
    return str(v)


def slug(text: str, taken: set[str]) -> str:
    base = "limit-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x")
    anchor, i = base, 2
    while anchor in taken:
        anchor, i = f"{base}-{i}", i + 1
    taken.add(anchor)
    return anchor


def label(metric: Metric) -> str:
    unit = f" [{metric.unit}]" if metric.unit else ""
    arrow = "↑" if metric.direction == "higher" else "↓"
    return f"{metric.name}{unit} ({arrow} better)"


def knob_label(probe: Probe) -> str:
    return f"{probe.knob.name} [{probe.knob.unit}]" if probe.knob.unit else probe.knob.name


def knob_text(probe: Probe) -> str:
    k = probe.knob
    unit = f" [{k.unit}]" if k.unit else ""
    return f"{k.name}{unit}: {k.description} (harder as it {'increases' if k.harder == 'increasing' else 'decreases'})"


def knob_range(probe: Probe, knobs: list[Any]) -> str:
    """The values tried, easy end first: '5–30' for numbers, 'digits, mnist1d' otherwise."""
    if not knobs:
        return "—"
    if all(isinstance(k, int | float) and not isinstance(k, bool) for k in knobs):
        return fmt_value(knobs[0]) if len(knobs) == 1 else f"{fmt_value(knobs[0])}–{fmt_value(knobs[-1])}"
    return ", ".join(fmt_value(k) for k in knobs)


def _cell(verdict: Any, contender: str, knob: Any, metric: str) -> Cell | None:
    return next((c for c in verdict.cells if c.contender == contender and c.metric == metric
                 and repr(c.knob) == repr(knob)), None)


def at_breaking_point(result: LimitResult) -> str:
    """'mlp_adam 0.50 [0.49, 0.51] vs gf2_elimination 1.00 [1.00, 1.00]' at the breaking point
    (or the hardest value tried); for ratio/gap rules the comparison's CI."""
    probe, verdict = result.probe, result.verdict
    if verdict is None or not verdict.best_arm:
        return "—"
    knob = verdict.breaking_point if verdict.breaking_point is not None else list(verdict.best_arm)[-1]
    arm = verdict.best_arm.get(knob)
    rule = probe.rule
    where = f"at {probe.knob.name} = {fmt_value(knob)}: "
    if isinstance(rule, Ratio | Gap):
        ci = verdict.comparisons.get(knob)
        if ci is None:
            return where + "no paired comparison"
        what = "ratio" if isinstance(rule, Ratio) else "gap"
        return where + f"{arm} {what} {_ci(ci)}"
    mine = _cell(verdict, arm, knob, rule.metric)
    helpers = [c for c in probe.contenders if c.role in ("alternative", "remedy")]
    cells = [x for x in (_cell(verdict, h.name, knob, rule.metric) for h in helpers) if x is not None]
    sign = 1 if probe.metric(rule.metric).direction == "higher" else -1
    best = max(cells, key=lambda c: sign * c.mean, default=None)
    text = where + (f"{arm} {_ci((mine.mean, mine.lo, mine.hi))}" if mine else f"{arm} —")
    return text + (f" vs {best.contender} {_ci((best.mean, best.lo, best.hi))}" if best else "")


def _ci(ci: tuple[float, float, float]) -> str:
    return f"{fmt_num(ci[0])} [{fmt_num(ci[1])}, {fmt_num(ci[2])}]"


def fmt_num(x: float) -> str:
    return "—" if not math.isfinite(x) else plots.fmt_number(float(f"{x:.3g}"))


def check_text(result: LimitResult) -> str:
    """The budget check in one line (fairness rule 3), or why there is none."""
    probe, verdict = result.probe, result.verdict
    if verdict is None or verdict.outcome != "holds":
        return ""
    if not probe.budget_fields:
        return "no budget check: this probe declares no training budget to scale"
    check = verdict.budget_check
    if check is None or not check.sides:
        return "budget check not run (run again to complete it)"
    cells = "; ".join(f"{probe.knob.name} = {fmt_value(k)}: {_ci(v)}" for k, v in check.cells.items())
    if check.moves:
        where = (f"breaks at {probe.knob.name} = {fmt_value(check.breaking_point)}" if check.breaking_point is not None
                 else "no break in the values tried")
        return (f"moves with compute: {check.arm} at {check.factor}× budget succeeds past the breaking point and "
                f"{where} ({cells})")
    return f"{check.arm} at {check.factor}× budget: still fails ({cells})"


