"""The static HTML atlas report (placeholder until the report issue lands)."""

from __future__ import annotations

from pathlib import Path


def build_report(out: str | Path) -> Path:
    folder = Path(out) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "index.html"
    index.write_text("<!doctype html><title>deeplimits</title><p>report not built yet</p>\n")
    return index
