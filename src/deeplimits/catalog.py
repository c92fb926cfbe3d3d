"""Probe metadata without importing the probes: `deeplimits list` in a fraction of a second.

A probe file declares `PROBE = Probe(id=..., family=..., claim=..., ...)` with literal text, so its
id, family, claim, sources, version, extra and requirements can be read from the file's syntax
tree; importing it would import torch and the probe's libraries (seconds). A probe whose
declaration is not literal (or a plugin whose file cannot be found) is imported instead, through
the registry, so every probe is listed either way.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIELDS = ("id", "family", "claim", "sources", "version", "extra", "requires")


@dataclass(frozen=True)
class Entry:
    id: str
    family: str
    claim: str
    sources: tuple[str, ...]
    version: int
    extra: str | None = None
    requires: tuple[str, ...] = ()
    module: str = ""
    estimator: bool = False  # declares `as_arrays`: `deeplimits challenge --estimator` works on it

    def missing_requirements(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


def read_file(path: Path, module: str) -> Entry | None:
    """The `PROBE = Probe(...)` declaration of one file, if its fields are literals."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    start = text.rfind("\nPROBE = Probe(")
    try:  # the declaration closes a probe file: parse just that (a tenth of the time), else the whole file
        tree = ast.parse(text[start + 1:] if start >= 0 else text)
    except (SyntaxError, ValueError):
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            return None
    for node in tree.body:
        named = isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PROBE" for t in node.targets)
        if not named:
            continue
        call = node.value
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Probe"):
            return None
        found: dict[str, Any] = {}
        for kw in call.keywords:
            if kw.arg in FIELDS:
                try:
                    found[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    return None
        if not {"id", "family", "claim", "sources", "version"} <= set(found):
            return None
        estimator = any(kw.arg == "as_arrays" and not (isinstance(kw.value, ast.Constant) and kw.value.value is None)
                        for kw in call.keywords)
        return Entry(found["id"], found["family"], found["claim"], tuple(found["sources"]), int(found["version"]),
                     found.get("extra"), tuple(found.get("requires", ())), module, estimator)
    return None


def entries() -> list[Entry]:
    """Every probe's metadata, ordered by family then id (as the registry orders probes)."""
    import deeplimits.limits as pkg

    found: dict[str, Entry] = {}
    fallback = False
    root = Path(pkg.__path__[0])
    for path in sorted(root.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        module = "deeplimits.limits." + ".".join(path.relative_to(root).with_suffix("").parts)
        entry = read_file(path, module)
        if entry is None:
            fallback = fallback or "PROBE" in path.read_text(encoding="utf-8", errors="replace")
            continue
        found.setdefault(entry.id, entry)
    from . import registry

    if fallback or list(registry.entry_points(group=registry.ENTRY_POINT_GROUP)):
        # plugins and non-literal declarations: import them (the registry warns about broken ones)
        for probe in registry.all_probes().values():
            found.setdefault(probe.id, Entry(probe.id, probe.family, probe.claim, tuple(probe.sources), probe.version,
                                             probe.extra, tuple(probe.requires), probe.make_task.__module__,
                                             probe.as_arrays is not None))
    return sorted(found.values(), key=lambda e: (e.family, e.id))
