"""Expand a run into trials, skip the stored ones, execute the rest, judge each limit."""

from __future__ import annotations

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
from .stats import Scores, Verdict, decide
from .store import Store, TrialRecord, TrialSpec

DEFAULT_OUT = Path("deeplimits-out")


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

    def to_pandas(self) -> Any:
        from .export import to_frame

        return to_frame(self.records)


def expand(probe: Probe, profile: Profile, extra: Iterable[Contender] = ()) -> list[TrialSpec]:
    params = profile.params()
    contenders = list(probe.contenders) + list(extra)
    return [TrialSpec(probe.id, probe.version, c.name, c.role, knob, seed, profile.name, params)
            for c in contenders for knob in profile.knob for seed in range(profile.seeds)]


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


def plan(ids: list[str] | None, profile: str, overrides: dict[str, str] | None, seeds: int | None,
         challengers: dict[str, list[Contender]] | None = None,
         probes: list[Probe] | None = None) -> tuple[list[Plan], dict[str, str]]:
    """Validate everything before anything runs; returns the plans and the limits skipped."""
    chosen = probes if probes is not None else registry.select(ids)
    overrides = overrides or {}
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
            "probes": {p.probe.id: p.probe.version for p in plans}}


def run(ids: list[str] | None = None, profile: str = "quick", *, seeds: int | None = None,
        overrides: dict[str, str] | None = None, out: str | Path = DEFAULT_OUT, jobs: int | None = None,
        backend: str = "local", address: str | None = None, device: str = "cpu",
        challengers: dict[str, list[Contender]] | None = None, probes: list[Probe] | None = None,
        progress: bool = True, report: bool = True) -> RunResult:
    """Run limits (all registered ones by default) and return their verdicts.

    Trials already in the store are not run again; a killed run resumes where it stopped.
    `probes` runs probe objects directly (e.g. a probe with its contenders replaced) instead of ids.
    """
    started = time.perf_counter()
    plans, skipped = plan(ids, profile, overrides, seeds, challengers, probes)
    device = resolve_device(device)
    exe = make_backend(backend, jobs, address)
    store = Store(out)
    try:
        all_specs = [s for p in plans for s in p.specs]
        done = store.finished_keys(s.key for s in all_specs)
        jobs_to_run = _jobs(plans, done, device)
        run_id = uuid.uuid4().hex[:12]
        store.start_run(run_id, run_facts(profile, device, plans))
        by_key = {s.key: s for s in all_specs}
        todo = sum(len(j.specs) for j in jobs_to_run)
        with _progress(progress, todo, len(done)) as bar:
            for job, outcomes in exe.run(jobs_to_run, {p.probe.id: p.probe for p in plans}):
                for key, metrics, error, wall in outcomes:
                    store.put(TrialRecord.from_spec(by_key[key], metrics, error, wall, device, run_id))
                bar(job, len(outcomes))
        store.end_run(run_id)
        stored = store.get(by_key)
        verdicts, records = {}, []
        for p in plans:
            recs = [stored[s.key] for s in p.specs if s.key in stored]
            records.extend(recs)
            verdicts[p.probe.id] = decide(p.probe, p.profile, scores_of(recs))
    finally:
        exe.close()
        store.close()
    result = RunResult(Path(out), verdicts, records, time.perf_counter() - started, todo, skipped)
    if report:
        from .report import build_report

        build_report(out)
    return result


def _jobs(plans: list[Plan], done: set[str], device: str) -> list[Job]:
    """Group missing seeds by (limit, contender, knob): batched contenders get them in one job."""
    jobs = []
    for p in plans:
        groups: dict[tuple[str, str], list[TrialSpec]] = defaultdict(list)
        for s in p.specs:
            if s.key not in done:
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
        self.enabled, self.total, self.already = enabled and total > 0, total, already

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda job, n: None
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

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)
