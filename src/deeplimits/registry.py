"""Find probes: every `PROBE` in the `deeplimits.limits` package, and the `deeplimits.limits`
entry-point group (a third-party package registers `name = "pkg.module:PROBE"` there)."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import warnings
from functools import cache
from importlib.metadata import entry_points
from typing import Any

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
        try:
            module = importlib.import_module(info.name)
        except Exception as exc:  # noqa: BLE001 - one broken probe file must not hide the others
            _warn(f"skipped {info.name}: {_oneline(exc)}")
            continue
        probe = _from_module(module)
        if probe is not None:
            found[probe.id] = probe
            _ORIGINS[probe.id] = f"{info.name}:PROBE"
    builtin = set(found)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        probe = _load_plugin(ep)
        if probe is None:
            continue
        where = f"plugin {ep.name!r} ({ep.value}) of package {_package(ep)}"
        if probe.id in found:
            owner = "a built-in limit" if probe.id in builtin else "another plugin"
            _warn(f"{where} declares id {probe.id!r}, already taken by {owner}: the plugin is ignored")
            continue
        found[probe.id] = probe
        _ORIGINS[probe.id] = ep.value
    return dict(sorted(found.items(), key=lambda kv: (kv[1].family, kv[0])))


_ORIGINS: dict[str, str] = {}  # id -> "module:attribute" it was loaded from


def origin(limit_id: str, load: bool = True) -> str | None:
    """Where a registered probe lives ("module:attribute"), so a worker can import that one alone;
    with load=False, None unless the registry has already been loaded."""
    if load:
        all_probes()
    return _ORIGINS.get(limit_id)


def load_origin(where: str, limit_id: str) -> Probe:
    """The probe at "module:attribute" (a module attribute may also be a module holding PROBE)."""
    module, _, attr = where.partition(":")
    loaded: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        loaded = getattr(loaded, part)
    probe = loaded if isinstance(loaded, Probe) else _from_module(loaded)
    if probe is None or probe.id != limit_id:
        return get(limit_id)  # moved or renamed since: the full registry decides
    return probe


class PluginWarning(UserWarning):
    """A probe module or plugin was skipped (the CLI prints it as one line)."""


def _warn(message: str) -> None:
    warnings.warn(message, PluginWarning, stacklevel=3)


def _oneline(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _package(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return repr(getattr(dist, "name", None) or ep.value.split(":")[0].split(".")[0])


def _load_plugin(ep: Any) -> Probe | None:
    """One entry point's probe; a plugin that fails to load or is not a Probe is skipped with a warning."""
    where = f"plugin {ep.name!r} ({ep.value}) of package {_package(ep)}"
    try:
        loaded = ep.load()
    except Exception as exc:  # noqa: BLE001 - one broken plugin must not break every command
        _warn(f"skipped {where}: it failed to import: {_oneline(exc)}")
        return None
    probe = loaded if isinstance(loaded, Probe) else _from_module(loaded)
    if probe is None:
        _warn(f"skipped {where}: it is a {type(loaded).__name__}, not a deeplimits Probe (or a module with PROBE)")
    return probe


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
