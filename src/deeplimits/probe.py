"""The probe contract: what a limit declares so the shared machinery can run and judge it.

A probe file builds one `Probe` from these small frozen dataclasses. `make_task` returns a `Task`
split in two, as scikit-learn keeps `fit`/`predict` apart from scoring: `public`, what a learner
may see (training data, test inputs, an environment factory, a problem instance), and `hidden`,
what only the probe sees (test labels, the hidden rule). A contender maps `public` to an output
(predictions, a policy, an assignment, a model); the probe's `score` turns the output into metrics.
The core never looks inside either half, so supervised learning, RL, solvers, games and cost
measurements share one contract (DESIGN.md, fairness rule 6).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # numpy loads with the first task, not with the command line
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
    lo: float = -math.inf
    hi: float = math.inf
    unit: str = ""
    log_scale: bool = False
    diagnostic: bool = False  # a built-in contender may report it about itself (train accuracy, grad variance)
    censored_by: str | None = None  # a 0/1 metric that is 1 where this value is only a bound (never reached)
    series: bool = False  # one of a long per-step series (a search's trials): stored and exported, not drawn

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
        import numpy as np

        return np.random.default_rng(self.rng_seed)


Metrics = dict[str, float]


@dataclass(frozen=True)
class Task:
    """What `make_task` returns: the learner's view and what only the probe's `score` sees."""

    public: Any  # training data, test inputs, an environment factory, a problem instance
    hidden: Any = None  # test labels, the hidden rule: never handed to a contender


@dataclass(frozen=True)
class Answer:
    """A contender's output plus diagnostics about itself (only metrics declared `diagnostic`,
    only from built-in contenders: a challenger's are dropped, the probe scores everyone)."""

    output: Any
    diagnostics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Contender:
    """A method that attempts the task.

    `fn(public, ctx) -> output` (or an `Answer`); with `batched=True`, `fn(publics, ctxs) ->
    [output]` so that many seeds can train at once (see `deeplimits.ensemble`). Results for one
    seed must not depend on which other seeds share the batch. The probe's `score` computes the
    metrics from the output. A deep arm documents in `tuning` how its hyperparameters were fixed
    (a small search at the easy end of the knob on a validation split; fairness rule 1).
    """

    name: str
    role: Role
    fn: Callable[..., Any]
    description: str = ""
    batched: bool = False
    tuning: str = ""

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
    """The positive control: where the deep arms must succeed for a failure to mean anything.

    Defaults: the rule's metric and success threshold, at the easy end of the knob. It is the
    claim's own metric and task (fairness rule 4); a ratio rule names the metric its cost is
    measured against (e.g. the return that defines "solved").
    """

    metric: str | None = None
    success: float | None = None
    knob: Any = None
    description: str = "the best deep arm at the easy end of the knob"


@dataclass(frozen=True)
class Fit:
    """How well a deep arm fits its own training data (fairness rule 2): where the claim is not
    about optimisation, a failure whose fit metric is clearly below `success` is budget-limited."""

    metric: str  # a diagnostic metric, e.g. train accuracy
    success: float


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
    timeout: float = 3600.0  # seconds one job may take before its trials are stored as failed

    def params(self) -> dict[str, Any]:
        """The parameters that define a trial (all but the knob values and the seed count)."""
        out = dataclasses.asdict(self)
        out.pop("knob")
        out.pop("seeds")
        out.pop("timeout")
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
    make_task: Callable[[Any, np.random.Generator, Any], Task]
    score: Callable[[Task, Any, Context], Metrics]  # (task, a contender's output, ctx) -> metrics
    contenders: tuple[Contender, ...]
    references: tuple[Reference, ...] = ()
    control: Control = field(default_factory=Control)
    budget: Callable[[Any], str] = lambda profile: ""
    budget_fields: tuple[str, ...] = ()  # profile fields scaled 4x in the budget check (fairness rule 3)
    fit: Fit | None = None  # None where failing to fit is the claim itself (optimisation limits)
    requires: tuple[str, ...] = ()  # importable modules the probe needs at run time
    extra: str | None = None  # the pip extra that provides them, e.g. "rl"
    # supervised-array tasks: public -> (x_train, y_train, x_test), so that a scikit-learn-style
    # estimator can challenge the limit (`deeplimits challenge --estimator`); its predict(x_test)
    # is the output the probe's score receives. A module-level function (workers import it by name).
    as_arrays: Callable[[Any], tuple[Any, Any, Any]] | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.contenders]
        if len(set(names)) != len(names):
            raise ValueError(f"probe {self.id}: contender names must be unique: {names}")
        if not any(c.role == "deep" for c in self.contenders):
            raise ValueError(f"probe {self.id}: needs a contender with role 'deep'")
        known = {m.name: m for m in self.metrics}
        judged = (self.rule.metric, self.control.metric, getattr(self.rule, "baseline_metric", None))
        for metric in (*judged, self.fit.metric if self.fit else None,
                       *(m.censored_by for m in self.metrics)):
            if metric is not None and metric not in known:
                raise ValueError(f"probe {self.id}: metric {metric!r} is not declared")
        for metric in judged:
            if metric is not None and known[metric].diagnostic:
                raise ValueError(f"probe {self.id}: metric {metric!r} decides the verdict, so the probe "
                                 "must score it: it cannot be a contender's own diagnostic")
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
    def deep_arms(self) -> tuple[Contender, ...]:
        """Every deep arm (fairness rule 1: the verdict judges the best one at each knob value)."""
        return tuple(c for c in self.contenders if c.role == "deep")

    def budget_scaled(self, profile: Profile, factor: int = 4) -> Profile:
        """The profile with its training budget scaled (the budget check's rerun)."""
        scaled = {f: type(getattr(profile, f))(getattr(profile, f) * factor) for f in self.budget_fields}
        return dataclasses.replace(profile, **scaled)

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
    import numpy as np

    """The task's generator: the same for every contender, so contenders are paired by seed."""
    return np.random.default_rng(stable_int(probe_id, "task", knob, seed))
