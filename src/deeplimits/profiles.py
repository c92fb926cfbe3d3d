"""Profile selection and user overrides (`--set d=10,20,40`, `--set steps=500`, `--seeds 10`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from .probe import Probe, Profile, UsageError


def parse_set(items: list[str] | None) -> dict[str, str]:
    """['d=10,20', 'steps=500'] -> {'d': '10,20', 'steps': '500'}; malformed items are usage errors."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"--set expects name=value (e.g. d=10,20,40), got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _coerce(text: str, like: Any, what: str) -> Any:
    """Parse `text` to the type of the current value `like`."""
    try:
        if isinstance(like, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if isinstance(like, tuple):
            inner = like[0] if like else text
            return tuple(_coerce(t.strip(), inner, what) for t in text.split(",") if t.strip())
        if isinstance(like, int):
            return int(text)
        if isinstance(like, float):
            return float(text)
        return type(like)(text)
    except ValueError:
        raise UsageError(f"{what}: cannot read {text!r} as {type(like).__name__}") from None


def resolve(probe: Probe, profile_name: str, overrides: dict[str, str] | None = None,
            seeds: int | None = None, strict: bool = True) -> Profile:
    """The probe's profile with overrides applied and validated.

    The knob is set by its own name (`d=10,20`); other names set profile fields. With `strict`,
    a name the probe does not know is an error; a multi-limit run passes strict=False and checks
    that every name is known to at least one probe.
    """
    profile = probe.profile(profile_name)
    changes: dict[str, Any] = {}
    fields = {f.name for f in dataclasses.fields(profile)} - {"name", "knob"}
    for name, text in (overrides or {}).items():
        if name == probe.knob.name:
            values = _coerce(text, profile.knob, f"knob {name}")
            if not values:
                raise UsageError(f"knob {name}: give at least one value")
            for v in values:
                probe.knob.check(v)
            changes["knob"] = tuple(dict.fromkeys(values))
        elif name in fields:
            changes[name] = _coerce(text, getattr(profile, name), f"{probe.id}.{name}")
        elif strict:
            known = ", ".join([probe.knob.name, *sorted(fields)])
            raise UsageError(f"limit {probe.id} has no knob or setting {name!r}; it has {known}")
    if seeds is not None:
        changes["seeds"] = seeds
    if changes.get("seeds", profile.seeds) < 1:
        raise UsageError("seeds must be at least 1")
    return dataclasses.replace(profile, **changes) if changes else profile


def check_names(probes: list[Probe], overrides: dict[str, str]) -> None:
    """Every --set name must mean something to at least one of the probes being run."""
    for name in overrides:
        if not any(name == p.knob.name or name in {f.name for f in dataclasses.fields(p.profile("quick"))}
                   for p in probes):
            raise UsageError(f"--set {name}: none of the selected limits has a knob or setting by that name")
