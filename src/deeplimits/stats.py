"""Confidence intervals and the shared verdict rules of DESIGN.md.

One data convention (as rliable has one): `scores[contender][knob][seed]` is the metrics dict of a
finished trial, or None for a failed one. A probe only declares its rule and thresholds; the
decision is made here and nowhere else.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from .probe import Gap, Metric, Metrics, Probe, Profile, Ratio, Threshold

Scores = Mapping[str, Mapping[Any, Mapping[int, Metrics | None]]]
MIN_SEEDS = 3  # below this a bootstrap CI says nothing; cells with fewer are unclear
N_RESAMPLES = 2000
OUTCOMES = ("holds", "does not hold", "inconclusive", "invalid")


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean, the robust aggregate rliable recommends for RL scores."""
    return sps.trim_mean(x, 0.25, axis=axis)


STATISTICS: dict[str, Callable[..., Any]] = {"mean": np.mean, "iqm": iqm}


def bootstrap_ci(values: np.ndarray, statistic: str = "mean") -> tuple[float, float, float]:
    """Point estimate and 95% percentile-bootstrap CI (fixed generator: the same data, the same CI)."""
    values = np.asarray(values, dtype=float)
    stat = STATISTICS[statistic]
    point = float(stat(values))
    if len(values) < 2 or np.ptp(values) == 0:
        return point, point, point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.bootstrap((values,), stat, n_resamples=N_RESAMPLES, method="percentile",
                            rng=np.random.default_rng(0), vectorized=True)
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_ci(a: np.ndarray, b: np.ndarray, combine: Callable[[Any, Any], Any],
              statistic: str = "mean") -> tuple[float, float, float]:
    """CI of combine(stat(a), stat(b)) resampling seeds jointly (a and b are paired by seed)."""
    stat = STATISTICS[statistic]
    a, b = np.asarray(a, float), np.asarray(b, float)
    point = float(combine(stat(a), stat(b)))

    def fn(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return combine(stat(x, axis=axis), stat(y, axis=axis))

    if len(a) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return point, point, point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.bootstrap((a, b), fn, paired=True, n_resamples=N_RESAMPLES, method="percentile",
                            rng=np.random.default_rng(0), vectorized=True)
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass(frozen=True)
class Cell:
    """Summary of one (contender, knob, metric): mean and 95% CI over the finished seeds."""

    contender: str
    role: str
    knob: Any
    metric: str
    mean: float
    lo: float
    hi: float
    n: int
    n_failed: int


@dataclass
class Verdict:
    limit: str
    outcome: str
    sentence: str
    breaking_point: Any = None
    reasons: list[str] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    comparisons: dict[Any, tuple[float, float, float]] = field(default_factory=dict)  # ratio/gap per knob
    challengers: dict[str, list[Any]] = field(default_factory=dict)  # knob values each one broke

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "outcome": self.outcome, "sentence": self.sentence,
                "breaking_point": self.breaking_point, "reasons": list(self.reasons),
                "challengers": dict(self.challengers)}


def _side(lo: float, hi: float, success: float, metric: Metric) -> int:
    """+1 clearly succeeding, -1 clearly failing, 0 unclear (the CI straddles the threshold)."""
    if metric.direction == "higher":
        return 1 if lo >= success else -1 if hi < success else 0
    return 1 if hi <= success else -1 if lo > success else 0


def _values(runs: Mapping[int, Metrics | None], metric: str) -> tuple[dict[int, float], int]:
    ok = {s: float(m[metric]) for s, m in runs.items() if m is not None and metric in m}
    return ok, sum(m is None for m in runs.values())


def summarize(probe: Probe, scores: Scores, statistic: str = "mean") -> list[Cell]:
    """Every (contender, knob, metric) cell with its CI: what plots and tables show."""
    roles = {c.name: c.role for c in probe.contenders}
    cells = []
    for name, by_knob in scores.items():
        for knob, runs in by_knob.items():
            for metric in probe.metrics:
                ok, failed = _values(runs, metric.name)
                if not ok and not failed:
                    continue
                point, lo, hi = bootstrap_ci(np.array(list(ok.values())), statistic) if ok else (np.nan,) * 3
                cells.append(Cell(name, roles.get(name, "challenger"), knob, metric.name,
                                  point, lo, hi, len(ok), failed))
    return cells


class _Judge:
    """Classifies each (contender, knob) as clearly succeeding (+1), clearly failing (-1) or unclear (0)."""

    def __init__(self, probe: Probe, scores: Scores, statistic: str) -> None:
        self.probe, self.scores, self.statistic = probe, scores, statistic
        self.rule = probe.rule
        self.notes: list[str] = []
        self.comparisons: dict[Any, tuple[float, float, float]] = {}

    def _seeds(self, name: str, knob: Any, metric: str) -> tuple[dict[int, float], int]:
        return _values(self.scores.get(name, {}).get(knob, {}), metric)

    def threshold_side(self, name: str, knob: Any, metric_name: str, success: float) -> int:
        ok, failed = self._seeds(name, knob, metric_name)
        if not ok and not failed:  # this contender does not report this metric (or was not run here)
            return 0
        if failed:
            self.notes.append(f"{name} at {self.probe.knob.name}={knob}: {failed} failed trial(s)")
            return 0
        if len(ok) < MIN_SEEDS:
            self.notes.append(f"{name} at {self.probe.knob.name}={knob}: {len(ok)} seed(s), need {MIN_SEEDS}")
            return 0
        _, lo, hi = bootstrap_ci(np.array(list(ok.values())), self.statistic)
        return _side(lo, hi, success, self.probe.metric(metric_name))

    def versus(self, name: str, knob: Any, against: list[str]) -> int:
        """Ratio/gap kinds: -1 where `name` is clearly past the factor/margin (the limit's side)."""
        rule = self.rule
        a, failed = self._seeds(name, knob, rule.metric)
        if isinstance(rule, Gap) and rule.baseline_metric:
            b, failed_b = self._seeds(name, knob, rule.baseline_metric)
            pairs = [(b, failed_b)]
        else:
            pairs = [self._seeds(alt, knob, rule.metric) for alt in against]
        sides, found = [], []
        for b, failed_b in pairs:
            common = sorted(set(a) & set(b))
            if failed or failed_b or len(common) < MIN_SEEDS:
                self.notes.append(f"{name} at {self.probe.knob.name}={knob}: too few paired seeds")
                sides.append(0)
                continue
            x, y = np.array([a[s] for s in common]), np.array([b[s] for s in common])
            if isinstance(rule, Ratio):
                ci = paired_ci(x, y, lambda p, q: p / np.maximum(q, 1e-12), self.statistic)
                limit = rule.factor
            else:
                sign = 1.0 if self.probe.metric(rule.metric).direction == "higher" else -1.0
                ci = paired_ci(y, x, lambda p, q: sign * (p - q), self.statistic)
                limit = rule.margin
            found.append(ci)
            sides.append(-1 if ci[1] > limit else 1 if ci[2] < limit else 0)
        if found and name == self.probe.deep_contender.name:
            self.comparisons[knob] = max(found, key=lambda ci: ci[1])  # the strongest alternative
        # against several alternatives the limit holds if it holds against any one of them
        return -1 if -1 in sides else 1 if sides and all(s == 1 for s in sides) else 0

    def side(self, name: str, knob: Any, against: list[str]) -> int:
        if isinstance(self.rule, Threshold):
            return self.threshold_side(name, knob, self.rule.metric, self.rule.success)
        return self.versus(name, knob, against)


def decide(probe: Probe, profile: Profile, scores: Scores, statistic: str = "mean") -> Verdict:
    """Apply the DESIGN.md verdict rules to the scores of one probe at one profile."""
    judge = _Judge(probe, scores, statistic)
    deep = probe.deep_contender.name
    helpers = [c.name for c in probe.contenders if c.role in ("alternative", "remedy")]
    knobs = probe.knob.order([k for k in profile.knob if k in scores.get(deep, {})])
    cells = summarize(probe, scores, statistic)
    if not knobs:
        return Verdict(probe.id, "inconclusive", "not run", reasons=["no trials of the deep contender"],
                       cells=cells)

    # positive control: the deep contender must succeed where it must
    control = probe.control
    control_knob = control.knob if control.knob is not None else knobs[0]
    metric = control.metric or probe.rule.metric
    success = control.success if control.success is not None else getattr(probe.rule, "success", None)
    if success is None:
        raise ValueError(f"probe {probe.id}: a ratio/gap rule needs Control(metric=..., success=...)")
    control_side = judge.threshold_side(deep, control_knob, metric, success)

    sides = {k: judge.side(deep, k, helpers) for k in knobs}
    holds_at = []
    for k in knobs:
        if sides[k] != -1:
            continue
        if isinstance(probe.rule, Threshold):  # the failure must be the deep method's, not the task's
            if not any(judge.threshold_side(h, k, probe.rule.metric, probe.rule.success) == 1 for h in helpers):
                judge.notes.append(f"deep fails at {probe.knob.name}={k} but no alternative/remedy clearly succeeds")
                continue
        holds_at.append(k)

    reasons: list[str] = []
    breaking = None
    if control_side == -1:
        outcome = "invalid"
        reasons.append(f"positive control failed: {deep} does not reach {metric} {success} at "
                       f"{probe.knob.name}={control_knob}")
    elif control_side == 0:
        outcome = "inconclusive"
        reasons.append(f"positive control unclear at {probe.knob.name}={control_knob}")
    elif holds_at:
        outcome, breaking = "holds", holds_at[0]
    elif all(s == 1 for s in sides.values()):
        outcome = "does not hold"
    else:
        outcome = "inconclusive"
        unclear = [k for k, s in sides.items() if s == 0]
        if unclear:
            reasons.append(f"CI straddles the line at {probe.knob.name} = {', '.join(map(str, unclear))}")
    reasons.extend(dict.fromkeys(judge.notes))  # de-duplicated, in order

    challengers = {}
    for c in probe.contenders:
        if c.role == "challenger":
            broke = [k for k in knobs if sides[k] == -1 and judge.side(c.name, k, helpers) == 1]
            challengers[c.name] = broke
    return Verdict(probe.id, outcome, budget_sentence(probe, profile, outcome, breaking, len(knobs)),
                   breaking, reasons, cells, judge.comparisons, challengers)


def budget_sentence(probe: Probe, profile: Profile, outcome: str, breaking: Any, n_knobs: int) -> str:
    """The verdict with the budget it was measured at, e.g. 'holds for d ≥ 20 with ..., 5 seeds'."""
    k = probe.knob
    where = ""
    if breaking is not None and not isinstance(breaking, int | float):  # categorical: no order to speak of
        where = f" at {k.name} = {breaking}"
    elif breaking is not None:
        where = f" for {k.name} {'≥' if k.harder == 'increasing' else '≤'} {breaking}"
    elif outcome == "does not hold":
        where = f" up to {k.name} = {k.order(list(profile.knob))[-1]}"
    budget = probe.budget(profile)
    budget = f" with {budget}" if budget else ""
    return f"{outcome}{where}{budget}, {profile.seeds} seeds ({profile.name} profile)"
