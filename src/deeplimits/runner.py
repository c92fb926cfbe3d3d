"""Expand a run into trials, skip the stored ones, execute the rest, judge each limit."""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__, profiles, registry
from .backends import Job, make_backend
from .probe import Contender, Probe, Profile, UsageError
from .stats import BUDGET_FACTOR, Scores, Verdict, budget_knobs, decide
from .store import DEFAULT_OUT, Store, TrialRecord, TrialSpec  # DEFAULT_OUT re-exported for the API

BUDGET_SUFFIX = f"×{BUDGET_FACTOR}"  # profile name suffix of the budget check's trials


@dataclass
class Plan:
    """One probe's share of a run: its resolved profile and every trial spec."""

    probe: Probe
    profile: Profile
    specs: list[TrialSpec]


@dataclass
class RunResult:
    out: Path
    verdicts: dict[str, Verdict]
    records: list[TrialRecord]
    wall_time: float
    ran: int  # trials executed in this call (the rest came from the store)
    skipped: dict[str, str] = field(default_factory=dict)  # limit -> why it did not run

    @property
    def failed(self) -> list[TrialRecord]:
        return [r for r in self.records if r.status != "ok"]

    def to_pandas(self, shape: str = "wide") -> Any:
        """Trials as a DataFrame: `wide` (one row per trial, m_<metric> columns) or `long` (tidy:
        one row per trial and metric). Needs the [data] extra."""
        from .export import to_frame

        return to_frame(self.records, shape)

    def cells(self) -> Any:
        """Every verdict's cells (limit, contender, knob, metric, mean, lo, hi, n) as a DataFrame."""
        from .export import _pandas, cell_rows

        return _pandas().DataFrame(cell_rows(self.verdicts.values()))


def expand(probe: Probe, profile: Profile, extra: Iterable[Contender] = ()) -> list[TrialSpec]:
    params = profile.params()
    contenders = list(probe.contenders) + list(extra)
    return [TrialSpec(probe.id, probe.version, c.name, c.role, knob, seed, profile.name, params)
            for c in contenders for knob in profile.knob for seed in range(profile.seeds)]


def budget_profile(probe: Probe, profile: Profile) -> Profile:
    """The budget check's profile: the training budget scaled, stored under its own name."""
    return dataclasses.replace(probe.budget_scaled(profile, BUDGET_FACTOR), name=f"{profile.name}{BUDGET_SUFFIX}")


def scores_of(records: Iterable[TrialRecord]) -> Scores:
    """Stored records -> the stats module's data convention scores[contender][knob][seed]."""
    scores: dict[str, dict[Any, dict[int, Any]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        scores[r.contender][r.knob][r.seed] = r.metrics if r.status == "ok" else None
    return scores


def resolve_device(device: str) -> str:
    if device not in ("cpu", "cuda", "auto"):
        raise UsageError(f"unknown device {device!r}; choose cpu, cuda or auto")
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is visible to torch (is this a CPU build?)")
    return device


def text_overrides(overrides: dict[str, Any] | None) -> dict[str, str]:
    """Typed overrides from Python ({"d": [5, 25], "steps": 500}) as the text `--set` takes ("5,25")."""
    return {k: v if isinstance(v, str) else ",".join(map(str, v)) if isinstance(v, list | tuple) else str(v)
            for k, v in (overrides or {}).items()}


def plan(ids: list[str] | None, profile: str, overrides: dict[str, Any] | None, seeds: int | None,
         challengers: dict[str, list[Contender]] | None = None,
         probes: list[Probe] | None = None) -> tuple[list[Plan], dict[str, str]]:
    """Validate everything before anything runs; returns the plans and the limits skipped."""
    chosen = probes if probes is not None else registry.select(ids)
    overrides = text_overrides(overrides)
    if len(chosen) > 1:
        profiles.check_names(chosen, overrides)
    plans, skipped = [], {}
    for probe in chosen:
        missing = probe.missing_requirements()
        if missing:
            why = (f"needs the [{probe.extra}] extra: pip install 'deeplimits[{probe.extra}]' "
                   f"(missing {', '.join(missing)})")
            if ids:
                raise UsageError(f"limit {probe.id} {why}")
            skipped[probe.id] = why
            continue
        prof = profiles.resolve(probe, profile, overrides, seeds, strict=len(chosen) == 1)
        extra = (challengers or {}).get(probe.id, [])
        if extra:
            probe = probe.with_contenders(*extra)
        plans.append(Plan(probe, prof, expand(probe, prof)))
    return plans, skipped


def run_facts(profile: str, device: str, plans: list[Plan]) -> dict[str, Any]:
    import numpy
    import torch

    return {"deeplimits": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "torch": torch.__version__, "numpy": numpy.__version__, "profile": profile,
            "device": device, "cores": os.cpu_count(), "argv": sys.argv,
            "probes": {p.probe.id: p.probe.version for p in plans},
            "challengers": {p.probe.id: {c.name: c.description for c in p.probe.contenders if c.role == "challenger"}
                            for p in plans if any(c.role == "challenger" for c in p.probe.contenders)}}


def run(ids: list[str] | None = None, profile: str = "quick", *, seeds: int | None = None,
        overrides: dict[str, Any] | None = None, out: str | Path = DEFAULT_OUT, jobs: int | None = None,
        backend: str = "local", address: str | None = None, device: str = "cpu",
        challengers: dict[str, list[Contender]] | None = None, probes: list[Probe] | None = None,
        progress: bool = True, report: bool = True, budget_check: bool = True) -> RunResult:
    """Run limits (all registered ones by default) and return their verdicts.

    Trials already in the store are not run again; a killed run resumes where it stopped.
    `probes` runs probe objects directly (e.g. a probe with its contenders replaced) instead of ids.
    Where a limit holds, its best deep arm is rerun with 4x the budget at the breaking point
    (`budget_check=False` skips that).
    """
    started = time.perf_counter()
    plans, skipped = plan(ids, profile, overrides, seeds, challengers, probes)
    device = resolve_device(device)
    exe = make_backend(backend, jobs, address, out=out)
    store = Store(out)
    try:
        all_specs = [s for p in plans for s in p.specs]
        done = store.finished_keys(s.key for s in all_specs)
        run_id = uuid.uuid4().hex[:12]
        store.start_run(run_id, run_facts(profile, device, plans))
        todo = len(all_specs) - len(done)
        with _progress(progress, todo, len(done)) as bar:
            _execute(exe, store, plans, all_specs, done, device, run_id, bar)
            verdicts, records = {}, []
            for p in plans:
                recs = _stored(store, p.specs)
                records.extend(recs)
                verdict = decide(p.probe, p.profile, scores_of(recs))
                if budget_check and p.probe.budget_fields:
                    verdict, extra = _budget_check(exe, store, p, verdict, recs, device, run_id, bar)
                    todo += extra
                verdicts[p.probe.id] = verdict
        store.end_run(run_id)
    finally:
        exe.close()
        store.close()
    result = RunResult(Path(out), verdicts, records, time.perf_counter() - started, todo, skipped)
    if report:
        from .report import build_report

        build_report(out)
    return result


def _stored(store: Store, specs: list[TrialSpec]) -> list[TrialRecord]:
    stored = store.get(s.key for s in specs)
    return [stored[s.key] for s in specs if s.key in stored]


def _execute(exe: Any, store: Store, plans: list[Plan], specs: list[TrialSpec], done: set[str], device: str,
             run_id: str, bar: Any) -> None:
    """Run the specs not yet stored, storing each trial the moment it finishes."""
    by_key = {s.key: s for s in specs}
    for job, outcomes in exe.run(_jobs(plans, specs, done, device), {p.probe.id: p.probe for p in plans}):
        for key, metrics, error, wall in outcomes:
            store.put(TrialRecord.from_spec(by_key[key], metrics, error, wall, device, run_id))
        bar(job, len(outcomes))


def _budget_check(exe: Any, store: Store, p: Plan, verdict: Verdict, recs: list[TrialRecord], device: str,
                  run_id: str, bar: Any) -> tuple[Verdict, int]:
    """Fairness rule 3: rerun the best deep arm with 4x the budget from the breaking point on."""
    prof = budget_profile(p.probe, p.profile)
    scores = scores_of(recs)
    ran, budget_recs = 0, []
    while (nxt := budget_knobs(p.probe, verdict, scores, scores_of(budget_recs))) is not None:
        arm, knob = nxt
        specs = [TrialSpec(p.probe.id, p.probe.version, arm, "deep", knob, seed, prof.name, prof.params())
                 for seed in range(prof.seeds)]
        done = store.finished_keys(s.key for s in specs)
        bar.grow(len(specs) - len(done))
        ran += len(specs) - len(done)
        _execute(exe, store, [Plan(p.probe, prof, specs)], specs, done, device, run_id, bar)
        new = _stored(store, specs)
        if not any(r.status == "ok" for r in new):
            budget_recs.extend(new)
            break
        budget_recs.extend(new)
    return decide(p.probe, p.profile, scores, budget=scores_of(budget_recs)), ran


def _jobs(plans: list[Plan], specs: list[TrialSpec], done: set[str], device: str) -> list[Job]:
    """Group missing seeds by (limit, contender, knob): batched contenders get them in one job."""
    jobs = []
    wanted = {s.key for s in specs}
    for p in plans:
        groups: dict[tuple[str, str], list[TrialSpec]] = defaultdict(list)
        for s in p.specs:
            if s.key in wanted and s.key not in done:
                groups[(s.contender, repr(s.knob))].append(s)
        for (name, _), specs in groups.items():
            contender = p.probe.contender(name)
            challenger = contender if contender.role == "challenger" else None
            chunks = [specs] if contender.batched else [[s] for s in specs]
            jobs.extend(Job(tuple(c), p.profile, device, challenger) for c in chunks)
    return jobs


class _progress:
    """A rich progress bar with ETA over trials (silent when disabled)."""

    def __init__(self, enabled: bool, total: int, already: int) -> None:
        self.enabled, self.total, self.already = enabled, total, already

    def __enter__(self) -> Any:
        if not self.enabled:
            advance = lambda job, n: None
            advance.grow = lambda n: None
            return advance
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=False)
        self.bar.__enter__()
        note = f" ({self.already} already stored)" if self.already else ""
        self.task = self.bar.add_task(f"trials{note}", total=self.total)

        def advance(job: Job, n: int) -> None:
            self.bar.update(self.task, advance=n, description=f"{job.label}{note}")

        def grow(n: int) -> None:
            self.total += n
            self.bar.update(self.task, total=self.total)

        advance.grow = grow
        return advance

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)
