"""The static HTML atlas report: one folder, `<out>/report/index.html`, that opens from disk.

Built from the store alone (no re-running): every registered limit with its latest verdict, its
figures (embedded as data URIs, so no server, network, CDN or external font is needed) and the
facts of the runs that produced it.

    from deeplimits.report import build_report
    build_report("deeplimits-out")                  # every registered limit
    build_report(out, probes=[my_probe])            # probes that are not registered
    build_report(out, results=[...])                # LimitResults computed elsewhere

The plotting functions (`deeplimits.report.plots`) draw on an `ax` you pass, for notebooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..probe import Probe
from ..results import LimitResult

__all__ = ["build_report", "load_results", "render_html"]

TEMPLATE = "template.html"
CACHE_DIR = ".report-cache"


def load_results(out: str | Path, probes: Sequence[Probe] | None = None) -> list[LimitResult]:
    """`results.load` for every registered limit, or the same judgement for the probes given."""
    from .. import results

    return results.load(out, probes=probes)


def _runs(out: Path) -> list[dict[str, Any]]:
    from ..store import STORE_NAME, Store

    if not (out / STORE_NAME).exists():
        return []
    with Store(out, create=False) as store:
        return store.runs()


def render_html(results: Sequence[LimitResult], runs: Sequence[dict[str, Any]] = (), workers: int = 1,
                cache: Path | None = None) -> str:
    """The page as a string (autoescaped: probe text is data, never markup)."""
    import jinja2

    from .. import __version__
    from .render import context

    env = jinja2.Environment(loader=jinja2.PackageLoader("deeplimits", "report"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template(TEMPLATE).render(context(list(results), runs, __version__, workers, cache))


def build_report(out: str | Path, results: Sequence[LimitResult] | None = None,
                 probes: Sequence[Probe] | None = None, workers: int = 1, cache: bool = True) -> Path:
    """Write `<out>/report/index.html` from the store in `out` and return its path.

    `results` (already judged) or `probes` (judged here from the store) replace the registered
    limits. Figures whose data did not change come from `<out>/.report-cache/` unless `cache=False`;
    `workers > 1` draws the others in that many processes (call it under `if __name__ == "__main__"`).
    """
    out = Path(out)
    if results is None:
        results = load_results(out, probes)
    html = render_html(results, _runs(out), workers, out / CACHE_DIR if cache else None)
    folder = out / "report"
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "index.html"
    tmp = index.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(index)  # a reader never sees half a page
    return index
