"""A toy probe for machinery tests: accuracy falls linearly with the knob, no training.

Claim: toy. Source: none. Setup: none. Deep contender: a noisy line (two arms: the second falls
faster). Alternative: a constant 0.99. Metric: accuracy (each contender outputs the accuracy it
would reach; `score` passes it through). Reference figure: none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from deeplimits.probe import Contender, Context, Knob, Metric, Probe, Profile, Task, Threshold


@dataclass(frozen=True)
class ToyProfile(Profile):
    slope: float = 0.1
    sleep: float = 0.0
    budget: int = 1  # more budget flattens the line (for the budget check)


def make_task(k: int, rng: np.random.Generator, profile: ToyProfile) -> Task:
    return Task(float(rng.normal(0, 0.005)))


def score(task: Task, output: float, ctx: Context) -> dict[str, float]:
    return {"accuracy": float(output)}


def deep(task: float, ctx: Context) -> float:
    time.sleep(ctx.profile.sleep)
    return float(np.clip(1.0 - ctx.profile.slope * ctx.knob / ctx.profile.budget + task, 0, 1))


def steep(task: float, ctx: Context) -> float:
    return float(np.clip(1.0 - 2 * ctx.profile.slope * ctx.knob + task, 0, 1))


def alternative(task: float, ctx: Context) -> float:
    time.sleep(ctx.profile.sleep)
    return 0.99 + task / 10


def make_probe(**changes: object) -> Probe:
    probe = Probe(
        id="toy", family="toys", claim="a toy claim", sources=("none",), version=1,
        knob=Knob("k", "difficulty", validate=lambda v: isinstance(v, int) and v >= 0),
        metrics=(Metric("accuracy", chance=0.5, lo=0.0, hi=1.0),),
        rule=Threshold("accuracy", success=0.95),
        profiles={name: ToyProfile(name, knob=(0, 1, 2, 4), seeds=5) for name in ("smoke", "quick", "paper")},
        make_task=make_task, score=score,
        contenders=(Contender("line", "deep", deep, tuning="none: a toy"),
                    Contender("steep", "deep", steep, tuning="none: a toy"),
                    Contender("const", "alternative", alternative)),
        budget=lambda p: f"slope {p.slope}",
    )
    import dataclasses

    return dataclasses.replace(probe, **changes) if changes else probe
