"""Verdicts from the store alone (no re-running): what `report` and `export` read."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import registry
from .probe import Contender, Probe, Profile, canonical
from .profiles import tuples
from .runner import BUDGET_SUFFIX, budget_profile, scores_of
from .stats import Verdict, decide
from .store import Store, TrialRecord


@dataclass
class LimitResult:
    """One registered limit's latest results: None profile/verdict when it has not been run."""

    probe: Probe
    profile: Profile | None
    verdict: Verdict | None
    records: list[TrialRecord]

    @property
    def wall_time(self) -> float:
        return sum(r.wall_time for r in self.records)

    @property
    def failed(self) -> list[TrialRecord]:
        return [r for r in self.records if r.status != "ok"]


def latest_profile(probe: Probe, records: list[TrialRecord]) -> tuple[Profile, list[TrialRecord]] | None:
    """The most recently run profile of this probe version, rebuilt from the stored parameters,
    with the knob values and seeds that were actually stored."""
    names = {c.name for c in probe.contenders}
    mine = [r for r in records if r.version == probe.version and not r.profile.endswith(BUDGET_SUFFIX)
            and (r.contender in names or r.role == "challenger")]
    if not mine:
        return None
    newest = max(mine, key=lambda r: r.finished)
    group = [r for r in mine if r.profile == newest.profile and r.params == newest.params]
    base = probe.profiles.get(newest.profile) or probe.profile("quick")
    fields = {f.name for f in dataclasses.fields(base)}
    params: dict[str, Any] = {k: tuples(v) for k, v in newest.params.items() if k in fields}
    seen = list(dict.fromkeys(r.knob for r in group))
    in_profile_order = [k for k in base.knob if k in seen] + [k for k in seen if k not in base.knob]
    knobs = tuple(probe.knob.order(in_profile_order))
    profile = dataclasses.replace(base, **params, knob=knobs, seeds=max(r.seed for r in group) + 1)
    return profile, group


def load(out: str | Path, ids: list[str] | None = None, probes: Sequence[Probe] | None = None
         ) -> list[LimitResult]:
    """Every registered limit (or the named ones, or the probe objects given) with its latest verdict."""
    probes = registry.select(ids) if probes is None else probes
    results = []
    with Store(out, create=False) as store:
        for probe in probes:
            records = list(store.records(probe.id))
            found = latest_profile(probe, records)
            if found is None:
                results.append(LimitResult(probe, None, None, []))
                continue
            profile, group = found
            challengers = {r.contender for r in group if r.role == "challenger"}
            judged = probe.with_contenders(*[Contender(n, "challenger", _unused) for n in sorted(challengers)])
            check = budget_profile(probe, profile)
            budget = [r for r in records if r.version == probe.version and r.profile == check.name
                      and canonical(r.params) == canonical(check.params()) and r.seed < profile.seeds]
            verdict = decide(judged, profile, scores_of(group), budget=scores_of(budget))
            results.append(LimitResult(probe, profile, verdict, group))
    return results


def _unused(*args: Any) -> None:
    """A stored challenger is judged from its records; its function is not needed (nor available)."""

