"""Confidence intervals and the shared verdict rules of DESIGN.md.

One data convention (as rliable has one): `scores[contender][knob][seed]` is the metrics dict of a
finished trial, or None for a failed one. A probe only declares its rule and thresholds; the
decision is made here and nowhere else.

The intervals behind every decision are in `intervals.py` (fairness rule 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .intervals import bootstrap_ci, iqm, paired_ci, ratio_ci, t_ci  # noqa: F401 - re-exported
from .probe import Gap, Metric, Metrics, Probe, Profile, Ratio, Threshold

Scores = Mapping[str, Mapping[Any, Mapping[int, Metrics | None]]]
MIN_SEEDS = 3  # below this an interval says nothing; cells with fewer are unclear
BUDGET_FACTOR = 4  # fairness rule 3: the best arm is rerun with 4x the budget at the breaking point
OUTCOMES = ("holds", "does not hold", "inconclusive", "invalid")


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
class BudgetCheck:
    """Fairness rule 3: the best deep arm rerun with `factor` x the budget from the breaking point on."""

    arm: str
    factor: int
    cells: dict[Any, tuple[float, float, float]]  # knob -> rule-metric mean and CI at the larger budget
    sides: dict[Any, int]  # knob -> +1 succeeds, -1 fails, 0 unclear at the larger budget
    breaking_point: Any = None  # where it fails at the larger budget (None: nowhere tried)

    @property
    def moves(self) -> bool:
        """True when the larger budget succeeds where the verdict's budget failed."""
        return any(s == 1 for s in self.sides.values())


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
    best_arm: dict[Any, str] = field(default_factory=dict)  # knob -> the deep arm judged there
    budget_check: BudgetCheck | None = None

    def to_dict(self) -> dict[str, Any]:
        check = None
        if self.budget_check is not None:
            b = self.budget_check
            check = {"arm": b.arm, "factor": b.factor, "moves": b.moves, "breaking_point": b.breaking_point,
                     "cells": {str(k): v for k, v in b.cells.items()}}
        return {"limit": self.limit, "outcome": self.outcome, "sentence": self.sentence,
                "breaking_point": self.breaking_point, "reasons": list(self.reasons),
                "challengers": dict(self.challengers), "best_arm": {str(k): v for k, v in self.best_arm.items()},
                "budget_check": check}


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
        self.straddles: set[tuple[str, Any]] = set()  # (contender, knob) whose CI straddles the line
        self.comparisons: dict[tuple[str, Any], tuple[float, float, float]] = {}

    def _seeds(self, name: str, knob: Any, metric: str) -> tuple[dict[int, float], int]:
        return _values(self.scores.get(name, {}).get(knob, {}), metric)

    def _usable(self, name: str, knob: Any, ok: dict, failed: int) -> bool:
        where = f"{name} at {self.probe.knob.name}={knob}"
        if failed and not ok:
            self.notes.append(f"{where}: all {failed} trial(s) failed")
        elif failed:
            self.notes.append(f"{where}: {failed} failed trial(s)")
        elif len(ok) < MIN_SEEDS:
            self.notes.append(f"{where}: {len(ok)} seed(s), need {MIN_SEEDS}")
        return not failed and len(ok) >= MIN_SEEDS

    def threshold_side(self, name: str, knob: Any, metric_name: str, success: float) -> int:
        ok, failed = self._seeds(name, knob, metric_name)
        if not ok and not failed:  # this contender does not report this metric (or was not run here)
            return 0
        if not self._usable(name, knob, ok, failed):
            return 0
        _, lo, hi = bootstrap_ci(np.array(list(ok.values())), self.statistic)
        side = _side(lo, hi, success, self.probe.metric(metric_name))
        if side == 0:
            self.straddles.add((name, knob))
        return side

    def mean(self, name: str, knob: Any, metric: str) -> float:
        ok, _ = self._seeds(name, knob, metric)
        return float(np.mean(list(ok.values()))) if ok else np.nan

    def _censored(self, name: str, knob: Any, seeds: list[int]) -> bool:
        flag = self.probe.metric(self.rule.metric).censored_by
        if flag is None:
            return False
        marks, _ = self._seeds(name, knob, flag)
        return any(marks.get(s, 0.0) > 0.5 for s in seeds)

    def versus(self, name: str, knob: Any, against: list[str]) -> int:
        """Ratio/gap kinds: -1 where `name` is clearly past the factor/margin (the limit's side)."""
        rule = self.rule
        a, failed = self._seeds(name, knob, rule.metric)
        if isinstance(rule, Gap) and rule.baseline_metric:
            pairs = [(name, *self._seeds(name, knob, rule.baseline_metric))]
        else:
            pairs = [(alt, *self._seeds(alt, knob, rule.metric)) for alt in against]
        sides, found = [], []
        for alt, b, failed_b in pairs:
            common = sorted(set(a) & set(b))
            if failed or failed_b or len(common) < MIN_SEEDS:
                self.notes.append(f"{name} at {self.probe.knob.name}={knob}: too few paired seeds")
                sides.append(0)
                continue
            x, y = np.array([a[s] for s in common]), np.array([b[s] for s in common])
            if isinstance(rule, Ratio):
                ci, limit = ratio_ci(x, y, self.statistic), rule.factor
                # fairness rule 7: a never-reached cost is a lower bound; it decides only one way
                lower_bound = self._censored(name, knob, common)  # ratio is at least ci
                upper_bound = alt != name and self._censored(alt, knob, common)  # ratio is at most ci
            else:
                sign = 1.0 if self.probe.metric(rule.metric).direction == "higher" else -1.0
                ci, limit = paired_ci(y, x, lambda p, q: sign * (p - q), self.statistic), rule.margin
                lower_bound = upper_bound = False
            found.append(ci)
            side = -1 if ci[1] > limit else 1 if ci[2] < limit else 0
            if side == 0:
                self.straddles.add((name, knob))
            if (side == -1 and upper_bound) or (side == 1 and lower_bound):
                self.notes.append(f"{name} vs {alt} at {self.probe.knob.name}={knob}: a censored cost "
                                  "(target never reached) leaves the ratio undecided")
                side = 0
            sides.append(side)
        if found:
            self.comparisons[(name, knob)] = max(found, key=lambda ci: ci[1])  # the strongest alternative
        # against several alternatives the limit holds if it holds against any one of them
        return -1 if -1 in sides else 1 if sides and all(s == 1 for s in sides) else 0

    def side(self, name: str, knob: Any, against: list[str]) -> int:
        if isinstance(self.rule, Threshold):
            return self.threshold_side(name, knob, self.rule.metric, self.rule.success)
        return self.versus(name, knob, against)

    def best(self, arms: list[str], knob: Any) -> str:
        """The deep arm doing best at `knob` on the rule's metric (ratio/gap: the smallest comparison)."""
        if isinstance(self.rule, Threshold):
            metric = self.probe.metric(self.rule.metric)
            means = {a: self.mean(a, knob, metric.name) for a in arms}
            sign = 1.0 if metric.direction == "higher" else -1.0
            return max(arms, key=lambda a: sign * np.nan_to_num(means[a], nan=-np.inf * sign))
        return min(arms, key=lambda a: self.comparisons.get((a, knob), (np.inf,))[0])


def _combine(sides: list[int]) -> int:
    """Every arm must fail for the limit's side; one clearly succeeding arm is enough for success."""
    return 1 if 1 in sides else -1 if sides and all(s == -1 for s in sides) else 0


def decide(probe: Probe, profile: Profile, scores: Scores, statistic: str = "mean",
           budget: Scores | None = None) -> Verdict:
    """Apply the DESIGN.md verdict rules to the scores of one probe at one profile.

    `budget` holds the budget check's trials (the best arm at `BUDGET_FACTOR` x the budget)."""
    judge = _Judge(probe, scores, statistic)
    arms = [c.name for c in probe.deep_arms if c.name in scores]
    helpers = [c.name for c in probe.contenders if c.role in ("alternative", "remedy")]
    knobs = probe.knob.order([k for k in profile.knob if any(k in scores[a] for a in arms)])
    cells = summarize(probe, scores, statistic)
    if not knobs:
        return Verdict(probe.id, "inconclusive", "not run", reasons=["no trials of a deep arm"], cells=cells)

    # positive control: some deep arm must succeed where it must, on the claim's own metric
    control = probe.control
    control_knob = control.knob if control.knob is not None else knobs[0]
    metric = control.metric or probe.rule.metric
    success = control.success if control.success is not None else getattr(probe.rule, "success", None)
    if success is None:
        raise ValueError(f"probe {probe.id}: a ratio/gap rule needs Control(metric=..., success=...)")
    control_sides = {a: judge.threshold_side(a, control_knob, metric, success) for a in arms}
    control_side = max(control_sides.values())

    # an arm that clearly fails the control is broken, not evidence: it cannot make the limit fail either
    # (a run that learns nothing can look perfectly reproducible, rl_seed_variance)
    counted = [a for a in arms if control_sides[a] != -1] or arms
    per_arm = {k: {a: judge.side(a, k, helpers) for a in counted} for k in knobs}
    sides = {k: _combine(list(per_arm[k].values())) for k in knobs}
    # the arm shown and rerun in the budget check: among those that pass the control (a tie at chance
    # must not pick an arm whose training never worked), else among all
    trusted = [a for a in arms if control_sides[a] == 1] or arms
    best_arm = {k: judge.best(trusted, k) for k in knobs}
    holds_at = []
    for k in knobs:
        if sides[k] != -1:
            continue
        if probe.fit is not None:  # fairness rule 2: an arm that cannot fit its training data is not a finding
            limited = [a for a in counted if judge.threshold_side(a, k, probe.fit.metric, probe.fit.success) == -1]
            if limited:
                judge.notes.append(f"budget-limited at {probe.knob.name}={k}: {', '.join(limited)} "
                                   f"fit(s) its training data below {probe.fit.metric} {probe.fit.success}")
                sides[k] = 0
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
        reasons.append(f"positive control failed: no deep arm ({', '.join(arms)}) reaches {metric} {success} "
                       f"at {probe.knob.name}={control_knob}")
    elif control_side == 0:
        outcome = "inconclusive"
        reasons.append(f"positive control unclear at {probe.knob.name}={control_knob}")
    elif holds_at:
        outcome, breaking = "holds", holds_at[0]
    elif all(s == 1 for s in sides.values()):
        outcome = "does not hold"
    else:
        outcome = "inconclusive"
        unclear = [k for k, s in sides.items() if s == 0 and any((a, k) in judge.straddles for a in counted)]
        if unclear:
            reasons.append(f"CI straddles the line at {probe.knob.name} = {', '.join(map(str, unclear))}")
    if outcome != "invalid":
        weak = [a for a, s in control_sides.items() if s == -1]
        if weak:
            reasons.append(f"deep arm(s) {', '.join(weak)} fail the positive control; the verdict rests on the others")
    reasons.extend(dict.fromkeys(judge.notes))  # de-duplicated, in order

    check = None
    if outcome == "holds" and budget:
        arm = best_arm[breaking]
        merged = {**{h: scores[h] for h in helpers if h in scores}, arm: budget.get(arm, {})}
        check = _budget_check(probe, merged, knobs, breaking, arm, helpers, statistic)
        reasons.extend(n for n in dict.fromkeys(check_notes(check, probe)) if n not in reasons)

    challengers = {}
    for c in probe.contenders:
        if c.role == "challenger":
            broke = [k for k in knobs if sides[k] == -1 and judge.side(c.name, k, helpers) == 1]
            challengers[c.name] = broke
    comparisons = {k: judge.comparisons[(best_arm[k], k)] for k in knobs if (best_arm[k], k) in judge.comparisons}
    return Verdict(probe.id, outcome, budget_sentence(probe, profile, outcome, breaking, len(knobs), check),
                   breaking, reasons, cells, comparisons, challengers, best_arm, check)


def budget_knobs(probe: Probe, verdict: Verdict, scores: Scores, budget: Scores | None = None
                 ) -> tuple[str, Any] | None:
    """The budget check's next trials, (arm, knob), or None when it is complete.

    It starts at the breaking point and moves one knob value harder while the larger budget
    succeeds, so that it can report where the limit breaks at the larger budget too."""
    if verdict.outcome != "holds":
        return None
    arm = verdict.best_arm[verdict.breaking_point]
    knobs = list(verdict.best_arm)
    helpers = [c.name for c in probe.contenders if c.role in ("alternative", "remedy")]
    judge = _Judge(probe, {**scores, arm: (budget or {}).get(arm, {})}, "mean")
    for k in knobs[knobs.index(verdict.breaking_point):]:
        if not judge.scores[arm].get(k):
            return arm, k
        if judge.side(arm, k, helpers) != 1:
            return None
    return None


def _budget_check(probe: Probe, budget: Scores, knobs: list[Any], breaking: Any, arm: str,
                  helpers: list[str], statistic: str) -> BudgetCheck:
    judge = _Judge(probe, budget, statistic)
    rule_metric = probe.rule.metric
    cells, sides = {}, {}
    for k in knobs[knobs.index(breaking):]:
        ok, _ = judge._seeds(arm, k, rule_metric)
        if not ok:
            break
        cells[k] = bootstrap_ci(np.array(list(ok.values())), statistic)
        sides[k] = judge.side(arm, k, helpers)
    failing = [k for k, s in sides.items() if s == -1]
    return BudgetCheck(arm, BUDGET_FACTOR, cells, sides, failing[0] if failing else None)


def check_notes(check: BudgetCheck, probe: Probe) -> list[str]:
    name = probe.knob.name
    if not check.sides:
        return ["budget check: no trials at the larger budget"]
    if check.moves:
        where = (f"it breaks at {name} = {check.breaking_point}" if check.breaking_point is not None
                 else f"no break up to {name} = {list(check.sides)[-1]}")
        ok = [k for k, s in check.sides.items() if s == 1]
        return [f"budget check: with {check.factor}× budget {check.arm} succeeds at {name} = "
                f"{', '.join(map(str, ok))}; {where}"]
    if all(s == -1 for s in check.sides.values()):
        return [f"budget check: with {check.factor}× budget {check.arm} still fails at {name} = "
                f"{', '.join(map(str, check.sides))}"]
    return [f"budget check: unclear with {check.factor}× budget at {name} = {', '.join(map(str, check.sides))}"]


def budget_sentence(probe: Probe, profile: Profile, outcome: str, breaking: Any, n_knobs: int,
                    check: BudgetCheck | None = None) -> str:
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
    text = f"{outcome}{where}{budget}, {profile.seeds} seeds ({profile.name} profile)"
    if check is not None and check.moves:
        moved = (f"{k.name} = {check.breaking_point}" if check.breaking_point is not None
                 else f"beyond {k.name} = {list(check.sides)[-1]}")
        text = f"{text}; holds at this budget, moves with compute: at {check.factor}× budget it breaks at {moved}"
    elif check is not None and check.sides and all(s == -1 for s in check.sides.values()):
        text = f"{text}; still fails at {check.factor}× budget"
    return text
