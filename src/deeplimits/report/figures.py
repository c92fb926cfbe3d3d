"""Drawing the report's figures: one panel per figure on a fresh Agg figure, embedded as a data URI,
with a cache so that rebuilding a report redraws only the figures whose data changed."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from . import plots

FORMAT = "svg"  # "svg" (crisp, small) or "png"; both embedded as data URIs
FIGSIZE = (5.0, 3.6)
SMALL_FIGSIZE = (4.2, 3.2)
PNG_DPI = 110
PANELS_PER_WORKER = 12  # below this many panels per process, spawning costs more than it saves
RC = {
    "svg.fonttype": "none",  # text stays text: small files, the page's own font
    "svg.hashsalt": "deeplimits",  # stable ids: the same store gives the same page
    "text.parse_math": False,  # a '$' in a probe's name is text, not mathtext
    "text.usetex": False,
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.labelsize": 8.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "font.family": "DejaVu Sans",
}

def render_panel(panel: plots.Panel) -> tuple[str, list[str]]:
    """Draw one panel on a fresh Agg figure (no pyplot: no global state); a data URI and notes."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=panel.size)
        ax = fig.add_subplot()
        notes = plots.draw_panel(ax, panel)
        rotated = any(t.get_rotation() for t in ax.get_xticklabels())
        plots.legend_below(fig, ax, 3 if panel.size[0] >= FIGSIZE[0] else 2, rotated)
        buf = io.BytesIO()
        if FORMAT == "svg":
            fig.savefig(buf, format="svg", metadata={"Date": None})
            mime = "image/svg+xml"
        else:
            fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": None})
            mime = "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}", notes


def render_panels(panels: Sequence[plots.Panel], workers: int = 1, cache: Path | None = None
                  ) -> list[tuple[str, list[str]]]:
    """Every panel of the page. A figure whose data did not change is read from `cache` (a folder of
    data URIs keyed by the panel's content), so rebuilding a report redraws only what changed.
    `workers > 1` draws the rest in spawned processes (the caller's script needs a main guard)."""
    keys = [_key(p) for p in panels]
    done: dict[str, tuple[str, list[str]]] = {}
    if cache is not None:
        for key in set(keys):
            f = cache / f"{key}.json"
            if f.exists():
                try:
                    done[key] = tuple(json.loads(f.read_text()))  # type: ignore[assignment]
                except (OSError, ValueError):
                    pass
    todo = {k: p for k, p in zip(keys, panels, strict=True) if k not in done}
    workers = min(workers, os.cpu_count() or 1, len(todo) // PANELS_PER_WORKER)
    if workers <= 1:
        drawn = [render_panel(p) for p in todo.values()]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent may hold torch threads (a run that just finished)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            drawn = list(pool.map(render_panel, todo.values(), chunksize=max(1, len(todo) // (4 * workers))))
    done.update(zip(todo, drawn, strict=True))
    if cache is not None:
        _save_cache(cache, {k: done[k] for k in todo}, set(keys))
    return [done[k] for k in keys]


@functools.cache
def _code() -> bytes:
    """The drawing code itself: a changed plots.py or figures.py redraws every cached figure."""
    return Path(plots.__file__).read_bytes() + Path(__file__).read_bytes()


def _key(panel: plots.Panel) -> str:
    """What a figure depends on: the panel's data and how it is drawn."""
    blob = pickle.dumps((_code(), matplotlib.__version__, FORMAT, PNG_DPI, sorted(RC.items()), panel))
    return hashlib.sha256(blob).hexdigest()[:24]


def _save_cache(cache: Path, new: dict[str, tuple[str, list[str]]], keep: set[str]) -> None:
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for key, value in new.items():
            (cache / f"{key}.json").write_text(json.dumps(value))
        for old in cache.glob("*.json"):  # figures no longer on the page
            if old.stem not in keep:
                old.unlink()
    except OSError:  # a read-only output folder still gets its page
        pass
