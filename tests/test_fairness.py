"""The fairness rules of DESIGN.md as properties of the core: best deep arm judged, budget-limited
failures, the 4x budget check, censored costs, and check_probe refusing unfair probes."""

import dataclasses

import numpy as np
import pytest

import deeplimits
from deeplimits import Contender, Control, Metric, Ratio, Task
from deeplimits.checks import ProbeCheckError, check_fairness, check_learner_view
from deeplimits.probe import Fit
from deeplimits.stats import decide

from toy import make_probe

GOOD = [0.99, 0.98, 1.0, 0.99, 0.985]
BAD = [0.52, 0.49, 0.55, 0.5, 0.51]


def cells(table: dict, metric: str = "accuracy", extra: dict | None = None) -> dict:
    """{contender: {knob: [values]}} -> scores; extra adds {contender: {knob: {metric: [values]}}}."""
    out = {c: {k: {s: {metric: v} for s, v in enumerate(vals)} for k, vals in by_k.items()}
           for c, by_k in table.items()}
    for c, by_k in (extra or {}).items():
        for k, metrics in by_k.items():
            for name, vals in metrics.items():
                for s, v in enumerate(vals):
                    out[c][k][s][name] = v
    return out


def judge(probe, table, knobs=(0, 1, 2), **kw):
    profile = dataclasses.replace(probe.profile("quick"), knob=tuple(knobs))
    return decide(probe, profile, table, **kw)


def test_limit_holds_only_where_every_arm_fails() -> None:
    probe = make_probe()
    both_fail = cells({"line": {0: GOOD, 1: BAD, 2: BAD}, "steep": {0: GOOD, 1: BAD, 2: BAD},
                       "const": {k: GOOD for k in (0, 1, 2)}})
    v = judge(probe, both_fail)
    assert v.outcome == "holds" and v.breaking_point == 1
    one_succeeds = cells({"line": {0: GOOD, 1: GOOD, 2: BAD}, "steep": {0: GOOD, 1: BAD, 2: BAD},
                          "const": {k: GOOD for k in (0, 1, 2)}})
    v = judge(probe, one_succeeds)
    assert v.outcome == "holds" and v.breaking_point == 2 and v.best_arm[1] == "line"


def test_control_passes_when_one_arm_succeeds_and_says_which_failed() -> None:
    v = judge(make_probe(), cells({"line": {0: GOOD, 1: BAD}, "steep": {0: BAD, 1: BAD},
                                   "const": {0: GOOD, 1: GOOD}}), knobs=(0, 1))
    assert v.outcome == "holds" and any("steep" in r and "positive control" in r for r in v.reasons)
    v = judge(make_probe(), cells({"line": {0: BAD, 1: BAD}, "steep": {0: BAD, 1: BAD},
                                   "const": {0: GOOD, 1: GOOD}}), knobs=(0, 1))
    assert v.outcome == "invalid"


def test_underfitting_arm_makes_the_failure_budget_limited() -> None:
    probe = make_probe(metrics=(Metric("accuracy", chance=0.5, lo=0, hi=1),
                                Metric("train_accuracy", lo=0, hi=1, diagnostic=True)),
                       fit=Fit("train_accuracy", 0.95))
    table = {"line": {0: GOOD, 1: BAD}, "steep": {0: GOOD, 1: BAD}, "const": {0: GOOD, 1: GOOD}}
    fits = {"line": {0: {"train_accuracy": GOOD}, 1: {"train_accuracy": GOOD}},
            "steep": {0: {"train_accuracy": GOOD}, 1: {"train_accuracy": [0.6, 0.62, 0.58, 0.61, 0.6]}}}
    v = judge(probe, cells(table, extra=fits), knobs=(0, 1))
    assert v.outcome == "inconclusive" and any("budget-limited" in r and "steep" in r for r in v.reasons)
    fits["steep"][1] = {"train_accuracy": GOOD}  # it fits and still fails: a generalisation failure
    assert judge(probe, cells(table, extra=fits), knobs=(0, 1)).outcome == "holds"


def test_censored_cost_decides_only_the_way_the_bound_allows() -> None:
    probe = make_probe(metrics=(Metric("accuracy", direction="lower", chance=1e6, lo=0, hi=1e9, censored_by="never"),
                                Metric("never", lo=0, hi=1)),
                       rule=Ratio("accuracy", factor=2.0), control=Control("accuracy", success=500))
    deep = [1000.0, 1100, 900, 1050, 980]  # censored: at least this much
    alt = [100.0, 110, 90, 105, 98]
    base = {"line": {0: alt, 1: deep}, "steep": {0: alt, 1: deep}, "const": {0: alt, 1: alt}}
    flags = {c: {1: {"never": [1.0] * 5}} for c in ("line", "steep")}
    v = judge(probe, cells(base, extra=flags), knobs=(0, 1))
    assert v.breaking_point == 1  # a lower bound 10x past the factor decides "holds"
    # the alternative censored instead: the ratio is an upper bound; 10x says nothing
    flags = {"const": {1: {"never": [1.0] * 5}}}
    v = judge(probe, cells(base, extra=flags), knobs=(0, 1))
    assert v.breaking_point is None and any("censored" in r for r in v.reasons)


def test_budget_check_runs_four_times_the_budget_at_the_breaking_point(out) -> None:
    probe = make_probe(budget_fields=("budget",))
    prof = dataclasses.replace(probe.profile("smoke"), knob=(0, 1, 3, 8), slope=0.1, seeds=3)
    probe = dataclasses.replace(probe, profiles={**probe.profiles, "smoke": prof})
    res = deeplimits.run(probes=[probe], profile="smoke", out=out, jobs=1, progress=False, report=False)
    v = res.verdicts["toy"]
    # budget 1: both arms fail from k = 1 (0.9 < 0.95); at 4x the line arm reaches 1 - 0.1 * k / 4:
    # 0.975 at k = 1 (succeeds), 0.925 at k = 3 (fails): the check moves one step and stops there
    assert v.outcome == "holds" and v.breaking_point == 1
    check = v.budget_check
    assert check is not None and check.arm == "line" and check.moves and check.breaking_point == 3
    assert 8 not in check.sides
    assert "moves with compute" in v.sentence
    again = deeplimits.run(probes=[probe], profile="smoke", out=out, jobs=1, progress=False, report=False)
    assert again.ran == 0  # the budget-check trials are stored too
    from deeplimits.results import load

    stored = load(out, probes=[probe])[0].verdict
    assert stored.budget_check is not None and stored.budget_check.breaking_point == 3


def test_budget_check_that_still_fails(out) -> None:
    probe = make_probe(budget_fields=("budget",))
    prof = dataclasses.replace(probe.profile("smoke"), knob=(0, 4), slope=0.2, seeds=3)
    probe = dataclasses.replace(probe, profiles={**probe.profiles, "smoke": prof})
    v = deeplimits.run(probes=[probe], profile="smoke", out=out, jobs=1, progress=False, report=False).verdicts["toy"]
    assert v.outcome == "holds" and not v.budget_check.moves and "still fails at 4× budget" in v.sentence


# --- check_probe refuses unfair probes ---------------------------------------------------------
def test_one_deep_arm_fails_rule_1() -> None:
    probe = make_probe()
    one = probe.with_contenders(probe.contender("line"), probe.contender("const"), replace=True)
    with pytest.raises(ProbeCheckError, match="rule 1"):
        check_fairness(one)
    untuned = probe.with_contenders(Contender("a", "deep", lambda p, c: 1.0), Contender("b", "deep", lambda p, c: 1.0),
                                    probe.contender("const"), replace=True)
    with pytest.raises(ProbeCheckError, match="tuning"):
        check_fairness(untuned)


def test_oracle_helper_fails_rule_5() -> None:
    probe = make_probe()
    probe = probe.with_contenders(Contender("oracle", "remedy", lambda p, c: 1.0, "knows the answer"))
    with pytest.raises(ProbeCheckError, match="rule 5"):
        check_fairness(probe)


def test_control_on_another_metric_fails_rule_4() -> None:
    probe = make_probe(metrics=(Metric("accuracy", chance=0.5, lo=0, hi=1), Metric("other", chance=0.5, lo=0, hi=1)),
                       control=Control("other", success=0.9))
    with pytest.raises(ProbeCheckError, match="rule 4"):
        check_fairness(probe)
    near_chance = make_probe(rule=deeplimits.Threshold("accuracy", success=0.52))
    with pytest.raises(ProbeCheckError, match="not clearly better than chance"):
        check_fairness(near_chance)


def test_leaking_test_labels_fails_rule_6() -> None:
    def leaky(k, rng, profile):
        y = rng.integers(0, 2, 100)
        return Task({"x_test": rng.normal(size=(100, 3)), "y_test": y}, hidden={"y_test": y})

    with pytest.raises(ProbeCheckError, match="rule 6"):
        check_learner_view(make_probe(make_task=leaky))

    def copied(k, rng, profile):
        y = rng.integers(0, 2, 100)
        return Task({"labels": y.copy()}, hidden=y)

    with pytest.raises(ProbeCheckError, match="rule 6"):
        check_learner_view(make_probe(make_task=copied))

    def fine(k, rng, profile):
        return Task({"x_test": rng.normal(size=(100, 3))}, hidden=rng.integers(0, 2, 100))

    check_learner_view(make_probe(make_task=fine))
    with pytest.raises(ProbeCheckError, match="must return"):
        check_learner_view(make_probe(make_task=lambda k, rng, p: 0.5))


def test_contender_cannot_report_the_judged_metric_itself(out) -> None:
    from deeplimits import Answer

    probe = make_probe()
    cheat = Contender("cheat", "deep", lambda p, c: Answer(0.1, {"accuracy": 1.0}), tuning="none")
    res = deeplimits.run(probes=[probe.with_contenders(cheat)], profile="smoke", out=out, jobs=1,
                         progress=False, report=False, budget_check=False)
    failed = [r for r in res.records if r.contender == "cheat"]
    assert failed and all(r.status == "failed" and "only metrics declared diagnostic" in r.error for r in failed)


def test_probe_refuses_a_diagnostic_rule_metric() -> None:
    with pytest.raises(ValueError, match="cannot be a contender's own diagnostic"):
        make_probe(metrics=(Metric("accuracy", chance=0.5, lo=0, hi=1, diagnostic=True),))


def test_all_failed_trials_say_so() -> None:
    table = cells({"line": {0: GOOD, 1: GOOD}, "steep": {0: GOOD, 1: GOOD}, "const": {0: GOOD, 1: GOOD}})
    table["line"][1] = {s: None for s in range(5)}
    table["steep"][1] = {s: None for s in range(5)}
    v = judge(make_probe(), table, knobs=(0, 1))
    assert v.outcome == "inconclusive" and any("all 5 trial(s) failed" in r for r in v.reasons)
    assert not any("straddles" in r for r in v.reasons)


def test_ratio_is_a_geometric_mean_of_paired_seeds() -> None:
    from deeplimits.stats import ratio_ci

    point, lo, hi = ratio_ci(np.array([10.0, 20, 40]), np.array([1.0, 2, 4]))
    assert point == pytest.approx(10.0) and lo == pytest.approx(10.0) and hi == pytest.approx(10.0)


def test_budget_check_must_scale_patience_with_epochs() -> None:
    from deeplimits.checks import check_structure

    from toy import ToyProfile

    @dataclasses.dataclass(frozen=True)
    class EpochProfile(ToyProfile):
        epochs: int = 10
        patience: int = 3

    profiles = {n: EpochProfile(n, knob=(0, 1), seeds=3) for n in ("smoke", "quick", "paper")}
    with pytest.raises(ProbeCheckError, match="patience"):
        check_structure(make_probe(profiles=profiles, budget_fields=("epochs",)))
    check_structure(make_probe(profiles=profiles, budget_fields=("epochs", "patience")))


def test_best_arm_is_one_that_passes_the_control() -> None:
    # both arms at chance at k = 1; only "steep" passed the control: it is the arm shown and rerun
    table = cells({"line": {0: BAD, 1: [0.53, 0.52, 0.55, 0.51, 0.52]}, "steep": {0: GOOD, 1: BAD},
                   "const": {0: GOOD, 1: GOOD}})
    v = judge(make_probe(), table, knobs=(0, 1))
    assert v.outcome == "holds" and v.best_arm[1] == "steep"
