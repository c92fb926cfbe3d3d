"""Profile selection and user overrides (`--set d=10,20,40`, `--set steps=500`, `--seeds 10`)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from .probe import Probe, Profile, UsageError


def tuples(value: Any) -> Any:
    """JSON gives lists back where a profile holds tuples (profiles are frozen and hashable)."""
    return tuple(tuples(v) for v in value) if isinstance(value, list) else value


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
        if isinstance(like, tuple) and text.lstrip().startswith("["):  # nested values as JSON: [["a", 0.9]]
            return tuples(json.loads(text))
        if isinstance(like, tuple):
            inner = like[0] if like else text
            try:
                return tuple(_coerce(t.strip(), inner, what) for t in text.split(",") if t.strip())
            except UsageError:
                raise UsageError(f"{what}: cannot read {text!r} as a comma-separated tuple of "
                                 f"{type(inner).__name__}") from None
        if isinstance(like, int):
            return int(text)
        if isinstance(like, float):
            return float(text)
        return type(like)(text)
    except UsageError:
        raise
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
            check_setting(profile, name, changes[name], f"{probe.id}.{name}={text}")
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


# float settings that must be strictly positive (a zero learning rate or time limit is no setting)
POSITIVE = ("lr", "learning_rate", "timeout")


def rule(profile: Profile, name: str) -> tuple[float, float, bool, str] | None:
    """The validity rule of a numeric profile field: (lo, hi, lo_open, text), or None for others.

    A profile class may declare its own ranges, `ranges: ClassVar[dict[str, tuple[float, float]]]`
    (inclusive); otherwise: an int field (or tuple of ints) is >= 1, or >= 0 where the probe's own
    value holds a 0; a float is finite and >= 0, > 0 for learning rates and the time limit.
    """
    declared = getattr(type(profile), "ranges", None) or {}
    if name in declared:
        lo, hi = declared[name]
        return float(lo), float(hi), False, f"a number in [{lo}, {hi}]"
    leaves = list(_leaves(getattr(profile, name)))
    numbers = [v for v in leaves if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return None
    if all(isinstance(v, int) for v in numbers):
        lo = 0 if min(numbers) < 1 else 1
        return lo, math.inf, False, f"an integer >= {lo}"
    if name in POSITIVE or name.endswith("_lr"):
        return 0.0, math.inf, True, "a finite number > 0"
    return 0.0, math.inf, False, "a finite number >= 0"


def check_setting(profile: Profile, name: str, value: Any, what: str) -> None:
    """Refuse a value outside its field's rule (NaN, infinities, negative sizes...), naming the range."""
    found = rule(profile, name)
    if found is None:
        return
    lo, hi, lo_open, text = found
    for v in _leaves(value):
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        bad = not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo)
        if bad:
            raise UsageError(f"{what} is out of range: {name} must be {text}")


def _leaves(value: Any) -> Any:
    if isinstance(value, tuple | list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value
