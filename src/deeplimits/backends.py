"""Where trials execute. A backend maps the one job function over jobs and yields results as they
finish; the parent alone writes the store. `local` is a process pool (or inline with one job,
`pool.py`); a Ray backend (`ray_backend.py`) implements the same two methods without touching
any probe. This module holds what every backend shares: the job, and the job function that runs
a contender on the public half of its tasks and has the probe score the outputs."""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from .probe import Answer, Contender, Context, Probe, Task, UsageError, task_rng
from .store import TrialSpec

Outcome = tuple[str, dict[str, float] | None, str | None, float]  # key, metrics, error, wall time


@dataclass(frozen=True)
class Job:
    """Seeds of one (limit, contender, knob) run together (a batched contender trains them at once)."""

    specs: tuple[TrialSpec, ...]
    profile: Any
    device: str
    challenger: Contender | None = None  # user contenders travel with the job; probes by id

    @property
    def label(self) -> str:
        s = self.specs[0]
        return f"{s.limit_id} · {s.contender} · {s.knob}"


def _check_metrics(probe: Probe, metrics: Any) -> str | None:
    """None when the contender's output is a dict of finite numbers in range, else the problem."""
    if not isinstance(metrics, dict) or not metrics:
        return f"contender returned {type(metrics).__name__}, expected a dict of metrics"
    known = {m.name: m for m in probe.metrics}
    for name, value in metrics.items():
        if name not in known:
            return f"unknown metric {name!r} (declared: {', '.join(known)})"
        try:
            value = float(value)
        except (TypeError, ValueError):
            return f"metric {name} is not a number: {value!r}"
        if not math.isfinite(value):
            return f"metric {name} is {value}"
        if not known[name].lo <= value <= known[name].hi:
            return f"metric {name}={value:g} outside its range [{known[name].lo}, {known[name].hi}]"
    return None


def make_tasks(probe: Probe, knob: Any, seeds: list[int], profile: Any) -> list[Task]:
    tasks = [probe.make_task(knob, task_rng(probe.id, knob, seed), profile) for seed in seeds]
    for t in tasks:
        if not isinstance(t, Task):
            raise TypeError(f"probe {probe.id}: make_task must return a deeplimits.Task(public, hidden), "
                            f"got {type(t).__name__}")
    return tasks


def run_contender(probe: Probe, contender: Contender, knob: Any, seeds: list[int], profile: Any,
                  device: str = "cpu") -> list[Any]:
    """One contender on the tasks of the given seeds, outside the store (errors propagate): its
    outputs, each an `Answer`. The contender sees only each task's public half."""
    tasks = make_tasks(probe, knob, seeds, profile)
    ctxs = [Context(probe.id, contender.name, knob, seed, profile, device) for seed in seeds]
    if not contender.batched:
        outputs = [contender.fn(t.public, c) for t, c in zip(tasks, ctxs)]
    else:
        outputs = list(contender.fn([t.public for t in tasks], ctxs))
        if len(outputs) != len(seeds):
            raise ValueError(f"batched contender returned {len(outputs)} results for {len(seeds)} seeds")
    return [o if isinstance(o, Answer) else Answer(o) for o in outputs]


def score_outputs(probe: Probe, contender: Contender, knob: Any, seeds: list[int], profile: Any,
                  answers: list[Answer], device: str = "cpu") -> list[Any]:
    """The probe scores each output (fairness rule 6: a contender never reports its own score).
    Built-in contenders may add diagnostics about themselves; a challenger's are dropped."""
    tasks = make_tasks(probe, knob, seeds, profile)
    diagnostic = {m.name for m in probe.metrics if m.diagnostic}
    out = []
    for task, seed, answer in zip(tasks, seeds, answers):
        ctx = Context(probe.id, contender.name, knob, seed, profile, device)
        metrics = probe.score(task, answer.output, ctx)
        if not isinstance(metrics, dict):
            raise TypeError(f"probe {probe.id}: score must return a dict of metrics, got {type(metrics).__name__}")
        extra = {} if contender.role == "challenger" else dict(answer.diagnostics)
        claimed = sorted(set(extra) - diagnostic)
        if claimed:
            raise ValueError(f"contender {contender.name} reported {', '.join(claimed)} itself; only metrics "
                             "declared diagnostic may come from a contender, the probe scores the rest")
        out.append({**metrics, **extra})
    return out


def evaluate(probe: Probe, contender: Contender, knob: Any, seeds: list[int], profile: Any,
             device: str = "cpu") -> list[Any]:
    """What a trial computes (outside the store; errors propagate): the probe's metrics per seed."""
    answers = run_contender(probe, contender, knob, seeds, profile, device)
    return score_outputs(probe, contender, knob, seeds, profile, answers, device)


def execute_job(job: Job, probe: Probe | None = None) -> list[Outcome]:
    """Run one job; never raises: an error becomes a failed trial with its text."""
    from . import registry

    start = time.perf_counter()
    specs = job.specs
    try:
        probe = probe or registry.get(specs[0].limit_id)
        contender = job.challenger or probe.contender(specs[0].contender)
        results = evaluate(probe, contender, specs[0].knob, [s.seed for s in specs], job.profile, job.device)
    except Exception as exc:  # noqa: BLE001 - a failing method is a result, recorded with its text
        wall = (time.perf_counter() - start) / len(specs)
        last = traceback.extract_tb(exc.__traceback__)[-1]
        error = f"{type(exc).__name__}: {exc} ({os.path.basename(last.filename)}:{last.lineno})"
        return [(s.key, None, error, wall) for s in specs]
    wall = (time.perf_counter() - start) / len(specs)
    out: list[Outcome] = []
    for spec, metrics in zip(specs, results):
        problem = _check_metrics(probe, metrics)
        clean = None if problem else {k: float(v) for k, v in metrics.items()}
        out.append((spec.key, clean, problem, wall))
    return out


class Backend(Protocol):
    def run(self, jobs: list[Job], probes: dict[str, Probe]) -> Iterator[tuple[Job, list[Outcome]]]: ...

    def close(self) -> None: ...


def make_backend(name: str, jobs: int | None = None, address: str | None = None, out: Any = None) -> Backend:
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if name == "local":
        from .pool import LocalBackend

        return LocalBackend(jobs)
    if name == "ray":
        from .ray_backend import RayBackend

        return RayBackend(jobs, address, out)
    raise UsageError(f"unknown backend {name!r}; choose local or ray")
