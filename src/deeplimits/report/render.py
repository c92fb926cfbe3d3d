"""From stored results to the page: the view model of each limit, its figures, and the template.

Everything a probe or a user wrote (ids, claims, contender names, errors) is data: it reaches the
page only through the autoescaped Jinja2 template, or inside figures embedded as `<img>` data URIs
(an image cannot run script, and matplotlib escapes SVG text).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shlex
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..probe import Gap, Metric, Probe, Profile, Ratio, Threshold
from ..results import LimitResult
from ..stats import MIN_SEEDS, Cell
from . import plots
from .figures import FIGSIZE, SMALL_FIGSIZE, render_panels
from .text import (
    at_breaking_point,
    check_text,
    fmt_seconds,
    fmt_time,
    fmt_value,
    for_readers,
    knob_label,
    knob_range,
    knob_text,
    label,
    slug,
)

OUTCOME_CLASS = {"holds": "holds", "does not hold": "nothold", "inconclusive": "inconclusive",
                 "invalid": "invalid", "not run": "notrun"}
ROLE_ORDER = {"deep": 0, "alternative": 1, "remedy": 2, "challenger": 3}


@dataclass
class FigureView:
    title: str
    uri: str
    alt: str
    notes: list[str] = field(default_factory=list)
    caption: str = ""


@dataclass
class SectionView:
    """What the template shows for one limit."""

    anchor: str
    id: str
    family: str
    claim: str
    sources: list[str]
    version: int
    outcome: str
    badge: str
    sentence: str
    breaking: str
    seeds: str
    wall: str
    knob: str
    rule: str
    control: str
    contenders: list[dict[str, str]]
    metrics: list[dict[str, str]]
    references: list[dict[str, str]]
    figures: list[FigureView]
    reasons: list[str]
    command: str
    n_trials: int
    n_failed: int
    first_error: str
    failed_where: str
    challengers: list[str]
    runs: str
    devices: str
    requires: str
    profile: str = "—"
    tried: str = "—"  # the knob range tried, e.g. "5–30"
    where: str = "—"  # best deep arm vs best helper at the breaking point (or the hardest value)
    budget: str = ""  # the short budget phrase
    budget_check: str = ""
    stats: str = ""  # the CI method and seed count, for captions
    wall_s: float = 0.0
    challenger_rows: list[dict[str, str]] = field(default_factory=list)  # the leaderboard


def rule_text(probe: Probe) -> str:
    rule = probe.rule
    if isinstance(rule, Threshold):
        side = "≥" if probe.metric(rule.metric).direction == "higher" else "≤"
        return f"threshold: success means {rule.metric} {side} {rule.success:g}"
    if isinstance(rule, Ratio):
        return (f"ratio: deep ÷ best alternative on {rule.metric}; the limit holds where the ratio's CI is above "
                f"{rule.factor:g}×")
    base = f"the deep contender's own {rule.baseline_metric}" if rule.baseline_metric else "the best alternative/remedy"
    return f"gap: {base} − deep on {rule.metric}; the limit holds where the gap's CI is above {rule.margin:g}"


def control_text(probe: Probe) -> str:
    c = probe.control
    metric = c.metric or probe.rule.metric
    success = c.success if c.success is not None else getattr(probe.rule, "success", None)
    where = f"{probe.knob.name} = {fmt_value(c.knob)}" if c.knob is not None else "the easy end of the knob"
    side = "≥" if probe.metric(metric).direction == "higher" else "≤"
    goal = f"{metric} {side} {success:g}" if success is not None else metric
    arms = " or ".join(a.name for a in probe.deep_arms)
    return f"{c.description}: {arms} must reach {goal} at {where}"


def reproduce(probe: Probe, profile: Profile) -> str:
    """The command that reruns this section: the profile plus --set/--seeds where the stored
    knob values, settings or seeds differ from the profile's defaults."""
    base = probe.profiles.get(profile.name) or probe.profile("quick")
    parts = ["deeplimits", "run", probe.id, "--profile", base.name]
    if sorted(map(repr, profile.knob)) != sorted(map(repr, base.knob)):
        parts += ["--set", f"{probe.knob.name}={fmt_value(tuple(profile.knob))}"]
    ours, theirs = profile.params(), base.params()
    for name, value in ours.items():
        if name != "name" and name in theirs and value != theirs[name]:
            nested = isinstance(value, tuple) and any(isinstance(v, tuple | list) for v in value)
            parts += ["--set", f"{name}={json.dumps(value) if nested else fmt_value(value)}"]
    if profile.seeds != base.seeds:
        parts += ["--seeds", str(profile.seeds)]
    return " ".join(shlex.quote(p) for p in parts)


def _styles(result: LimitResult) -> dict[str, tuple[str, str, str]]:
    """Contender -> (colour, marker, line style), by role: deep arms warm and solid, alternatives
    blue and dashed, remedies green/orange and dash-dotted, challengers black and dotted."""
    roles = {c.name: c.role for c in result.probe.contenders}
    for r in result.records:
        roles.setdefault(r.contender, r.role)
    seen: dict[str, int] = defaultdict(int)
    out = {}
    for n in _contenders(result):
        colours, linestyle, markers = plots.ROLE_STYLE.get(roles.get(n, "challenger"), plots.ROLE_STYLE["challenger"])
        i = seen[roles.get(n, "challenger")]
        seen[roles.get(n, "challenger")] += 1
        out[n] = (colours[i % len(colours)], markers[i % len(markers)], linestyle)
    return out


def _contenders(result: LimitResult) -> list[str]:
    probe = result.probe
    roles = {c.name: c.role for c in probe.contenders}
    stored = {c.contender for c in result.verdict.cells} if result.verdict else set()
    for r in result.records:
        roles.setdefault(r.contender, r.role)
    names = [n for n in roles if n in stored] or list(roles)
    order = list(roles)
    return sorted(names, key=lambda n: (ROLE_ORDER.get(roles[n], 9), order.index(n)))


def _series(result: LimitResult, metric: str, knobs: list[Any], styles: dict[str, tuple[str, str, str]],
            suffix: str = "", linestyle: str | None = None) -> list[plots.Series]:
    cells: dict[str, dict[str, Cell]] = defaultdict(dict)
    for c in result.verdict.cells:
        if c.metric == metric:
            cells[c.contender][repr(c.knob)] = c
    out = []
    for name in styles:
        mine = cells.get(name)
        if not mine:
            continue
        ks = [k for k in knobs if repr(k) in mine]
        pick = [mine[repr(k)] for k in ks]
        colour, marker, role_style = styles[name]
        out.append(plots.Series(name + suffix, tuple(ks), tuple(c.mean for c in pick), tuple(c.lo for c in pick),
                                tuple(c.hi for c in pick), colour, marker, linestyle or role_style))
    return out


def _refs(probe: Probe, metric: str) -> tuple[plots.RefPoints, ...]:
    out = []
    for i, ref in enumerate(probe.references):
        if ref.points and (ref.metric or probe.rule.metric) == metric:
            marker = plots.MARKERS[(i + 3) % len(plots.MARKERS)]
            out.append(plots.RefPoints(f"[{i + 1}] {ref.source}", tuple(ref.points), marker))
    return tuple(out)


def figures(result: LimitResult) -> list[tuple[FigureView, plots.Panel]]:
    """The figures of one limit, not yet drawn: rule metric, comparison (ratio/gap), other metrics."""
    probe, verdict, profile = result.probe, result.verdict, result.profile
    assert verdict is not None and profile is not None
    knobs = probe.knob.order(list({repr(c.knob): c.knob for c in verdict.cells}.values()) or list(profile.knob))
    base = dict(knobs=tuple(knobs), xlabel=knob_label(probe), knob_log=probe.knob.log_scale)
    styles = _styles(result)
    rule, bp = probe.rule, verdict.breaking_point
    main = probe.metric(rule.metric)
    series = _series(result, main.name, knobs, styles)
    if isinstance(rule, Gap) and rule.baseline_metric:
        series += _series(result, rule.baseline_metric, knobs, styles, f" · {rule.baseline_metric}", "--")
    panel = plots.Panel(**base, ylabel=label(main), series=tuple(series), log_y=main.log_scale,
                        chance=() if main.chance is None else (main.chance,),
                        success=rule.success if isinstance(rule, Threshold) else None, breaking=bp,
                        references=_refs(probe, main.name), size=FIGSIZE)
    out = [(FigureView(f"{main.name} vs {probe.knob.name}", "",
                       f"{main.name} against {probe.knob.name} for each contender, mean and 95% CI", [],
                       f"Lines: mean over {profile.seeds} seeds; bands: 95% Student-t CI; hollow markers: "
                       "published figure; grey band: breaking point."), panel)]
    if isinstance(rule, Ratio | Gap):
        ks = tuple(k for k in knobs if k in verdict.comparisons)
        is_ratio = isinstance(rule, Ratio)
        cmp = plots.Comparison(ks, tuple(verdict.comparisons[k] for k in ks), rule.factor if is_ratio else rule.margin,
                               "factor" if is_ratio else "margin", log_y=is_ratio)
        what = f"{rule.metric}: deep ÷ alternative" if is_ratio else f"gap in {rule.metric}"
        title = "ratio deep ÷ alternative" if is_ratio else "gap baseline − deep"
        out.append((FigureView(f"{title} vs {probe.knob.name}", "", f"{title} with paired 95% CI per knob value",
                               [] if ks else ["no knob value had enough paired seeds for a comparison"],
                               f"Points: the best deep arm against the strongest alternative, paired over "
                               f"{profile.seeds} seeds (ratios: "
                               "geometric mean); bars: 95% Student-t CI; dashed: the rule's line."),
                    plots.Panel(**base, ylabel=what, breaking=bp, comparison=cmp, size=FIGSIZE)))
    out.extend(_secondary(result, knobs, base, styles))
    return out


def _secondary(result: LimitResult, knobs: list[Any], base: dict[str, Any],
               styles: dict[str, tuple[str, str, str]]) -> list[tuple[FigureView, plots.Panel]]:
    """Other measured metrics; log-scale metrics of one unit share a panel (e.g. a quantity and its bound)."""
    probe, verdict = result.probe, result.verdict
    skip = {probe.rule.metric, getattr(probe.rule, "baseline_metric", None)}
    measured = {c.metric for c in verdict.cells if math.isfinite(c.mean)}
    groups: dict[Any, list[Metric]] = {}
    for m in probe.metrics:
        if m.name not in skip and m.name in measured and not m.series:
            groups.setdefault(("log", m.unit) if m.log_scale else m.name, []).append(m)
    out = []
    for group in groups.values():
        series, refs = [], ()
        for j, m in enumerate(group):
            suffix = f" · {m.name}" if len(group) > 1 else ""
            style = plots.LINESTYLES[j % len(plots.LINESTYLES)] if len(group) > 1 else None
            series += _series(result, m.name, knobs, styles, suffix, style)
            refs += _refs(probe, m.name)
        unit = f" [{group[0].unit}]" if group[0].unit else ""
        ylabel = " / ".join(m.name for m in group) + unit if len(group) > 1 else label(group[0])
        chance = tuple(dict.fromkeys(m.chance for m in group if m.chance is not None))
        panel = plots.Panel(**base, ylabel=ylabel, series=tuple(series), log_y=group[0].log_scale, chance=chance,
                            references=refs, size=SMALL_FIGSIZE)
        names = ", ".join(m.name for m in group)
        caption = "; ".join(f"{m.name}: {m.description}" for m in group if m.description)
        out.append((FigureView(f"{names} vs {probe.knob.name}" + (" (log scale)" if panel.log_y else ""), "",
                               f"{names} against {probe.knob.name} for each contender", [], caption), panel))
    return out


# --- one limit ------------------------------------------------------------------------------
def section(result: LimitResult, taken: set[str]) -> SectionView:
    probe, verdict, profile = result.probe, result.verdict, result.profile
    run = verdict is not None and profile is not None
    outcome = verdict.outcome if run else "not run"
    failed = result.failed
    first_error = (failed[0].error or "(no message)") if failed else ""
    if len(first_error) > 3000:
        first_error = first_error[:1500] + "\n…\n" + first_error[-1500:]
    where = sorted({f"{r.contender} at {probe.knob.name}={fmt_value(r.knob)}" for r in failed})
    roles = {c.name: (c.role, c.description) for c in probe.contenders}
    for r in result.records:
        roles.setdefault(r.contender, (r.role, ""))
    refs = [{"n": str(i + 1), "source": r.source, "setup": r.setup, "value": r.value, "provenance": r.provenance,
             "metric": r.metric or probe.rule.metric,
             "points": ", ".join(f"{probe.knob.name}={fmt_value(k)}: {fmt_value(v)}" for k, v in r.points)}
            for i, r in enumerate(probe.references)]
    return SectionView(
        anchor=slug(probe.id, taken), id=probe.id, family=probe.family, claim=probe.claim,
        sources=[for_readers(src) for src in probe.sources], version=probe.version, outcome=outcome,
        badge=OUTCOME_CLASS.get(outcome, "notrun"),
        sentence=verdict.sentence if run else "not run",
        breaking=f"{probe.knob.name} = {fmt_value(verdict.breaking_point)}"
        if run and verdict.breaking_point is not None else "—",
        seeds=str(profile.seeds) if run else "—",
        wall=fmt_seconds(result.wall_time) if run else "—",
        knob=knob_text(probe),
        rule=rule_text(probe), control=control_text(probe),
        contenders=[{"name": n, "role": roles[n][0], "description": roles[n][1]} for n in roles],
        metrics=[{"name": m.name, "description": m.description, "direction": m.direction,
                  "chance": "—" if m.chance is None else f"{m.chance:g}", "unit": m.unit} for m in probe.metrics
                 if not m.series],
        references=refs, figures=[],
        reasons=list(verdict.reasons) if run else [],
        command=reproduce(probe, profile) if run else f"deeplimits run {shlex.quote(probe.id)} --profile quick",
        n_trials=len(result.records), n_failed=len(failed), first_error=first_error,
        failed_where="; ".join(where[:8]) + (f"; … ({len(where) - 8} more)" if len(where) > 8 else ""),
        challengers=[f"{name} broke the limit at {probe.knob.name} = {', '.join(map(fmt_value, ks))}" if ks
                     else f"{name} did not break the limit at any knob value tried"
                     for name, ks in (verdict.challengers.items() if run else [])],
        runs=", ".join(sorted({r.run_id for r in result.records if r.run_id})) or "—",
        devices=", ".join(sorted({r.device for r in result.records})) or "—",
        requires=", ".join(probe.requires) + (f" (extra [{probe.extra}])" if probe.extra else ""),
        profile=profile.name if run else "—",
        tried=knob_range(probe, list(verdict.best_arm) or list(profile.knob)) if run else "—",
        where=at_breaking_point(result) if run else "—",
        budget=probe.budget(profile) if run else "",
        budget_check=check_text(result) if run else "",
        stats=f"mean of {profile.seeds} seeds, 95% Student-t CI" if run else "",
        wall_s=result.wall_time if run else 0.0,
    )


# --- the whole page -------------------------------------------------------------------------
def run_views(runs: Sequence[dict[str, Any]], limit: int = 20) -> list[dict[str, Any]]:
    """Newest first: when each run started and ended, and the versions it ran with."""
    out = []
    for r in list(reversed(runs))[:limit]:
        facts = r.get("facts") or {}
        probes = facts.get("probes") or {}
        ended = r.get("ended")
        out.append({
            "id": r.get("run_id", ""), "started": fmt_time(r.get("started")),
            "ended": fmt_time(ended) if ended else "did not finish",
            "duration": fmt_seconds(ended - r["started"]) if ended and r.get("started") else "—",
            "deeplimits": str(facts.get("deeplimits", "—")), "profile": str(facts.get("profile", "—")),
            "device": str(facts.get("device", "—")) + (f", {facts['cores']} cores" if facts.get("cores") else ""),
            "libraries": ", ".join(f"{k} {facts[k]}" for k in ("python", "torch", "numpy") if k in facts),
            "platform": str(facts.get("platform", "—")),
            "probes": ", ".join(f"{k} v{v}" for k, v in probes.items()) if isinstance(probes, dict) else str(probes),
            "argv": " ".join(shlex.quote(str(a)) for a in facts.get("argv", [])) if facts.get("argv") else "",
        })
    return out


def families(sections: list[SectionView]) -> list[tuple[str, list[SectionView]]]:
    grouped: dict[str, list[SectionView]] = {}
    for s in sections:
        grouped.setdefault(s.family, []).append(s)
    return sorted(grouped.items())


def counts(sections: list[SectionView]) -> list[tuple[str, str, int]]:
    n = defaultdict(int)
    for s in sections:
        n[s.outcome] += 1
    return [(o, OUTCOME_CLASS[o], n[o]) for o in OUTCOME_CLASS if n[o]]


def challenger_rows(result: LimitResult, runs: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """The limit's challengers as a leaderboard: the knob values each broke (it succeeded where every
    deep arm failed), its description (kept in the run's facts) and the budget it was measured at."""
    probe, verdict, profile = result.probe, result.verdict, result.profile
    if verdict is None or profile is None or not verdict.challengers:
        return []
    described: dict[str, str] = {}
    for r in runs:
        described.update(((r.get("facts") or {}).get("challengers") or {}).get(probe.id) or {})
    budget = f"{profile.name} profile, {probe.budget(profile) or 'its budget'}, {profile.seeds} seeds"
    rows = []
    for name, broke in sorted(verdict.challengers.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        mine = [r for r in result.records if r.contender == name]
        failed = sum(r.status != "ok" for r in mine)
        rows.append({"name": name, "description": described.get(name, ""),
                     "broke": f"{probe.knob.name} = {', '.join(map(fmt_value, broke))}" if broke else "none",
                     "trials": f"{len(mine) - failed} ok" + (f", {failed} failed" if failed else ""),
                     "budget": budget})
    return rows


def context(results: list[LimitResult], runs: Sequence[dict[str, Any]], version: str, workers: int = 1,
            cache: Path | None = None) -> dict[str, Any]:
    taken: set[str] = set()
    sections = [section(r, taken) for r in results]
    for s, r in zip(sections, results, strict=True):
        s.challenger_rows = challenger_rows(r, runs)
    pending = [(s, view, panel) for s, r in zip(sections, results, strict=True) if s.outcome != "not run"
               for view, panel in figures(r)]
    drawn = render_panels([p for _, _, p in pending], workers, cache)
    for (s, view, _), (uri, notes) in zip(pending, drawn, strict=True):
        view.uri, view.notes = uri, view.notes + notes
        s.figures.append(view)
    by_family = families(sections)
    from .atlas import render_atlas

    return {"atlas": render_atlas(results), "sections": sections, "families": by_family, "counts": counts(sections),
            "runs": run_views(runs),
            "n_runs": len(runs), "version": version, "min_seeds": MIN_SEEDS,
            "built": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "ordered": [s for _, group in by_family for s in group]}
