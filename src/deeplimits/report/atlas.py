"""The atlas at a glance: every limit's best deep arm on one normalised scale (as rliable puts many
games on one figure).

Per limit, the knob runs from its easy end (0) to its hard end (1) in the order tried, and the
best deep arm's score is normalised so that the claim's line is 1 and no skill is 0:
- threshold rules: (mean − chance) / (success − chance);
- ratio rules (costs): 1 + log(factor / ratio) / log(factor): parity with the alternative is 2, the
  factor is 1, factor² is 0;
- gap rules: 1 + (margin − gap) / margin: no gap is 2, the margin is 1, twice the margin is 0.
Above 1 the deep arm is on the succeeding side; the breaking point is marked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..probe import Gap, Ratio, Threshold
from ..results import LimitResult

OUTCOME_COLOR = {"holds": "#D55E00", "does not hold": "#0072B2", "inconclusive": "#8a7d00", "invalid": "#1b1b1b"}
Y_RANGE = (-0.3, 1.6)


@dataclass(frozen=True)
class AtlasRow:
    limit: str
    family: str
    outcome: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    breaking: float | None


def normalise(result: LimitResult) -> AtlasRow | None:
    """The limit's best-arm curve on the normalised scale, or None when it has not been run."""
    probe, verdict = result.probe, result.verdict
    if verdict is None or not verdict.best_arm:
        return None
    knobs = list(verdict.best_arm)
    rule = probe.rule
    cells = {(c.contender, repr(c.knob)): c for c in verdict.cells if c.metric == rule.metric}
    points = []
    for i, k in enumerate(knobs):
        x = i / (len(knobs) - 1) if len(knobs) > 1 else 0.5
        if isinstance(rule, Threshold):
            cell = cells.get((verdict.best_arm[k], repr(k)))
            metric = probe.metric(rule.metric)
            if cell is None or not math.isfinite(cell.mean):
                continue
            fallback = 0.0 if metric.direction == "higher" else 2 * rule.success
            zero = metric.chance if metric.chance is not None else fallback
            scale = rule.success - zero or 1.0
            ys = [(v - zero) / scale for v in (cell.mean, cell.lo, cell.hi)]
        elif k in verdict.comparisons:
            ci = verdict.comparisons[k]
            if isinstance(rule, Ratio):
                f = math.log(max(rule.factor, 1.0 + 1e-9))
                ys = [1 + (math.log(rule.factor) - math.log(max(v, 1e-12))) / f for v in ci]
            else:
                assert isinstance(rule, Gap)
                ys = [1 + (rule.margin - v) / (rule.margin or 1.0) for v in ci]
        else:
            continue
        mean, a, b = (min(max(y, Y_RANGE[0]), Y_RANGE[1]) for y in ys)
        points.append((x, mean, min(a, b), max(a, b)))
    if not points:
        return None
    bp = verdict.breaking_point
    bx = knobs.index(bp) / (len(knobs) - 1) if bp in knobs and len(knobs) > 1 else (0.5 if bp in knobs else None)
    xs, ys, lo, hi = (tuple(t) for t in zip(*points, strict=True))
    return AtlasRow(probe.id, probe.family, verdict.outcome, xs, ys, lo, hi, bx)


def draw_atlas(fig: Any, rows: list[AtlasRow], ncols: int = 6) -> None:
    """Small multiples, one per limit, family by family, on shared normalised axes."""
    n = len(rows)
    nrows = max(1, -(-n // ncols))
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, row in zip(axes.flat, rows):
        color = OUTCOME_COLOR.get(row.outcome, "#1b1b1b")
        ax.axhspan(1.0, Y_RANGE[1], color="#0072B2", alpha=0.06, linewidth=0)
        ax.axhline(1.0, color="#000000", linestyle="--", linewidth=0.8)
        ax.axhline(0.0, color="#777777", linestyle=":", linewidth=0.8)
        if row.breaking is not None:
            ax.axvline(row.breaking, color="#8a8a8a", linewidth=5, alpha=0.35)
        if len(row.xs) > 1:
            ax.fill_between(row.xs, row.lo, row.hi, color=color, alpha=0.18, linewidth=0)
        ax.plot(row.xs, row.ys, color=color, marker="o", markersize=2.5, linewidth=1.4)
        ax.set_title(f"{row.limit}\n{row.outcome}", fontsize=7, color=color, loc="left", pad=2)
        ax.set_ylim(*Y_RANGE)
        ax.set_xlim(-0.05, 1.05)
        ax.set_xticks([0, 1])
        ax.set_xticklabels(["easy", "hard"], fontsize=6)
        ax.set_yticks([0, 1])
        ax.tick_params(labelsize=6, length=2)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    fig.supylabel("best deep arm, normalised (1 = the claim's line, 0 = no skill)", fontsize=7)
    fig.subplots_adjust(left=0.06, right=0.99, top=1 - 0.45 / fig.get_figheight(), bottom=0.3 / fig.get_figheight(),
                        hspace=0.9, wspace=0.15)


def render_atlas(results: list[LimitResult]) -> str | None:
    """The atlas figure as an SVG data URI (None when nothing has been run)."""
    import base64
    import io

    import matplotlib
    from matplotlib.figure import Figure

    from .figures import RC

    rows = [r for r in (normalise(x) for x in sorted(results, key=lambda x: (x.probe.family, x.probe.id))) if r]
    if not rows:
        return None
    ncols = 6 if len(rows) > 8 else max(2, len(rows))
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(10.0, 0.25 + 1.25 * -(-len(rows) // ncols)))
        draw_atlas(fig, rows, ncols)
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
