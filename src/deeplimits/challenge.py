"""Bring your own model and try to break a limit: `deeplimits challenge` and `deeplimits.challenge`.

A challenger is a contender with role `challenger`. It sees what a learner sees (the task's
`public` half) and returns an output that the probe scores, exactly like the built-in contenders
(fairness rule 6), so it cannot grade itself. It comes from

- a file or module, `path/to/file.py:make` or `package.module:make`: `make()` returns a
  `Contender`, or `make` is itself the learner function `fn(public, ctx) -> output`;
- a scikit-learn-style estimator class, `sklearn.ensemble:RandomForestClassifier` with params,
  for probes that declare an arrays adapter (`Probe.as_arrays`): it is fitted on the training
  arrays and its predictions for the test inputs are the output;
- from Python, also a `Contender` or a function.

Loading a challenger executes the user's code. Its trials are stored under `name@<hash>`, the hash
of its source (or of the estimator class, version and parameters), so a changed challenger re-runs
while the stored deep and alternative trials are reused. A challenger travels to worker processes
(the local pool, Ray) by its file or module path, never by pickled code.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .challengers import (  # noqa: F401 - re-exported: the loading half of this module's API
    SIGNATURE,
    EstimatorFn,
    LoadedFn,
    _doc,
    estimator_contender,
    load_challenger,
    one_line,
    parse_param,
)
from .probe import Contender, Probe, UsageError, task_rng


# --- running a challenge ------------------------------------------------------------------------
@dataclass
class ChallengeRow:
    knob: Any
    deep_arm: str
    deep: tuple[float, float, float] | None  # mean, lo, hi of the best deep arm on the rule's metric
    challenger: tuple[float, float, float] | None
    broken: bool


@dataclass
class ChallengeResult:
    limit: str
    challenger: str
    knob: str
    metric: str
    broke: list[Any]
    rows: list[ChallengeRow]
    outcome: str  # the limit's verdict at this profile
    run: Any  # the RunResult
    failed: list[Any] = field(default_factory=list)  # the challenger's failed trials

    @property
    def sentence(self) -> str:
        if self.broke:
            return f"{self.challenger} breaks {self.limit} at {self.knob} = {', '.join(map(_fmt, self.broke))}"
        why = ""
        if self.failed and len(self.failed) == sum(1 for r in self.run.records if r.contender == self.challenger):
            why = f": every challenger trial failed ({self.failed[0].error})"
        elif self.outcome != "holds":
            why = f" (the limit's verdict here is '{self.outcome}': the deep arms do not clearly fail anywhere)"
        return f"{self.challenger} does not break it{why}"


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def challenge(limit: str, contender: str | Contender | Callable[..., Any] | None = None, *,
              estimator: str | type | None = None, params: Mapping[str, Any] | None = None,
              name: str | None = None, profile: str = "quick", overrides: Mapping[str, Any] | None = None,
              seeds: int | None = None, out: str | Path | None = None, jobs: int | None = None,
              backend: str = "local", address: str | None = None, device: str = "cpu",
              progress: bool = True, report: bool = True) -> ChallengeResult:
    """Run a challenger against one limit and say where it succeeds while every deep arm fails.

    `contender`: 'path/to/file.py:make', 'package.module:make', a Contender or a function
    fn(public, ctx) -> output. Or `estimator` ('sklearn.ensemble:RandomForestClassifier' or the
    class) with `params`, for limits that declare `as_arrays`. Overrides may be typed
    ({'d': [5, 25]}) or text ({'d': '5,25'}). Stored trials of the limit's own contenders at the
    same profile are reused. Loading a challenger executes its code.
    """
    from . import registry
    from .runner import DEFAULT_OUT, text_overrides
    from .runner import run as run_api

    probe = registry.get(limit)
    if params and estimator is None:
        raise UsageError("--param goes with --estimator")
    if (contender is None) == (estimator is None):
        raise UsageError("give exactly one of a contender (file.py:make, package.module:make) or an estimator")
    made = (estimator_contender(probe, estimator, params, name) if estimator is not None
            else load_challenger(probe, contender, name))
    res = run_api([limit], profile, seeds=seeds, overrides=text_overrides(overrides), out=out or DEFAULT_OUT,
                  jobs=jobs, backend=backend, address=address, device=device, challengers={limit: [made]},
                  progress=progress, report=report, budget_check=False)
    return summarize(probe, made.name, res)


def summarize(probe: Probe, name: str, res: Any) -> ChallengeResult:
    verdict = res.verdicts[probe.id]
    metric = probe.rule.metric
    cells = {(c.contender, c.knob): c for c in verdict.cells if c.metric == metric}
    broke = list(verdict.challengers.get(name, []))
    rows = []
    for k, arm in verdict.best_arm.items():
        d, c = cells.get((arm, k)), cells.get((name, k))
        rows.append(ChallengeRow(k, arm, (d.mean, d.lo, d.hi) if d and d.n else None,
                                 (c.mean, c.lo, c.hi) if c and c.n else None, k in broke))
    failed = [r for r in res.records if r.contender == name and r.status != "ok"]
    return ChallengeResult(probe.id, name, probe.knob.name, metric, broke, rows, verdict.outcome, res, failed)


# --- what a learner sees --------------------------------------------------------------------------
def describe(value: Any, depth: int = 0) -> str:
    """A short structural description of a task's public half: types, shapes, fields."""
    if depth > 2:
        return type(value).__name__
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        return f"{type(value).__module__.split('.')[0]}.{type(value).__name__}[{value.dtype}] {tuple(shape)}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        inner = ", ".join(f"{f.name}: {describe(getattr(value, f.name), depth + 1)}"
                          for f in dataclasses.fields(value))
        return f"{type(value).__name__}({inner})"
    if isinstance(value, dict):
        items = list(value.items())[:8]
        inner = ", ".join(f"{k!r}: {describe(v, depth + 1)}" for k, v in items)
        return "{" + inner + (", …}" if len(value) > 8 else "}")
    if isinstance(value, tuple | list):
        head = ", ".join(describe(v, depth + 1) for v in list(value)[:4])
        return f"{type(value).__name__} of {len(value)}: ({head}{', …' if len(value) > 4 else ''})"
    if callable(value):
        return f"callable {getattr(value, '__name__', type(value).__name__)}"
    if isinstance(value, int | float | str | bool) or value is None:
        text = repr(value)
        return f"{type(value).__name__} {text if len(text) < 40 else text[:37] + '…'}"
    return type(value).__name__


def learner_view(probe: Probe) -> list[str]:
    """Lines for `deeplimits show`: the public half of one smoke task and the challenger signature."""
    prof = probe.profile("smoke")
    knob = probe.knob.order(list(prof.knob))[0]
    lines = []
    try:
        public = probe.make_task(knob, task_rng(probe.id, knob, 0), prof).public
        lines.append(f"public (smoke profile, {probe.knob.name} = {knob}, seed 0): {describe(public)}")
    except Exception as exc:  # noqa: BLE001 - show must not fail because a task cannot be built here
        lines.append(f"public: could not build a smoke task here ({one_line(exc)})")
    lines.append(f"a challenger implements {SIGNATURE}; ctx has knob, profile, seed, rng(), device; "
                 "or make() -> deeplimits.Contender(name, 'challenger', fn, batched=...)")
    doc = _doc(probe.score)
    lines.append(f"its output is scored by {probe.score.__module__}.{getattr(probe.score, '__name__', 'score')}"
                 + (f": {doc}" if doc else ""))
    if getattr(probe, "as_arrays", None) is not None:
        lines.append("estimator: accepted (--estimator package.module:Class): fitted on as_arrays(public) = "
                     "(x_train, y_train, x_test); its predict(x_test) is the output")
    else:
        lines.append("estimator: not accepted (the task is not declared as arrays); use --contender")
    return lines


def accepts_estimator(probe: Probe) -> bool:
    return getattr(probe, "as_arrays", None) is not None


__all__ = ["SIGNATURE", "ChallengeResult", "ChallengeRow", "EstimatorFn", "LoadedFn", "accepts_estimator",
           "challenge", "describe", "estimator_contender", "learner_view", "load_challenger", "parse_param"]



class _CallableModule(types.ModuleType):
    """`deeplimits.challenge(...)` is this module once it has been imported (Python binds a loaded
    submodule to the package's attribute), so calling the module calls `challenge`."""

    def __call__(self, *args: Any, **kwargs: Any) -> ChallengeResult:
        return challenge(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
