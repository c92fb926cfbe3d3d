"""Find probes: every `PROBE` in the `deeplimits.limits` package, and the `deeplimits.limits`
entry-point group (a third-party package registers `name = "pkg.module:PROBE"` there)."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from functools import cache
from importlib.metadata import entry_points

from .probe import Probe, UsageError

ENTRY_POINT_GROUP = "deeplimits.limits"


def _from_module(module: object) -> Probe | None:
    probe = getattr(module, "PROBE", None)
    return probe if isinstance(probe, Probe) else None


@cache
def all_probes() -> dict[str, Probe]:
    """id -> probe, ordered by family then id."""
    import deeplimits.limits as pkg

    found: dict[str, Probe] = {}
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if info.ispkg:
            continue
        probe = _from_module(importlib.import_module(info.name))
        if probe is not None:
            found[probe.id] = probe
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        loaded = ep.load()
        probe = loaded if isinstance(loaded, Probe) else _from_module(loaded)
        if probe is None:
            raise TypeError(f"entry point {ep.name!r} ({ep.value}) is not a deeplimits Probe")
        found.setdefault(probe.id, probe)
    return dict(sorted(found.items(), key=lambda kv: (kv[1].family, kv[0])))


def get(limit_id: str) -> Probe:
    probes = all_probes()
    if limit_id in probes:
        return probes[limit_id]
    close = difflib.get_close_matches(limit_id, list(probes), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; known: {', '.join(probes)}"
    raise UsageError(f"unknown limit {limit_id!r}{hint}")


def select(ids: list[str] | None = None) -> list[Probe]:
    """The probes named (all registered ones when none are named), validated."""
    if not ids:
        return list(all_probes().values())
    return [get(i) for i in dict.fromkeys(ids)]
