"""A second toy for machinery tests: a supervised-array task with a hidden test labelling and an
arrays adapter (so an estimator can challenge it), and `TOY`, tests/toy.py's probe as a module
attribute (so both can be registered through the `deeplimits.limits` entry-point group).

Claim: toy. Source: none. Setup: 5 Gaussian features, label = 1[x0 > 0]. Deep contender: a
stump on the feature with the largest class-mean gap, a fraction 0.25 k (or 0.4 k) of its predictions
flipped at random.
Alternative: logistic regression. Metric: test accuracy, scored by the probe. Reference figure: none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from deeplimits.probe import Contender, Context, Knob, Metric, Probe, Profile, Task, Threshold

import toy


@dataclass(frozen=True)
class ArraysProfile(Profile):
    n_train: int = 200
    n_test: int = 400


@dataclass(frozen=True)
class Public:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray


def make_task(k: int, rng: np.random.Generator, profile: ArraysProfile) -> Task:
    x = rng.normal(size=(profile.n_train + profile.n_test, 5))
    y = (x[:, 0] > 0).astype(int)
    n = profile.n_train
    return Task(Public(x[:n], y[:n], x[n:]), hidden=y[n:])


def as_arrays(public: Public) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return public.x_train, public.y_train, public.x_test


def score(task: Task, output: object, ctx: Context) -> dict[str, float]:
    """Accuracy of the predicted labels on the hidden test labels."""
    pred = np.asarray(output).reshape(-1)
    if pred.shape != task.hidden.shape:
        raise ValueError(f"expected {task.hidden.shape[0]} predictions, got shape {np.shape(output)}")
    return {"accuracy": float((pred == task.hidden).mean())}


def _stump(public: Public, ctx: Context, rate: float) -> np.ndarray:
    mu0, mu1 = public.x_train[public.y_train == 0].mean(0), public.x_train[public.y_train == 1].mean(0)
    j = int(np.argmax(np.abs(mu1 - mu0)))
    pred = ((public.x_test[:, j] - (mu0[j] + mu1[j]) / 2) * np.sign(mu1[j] - mu0[j]) > 0).astype(int)
    flip = ctx.rng().random(len(pred)) < min(0.5, rate * ctx.knob)
    return np.where(flip, 1 - pred, pred)


def stump(public: Public, ctx: Context) -> np.ndarray:
    return _stump(public, ctx, 0.25)


def stump_steep(public: Public, ctx: Context) -> np.ndarray:
    return _stump(public, ctx, 0.4)


def logistic(public: Public, ctx: Context) -> np.ndarray:
    return LogisticRegression().fit(public.x_train, public.y_train).predict(public.x_test)


PROBE = Probe(
    id="toy_arrays", family="toys", claim="a toy claim on arrays", sources=("none",), version=1,
    knob=Knob("k", "difficulty", validate=lambda v: isinstance(v, int) and v >= 0),
    metrics=(Metric("accuracy", chance=0.5, lo=0.0, hi=1.0),),
    rule=Threshold("accuracy", success=0.9),
    profiles={name: ArraysProfile(name, knob=(0, 1, 2), seeds=3) for name in ("smoke", "quick", "paper")},
    make_task=make_task, score=score,
    contenders=(Contender("stump", "deep", stump, "a stump, flips 0.25 k", tuning="none: a toy"),
                Contender("stump_steep", "deep", stump_steep, "flips 0.4 k", tuning="none: a toy"),
                Contender("logistic", "alternative", logistic, "logistic regression")),
    budget=lambda p: f"{p.n_train} training points",
    as_arrays=as_arrays,
)

TOY = toy.make_probe()


def register(site: Path) -> Path:
    """Make `site` a folder that registers both toys in the `deeplimits.limits` entry-point group, as
    an installed third-party package would (put it and tests/ on sys.path or PYTHONPATH)."""
    info = site / "deeplimits_testtoys-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: deeplimits-testtoys\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[deeplimits.limits]\ntoy = toy_arrays:TOY\n"
                                           "toy_arrays = toy_arrays:PROBE\n")
    return site
