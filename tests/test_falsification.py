"""The verdict can come out either way: an oracle makes parity's verdict `does not hold`, a constant
predictor fails the positive control (`invalid`), and an oracle challenger breaks the limit.

The oracle is a test device: no contender can read the hidden subset, so it regenerates the task
from its context (the same generator the runner uses) and reads the hidden half itself."""

import dataclasses

import numpy as np

import deeplimits
from deeplimits.limits.gradients import parity
from deeplimits.probe import task_rng


def oracle(public: parity.ParityPublic, ctx: deeplimits.Context) -> np.ndarray:
    """Knows S (by regenerating the task): predicts the parity exactly."""
    task = parity.PROBE.make_task(ctx.knob, task_rng(parity.PROBE.id, ctx.knob, ctx.seed), ctx.profile)
    return np.prod(np.where(task.hidden.mask, public.x_test, 1), -1)


def constant(public: parity.ParityPublic, ctx: deeplimits.Context) -> np.ndarray:
    return np.ones(len(public.x_test))


def small(probe: deeplimits.Probe) -> deeplimits.Probe:
    prof = dataclasses.replace(parity.PROBE.profile("smoke"), knob=(4, 24), seeds=3, steps=200)
    return dataclasses.replace(probe, profiles={**probe.profiles, "smoke": prof})


def test_oracle_as_deep_contender_does_not_hold(out) -> None:
    probe = small(parity.PROBE.with_contenders(deeplimits.Contender("oracle", "deep", oracle),
                                               parity.PROBE.contender("gf2_elimination"), replace=True))
    v = deeplimits.run(probes=[probe], profile="smoke", out=out, jobs=1, progress=False, report=False)
    assert v.verdicts["parity"].outcome == "does not hold"


def test_constant_predictor_fails_the_positive_control(out) -> None:
    probe = small(parity.PROBE.with_contenders(deeplimits.Contender("constant", "deep", constant),
                                               parity.PROBE.contender("gf2_elimination"), replace=True))
    v = deeplimits.run(probes=[probe], profile="smoke", out=out, jobs=1, progress=False, report=False)
    assert v.verdicts["parity"].outcome == "invalid"


def test_real_mlp_fails_at_large_d_and_an_oracle_challenger_breaks_it(out) -> None:
    challenger = deeplimits.Contender("oracle", "challenger", oracle)
    res = deeplimits.run(["parity"], profile="smoke", overrides={"d": "4,24", "steps": "300"}, seeds=3,
                         out=out, jobs=1, progress=False, report=False, challengers={"parity": [challenger]})
    v = res.verdicts["parity"]
    assert v.outcome == "holds" and v.breaking_point == 24
    assert v.challengers == {"oracle": [24]}
