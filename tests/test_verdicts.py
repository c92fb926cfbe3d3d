"""The shared verdict rules on synthetic score arrays: each of the four outcomes, and each rule kind."""

import dataclasses

import numpy as np
import pytest

from deeplimits import Control, Gap, Metric, Ratio
from deeplimits.stats import bootstrap_ci, decide, paired_ci

from toy import make_probe


def scores(table: dict[str, dict[int, list[float | None]]], metric: str = "accuracy") -> dict:
    return {c: {k: {s: (None if v is None else {metric: v}) for s, v in enumerate(vals)}
                for k, vals in by_k.items()} for c, by_k in table.items()}


def verdict(table, probe=None, **kw):
    probe = probe or make_probe()
    profile = dataclasses.replace(probe.profile("quick"), knob=tuple(next(iter(table.values()))), **kw)
    return decide(probe, profile, scores(table))


GOOD = [0.99, 0.98, 1.0, 0.99, 0.985]
BAD = [0.52, 0.49, 0.55, 0.5, 0.51]


def test_holds_with_breaking_point() -> None:
    v = verdict({"line": {0: GOOD, 1: GOOD, 2: BAD, 4: BAD}, "const": {k: GOOD for k in (0, 1, 2, 4)}})
    assert v.outcome == "holds" and v.breaking_point == 2
    assert "holds for k ≥ 2" in v.sentence and "5 seeds" in v.sentence


def test_does_not_hold() -> None:
    v = verdict({"line": {k: GOOD for k in (0, 1, 2)}, "const": {k: GOOD for k in (0, 1, 2)}})
    assert v.outcome == "does not hold" and v.breaking_point is None


def test_invalid_when_positive_control_fails() -> None:
    v = verdict({"line": {0: BAD, 1: BAD}, "const": {0: GOOD, 1: GOOD}})
    assert v.outcome == "invalid" and "positive control failed" in v.reasons[0]


def test_inconclusive_when_ci_straddles() -> None:
    straddle = [0.9, 1.0, 0.93, 0.99, 0.96]
    v = verdict({"line": {0: GOOD, 1: straddle}, "const": {0: GOOD, 1: GOOD}})
    assert v.outcome == "inconclusive" and "straddles" in v.reasons[0]


def test_inconclusive_with_failed_trials_and_too_few_seeds() -> None:
    v = verdict({"line": {0: GOOD, 1: [0.99, None, 0.98, 1.0, 0.99]}, "const": {0: GOOD, 1: GOOD}})
    assert v.outcome == "inconclusive" and any("failed trial" in r for r in v.reasons)
    v = verdict({"line": {0: GOOD[:2], 1: BAD[:2]}, "const": {0: GOOD[:2], 1: GOOD[:2]}})
    assert v.outcome == "inconclusive" and any("need 3" in r for r in v.reasons)


def test_an_arm_that_fails_the_control_cannot_clear_the_limit() -> None:
    # "steep" is broken at the easy end yet "succeeds" at k = 1 (a run that learns nothing can look reproducible)
    table = {"line": {0: GOOD, 1: BAD}, "steep": {0: BAD, 1: GOOD}, "const": {0: GOOD, 1: GOOD}}
    v = verdict(table)
    assert v.outcome == "holds" and v.breaking_point == 1
    assert any("steep fail the positive control" in r for r in v.reasons)


def test_deep_failure_needs_a_succeeding_alternative() -> None:
    v = verdict({"line": {0: GOOD, 1: BAD}, "const": {0: GOOD, 1: BAD}})
    assert v.outcome == "inconclusive" and any("no alternative" in r for r in v.reasons)


def test_lower_is_better_metric() -> None:
    probe = make_probe(metrics=(Metric("accuracy", direction="lower", lo=0, hi=1),))
    probe = dataclasses.replace(probe, rule=dataclasses.replace(probe.rule, success=0.1))
    v = verdict({"line": {0: [0.01] * 5, 1: [0.5, 0.6, 0.55, 0.5, 0.52]}, "const": {0: [0.0] * 5, 1: [0.02] * 5}},
                probe)
    assert v.outcome == "holds" and v.breaking_point == 1


def test_ratio_rule() -> None:
    probe = make_probe(rule=Ratio("accuracy", factor=10.0), control=Control("accuracy", success=0.5),
                       metrics=(Metric("accuracy", lo=0, hi=1e9),))
    cost_deep = {0: [1.0] * 5, 1: [50.0, 60, 55, 52, 58], 2: [500.0, 600, 550, 520, 580]}
    cost_alt = {k: [1.0, 1.1, 0.9, 1.0, 1.05] for k in (0, 1, 2)}
    v = verdict({"line": cost_deep, "const": cost_alt}, probe)
    assert v.outcome == "holds" and v.breaking_point == 1
    lo = v.comparisons[1][1]
    assert lo > 10


def test_gap_rule_against_control_metric() -> None:
    probe = make_probe(metrics=(Metric("accuracy", lo=0, hi=1), Metric("control", lo=0, hi=1)),
                       rule=Gap("accuracy", margin=0.1, baseline_metric="control"),
                       control=Control("control", success=0.9))
    s = {"line": {k: {i: {"accuracy": a, "control": 0.98} for i, a in enumerate(vals)}
                  for k, vals in {0: BAD, 1: BAD}.items()},
         "const": {k: {i: {"accuracy": 0.99} for i in range(5)} for k in (0, 1)}}
    profile = dataclasses.replace(probe.profile("quick"), knob=(0, 1))
    v = decide(probe, profile, s)
    assert v.outcome == "holds" and v.breaking_point == 0


def test_challenger_breaks_the_limit() -> None:
    from deeplimits import Contender

    probe = make_probe().with_contenders(Contender("mine", "challenger", lambda t, c: {}))
    v = verdict({"line": {0: GOOD, 1: BAD}, "const": {0: GOOD, 1: GOOD}, "mine": {0: GOOD, 1: GOOD}}, probe)
    assert v.outcome == "holds" and v.challengers == {"mine": [1]}


def test_bootstrap_ci_brackets_the_mean() -> None:
    x = np.random.default_rng(0).normal(0.5, 0.1, 30)
    mean, lo, hi = bootstrap_ci(x)
    assert lo < mean < hi and hi - lo < 0.2
    assert bootstrap_ci(np.ones(5)) == (1.0, 1.0, 1.0)
    point, lo, hi = paired_ci(x + 1, x, lambda a, b: a - b)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
