"""A toy probe for machinery tests: accuracy falls linearly with the knob, no training.

Claim: toy. Source: none. Setup: none. Deep contender: a noisy line. Alternative: a constant 0.99.
Metric: accuracy. Reference figure: none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from deeplimits.probe import Contender, Context, Knob, Metric, Probe, Profile, Threshold


@dataclass(frozen=True)
class ToyProfile(Profile):
    slope: float = 0.1
    sleep: float = 0.0


def make_task(k: int, rng: np.random.Generator, profile: ToyProfile) -> float:
    return float(rng.normal(0, 0.005))


def deep(task: float, ctx: Context) -> dict[str, float]:
    time.sleep(ctx.profile.sleep)
    return {"accuracy": float(np.clip(1.0 - ctx.profile.slope * ctx.knob + task, 0, 1))}


def alternative(task: float, ctx: Context) -> dict[str, float]:
    time.sleep(ctx.profile.sleep)
    return {"accuracy": 0.99 + task / 10}


def make_probe(**changes: object) -> Probe:
    probe = Probe(
        id="toy", family="toys", claim="a toy claim", sources=("none",), version=1,
        knob=Knob("k", "difficulty", validate=lambda v: isinstance(v, int) and v >= 0),
        metrics=(Metric("accuracy", chance=0.5, lo=0.0, hi=1.0),),
        rule=Threshold("accuracy", success=0.95),
        profiles={name: ToyProfile(name, knob=(0, 1, 2, 4), seeds=5) for name in ("smoke", "quick", "paper")},
        make_task=make_task,
        contenders=(Contender("line", "deep", deep), Contender("const", "alternative", alternative)),
        budget=lambda p: f"slope {p.slope}",
    )
    import dataclasses

    return dataclasses.replace(probe, **changes) if changes else probe
