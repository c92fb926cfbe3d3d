"""The probe contract: what a limit declares so the shared machinery can run and judge it.

A probe file builds one `Probe` from these small frozen dataclasses. The core never looks inside a
task: a task is whatever `make_task` returns (arrays, an environment factory, a SAT instance...),
and contenders are functions from task to metrics. That keeps supervised learning, RL, solvers,
games and cost measurements on one contract.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Role = Literal["deep", "alternative", "remedy", "challenger"]
ROLES: tuple[str, ...] = ("deep", "alternative", "remedy", "challenger")
PROFILE_NAMES: tuple[str, ...] = ("smoke", "quick", "paper")


class UsageError(ValueError):
    """Bad user input (unknown id, bad knob value...). The CLI prints it on one line, exit code 2."""


@dataclass(frozen=True)
class Knob:
    """The one axis along which the task gets harder."""

    name: str
    description: str
    unit: str = ""
    harder: Literal["increasing", "decreasing"] = "increasing"
    validate: Callable[[Any], bool] | None = None  # True when a value is acceptable
    log_scale: bool = False

    def check(self, value: Any) -> None:
        if self.validate is not None and not self.validate(value):
            raise UsageError(f"knob {self.name}={value!r} is out of range: {self.description}")

    def order(self, values: Sequence[Any]) -> list[Any]:
        """Values from the easy end to the hard end. Numbers sort by `harder`; categorical values
        (dataset names, transforms) keep the order the profile lists them in, easy end first."""
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return sorted(values, reverse=self.harder == "decreasing")
        return list(values)


@dataclass(frozen=True)
class Metric:
    """One number per trial, with its direction, chance level and valid range."""

    name: str
    description: str = ""
    direction: Literal["higher", "lower"] = "higher"
    chance: float | None = None
    lo: float = -np.inf
    hi: float = np.inf
    unit: str = ""
    log_scale: bool = False

    def better(self, a: float, b: float) -> bool:
        """True when `a` is on the better side of `b`."""
        return a > b if self.direction == "higher" else a < b


@dataclass(frozen=True)
class Context:
    """What a contender gets besides its task: the profile, a seed of its own and the device."""

    probe_id: str
    contender: str
    knob: Any
    seed: int  # the trial's seed index (0, 1, ...)
    profile: Any
    device: str = "cpu"

    @property
    def rng_seed(self) -> int:
        """A 63-bit seed unique to (probe, contender, knob, seed), stable across runs and machines."""
        return stable_int(self.probe_id, self.contender, self.knob, self.seed)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.rng_seed)


Metrics = dict[str, float]


@dataclass(frozen=True)
class Contender:
    """A method that attempts the task.

    `fn(task, ctx) -> metrics`; with `batched=True`, `fn(tasks, ctxs) -> [metrics]` so that many
    seeds can train at once (see `deeplimits.ensemble`). Results for one seed must not depend on
    which other seeds share the batch.
    """

    name: str
    role: Role
    fn: Callable[..., Any]
    description: str = ""
    batched: bool = False

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"contender {self.name!r}: role must be one of {ROLES}, got {self.role!r}")


@dataclass(frozen=True)
class Threshold:
    """Verdict kind `threshold`: success means the metric is on the good side of `success`."""

    metric: str
    success: float
    kind: Literal["threshold"] = "threshold"


@dataclass(frozen=True)
class Ratio:
    """Verdict kind `ratio`: deep / alternative on a cost metric; the limit holds past `factor`."""

    metric: str
    factor: float
    kind: Literal["ratio"] = "ratio"


@dataclass(frozen=True)
class Gap:
    """Verdict kind `gap`: baseline - deep on a higher-is-better metric; holds past `margin`.

    The baseline is the deep contender's own `baseline_metric` (a control task on the same data)
    when given, else the best alternative/remedy on `metric`.
    """

    metric: str
    margin: float
    baseline_metric: str | None = None
    kind: Literal["gap"] = "gap"


Rule = Threshold | Ratio | Gap


@dataclass(frozen=True)
class Control:
    """The positive control: where the deep contender must succeed for a failure to mean anything.

    Defaults: the rule's metric and success threshold, at the easy end of the knob.
    """

    metric: str | None = None
    success: float | None = None
    knob: Any = None
    description: str = "the deep contender at the easy end of the knob"


@dataclass(frozen=True)
class Reference:
    """A published figure shown beside the measurement (never used to tune the probe)."""

    source: str
    setup: str
    value: str
    provenance: str  # e.g. "verbatim", "read off a plot", "recalled"
    points: tuple[tuple[Any, float], ...] = ()  # (knob value, metric value) pairs to mark on plots
    metric: str | None = None


@dataclass(frozen=True)
class Profile:
    """Base of every probe's profile dataclass; probes subclass it and add their budget fields."""

    name: str
    knob: tuple[Any, ...]
    seeds: int

    def params(self) -> dict[str, Any]:
        """The parameters that define a trial (all but the knob values and the seed count)."""
        out = dataclasses.asdict(self)
        out.pop("knob")
        out.pop("seeds")
        return out


@dataclass(frozen=True)
class Probe:
    """One limit: the claim, its task generator, contenders, metrics and verdict rule."""

    id: str
    family: str
    claim: str
    sources: tuple[str, ...]
    version: int
    knob: Knob
    metrics: tuple[Metric, ...]
    rule: Rule
    profiles: dict[str, Profile]
    make_task: Callable[[Any, np.random.Generator, Any], Any]
    contenders: tuple[Contender, ...]
    references: tuple[Reference, ...] = ()
    control: Control = field(default_factory=Control)
    budget: Callable[[Any], str] = lambda profile: ""
    requires: tuple[str, ...] = ()  # importable modules the probe needs at run time
    extra: str | None = None  # the pip extra that provides them, e.g. "rl"
    deep: str | None = None  # the deep contender the verdict is about (default: the first deep one)

    def __post_init__(self) -> None:
        names = [c.name for c in self.contenders]
        if len(set(names)) != len(names):
            raise ValueError(f"probe {self.id}: contender names must be unique: {names}")
        if not any(c.role == "deep" for c in self.contenders):
            raise ValueError(f"probe {self.id}: needs a contender with role 'deep'")
        known = {m.name for m in self.metrics}
        for metric in (self.rule.metric, self.control.metric, getattr(self.rule, "baseline_metric", None)):
            if metric is not None and metric not in known:
                raise ValueError(f"probe {self.id}: metric {metric!r} is not declared")
        missing = set(PROFILE_NAMES) - set(self.profiles)
        if missing:
            raise ValueError(f"probe {self.id}: profiles missing: {sorted(missing)}")

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def contender(self, name: str) -> Contender:
        for c in self.contenders:
            if c.name == name:
                return c
        raise UsageError(f"probe {self.id} has no contender {name!r}; it has {[c.name for c in self.contenders]}")

    @property
    def deep_contender(self) -> Contender:
        if self.deep is not None:
            return self.contender(self.deep)
        return next(c for c in self.contenders if c.role == "deep")

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise UsageError(f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
        return self.profiles[name]

    def with_contenders(self, *extra: Contender, replace: bool = False) -> Probe:
        """A copy with more contenders (a user's challengers), or with them only (`replace=True`)."""
        kept = () if replace else self.contenders
        return dataclasses.replace(self, contenders=tuple(kept) + tuple(extra))

    def missing_requirements(self) -> list[str]:
        import importlib.util

        return [m for m in self.requires if importlib.util.find_spec(m) is None]


def canonical(value: Any) -> str:
    """A stable JSON text for hashing knob values and profile parameters."""
    return json.dumps(value, sort_keys=True, default=repr, separators=(",", ":"))


def stable_int(*parts: Any) -> int:
    digest = hashlib.sha256(canonical(list(parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def task_rng(probe_id: str, knob: Any, seed: int) -> np.random.Generator:
    """The task's generator: the same for every contender, so contenders are paired by seed."""
    return np.random.default_rng(stable_int(probe_id, "task", knob, seed))
