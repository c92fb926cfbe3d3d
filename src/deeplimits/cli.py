"""The `deeplimits` command: thin over the Python API. Usage errors print one line and exit 2."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from . import __version__, profiles, registry
from .entry import (  # noqa: F401 - the exit codes are part of this module's documented interface
    TRIALS_FAILED,
    VERDICT_CHANGED,
    _check_address,
    _check_jobs,
    _check_out,
    _describe,
    _exit_code,
    _os_error,
    _read_baseline,
)
from .probe import PROFILE_NAMES, Threshold, UsageError
from .store import DEFAULT_OUT

app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="deeplimits: an executable atlas of where deep learning fails.\n\n"
                       "Exit codes: 0 done; 1 the report could not be written; 2 usage error; 3 some trials failed "
                       "(stored as failed, retried on the next run); 4 a verdict differs from --baseline; "
                       "130 Ctrl-C; 143 SIGTERM.")


class ProfileName(StrEnum):
    smoke = "smoke"
    quick = "quick"
    paper = "paper"


class Device(StrEnum):
    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"


class BackendName(StrEnum):
    local = "local"
    ray = "ray"


class Format(StrEnum):
    csv = "csv"
    json = "json"
    parquet = "parquet"


class Shape(StrEnum):
    wide = "wide"
    long = "long"


def _version(value: bool) -> None:
    if value:
        print(f"deeplimits {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print the version and exit")] = False) -> None:
    """deeplimits: an executable atlas of where deep learning fails."""


def _json(data: Any) -> None:
    """Machine-readable output on stdout (no colour, no wrapping)."""
    from .export import _plain

    print(json.dumps(_plain(data), indent=1, ensure_ascii=False, default=str))
console = Console()
BADGES = {"holds": "bold red", "does not hold": "bold green", "inconclusive": "yellow", "invalid": "magenta"}

REPORT_FAILED = 1  # exit code of a run whose trials and verdicts are fine but whose report could not be written
Out = Annotated[Path, typer.Option("--out", "-o", help="output folder (store + report)")]


@app.command("list")
def list_limits(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Every registered limit: id, family, claim (cut to fit; `show` has it whole), status."""
    from .catalog import entries  # read from the probe files: no torch, no probe imported

    rows = []
    for e in entries():
        missing = e.missing_requirements()
        status = (f"needs [{e.extra}]" if missing else "ready") + (", takes --estimator" if e.estimator else "")
        rows.append({"id": e.id, "family": e.family, "claim": e.claim, "version": e.version, "sources": e.sources,
                     "status": status, "extra": e.extra, "estimator": e.estimator})
    if as_json:
        return _json(rows)
    table = Table("id", "family", "claim", "status", show_lines=False, pad_edge=False)
    table.columns[2].no_wrap, table.columns[2].overflow = True, "ellipsis"
    table.columns[2].ratio = 1
    table.expand = True
    for r in rows:  # probe text is data: Text cells print `[/i]` or `[lo, hi]` literally, never as markup
        table.add_row(*map(Text, (r["id"], r["family"], r["claim"], r["status"])))
    console.print(table)


@app.command()
def show(limit_id: str, as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """One limit: claim, sources, knob, contenders, metrics, profiles, reference figures."""
    p = registry.get(limit_id)
    if as_json:
        return _json(_describe(p))
    e = escape  # probe text is data, printed literally (never read as rich markup)
    console.print(f"[bold]{e(p.id)}[/] ({e(p.family)}, version {p.version})\n{e(p.claim)}\n")
    console.print("[bold]sources[/]: " + e("; ".join(p.sources)))
    console.print(f"[bold]knob[/] {e(p.knob.name)}: {e(p.knob.description)} (harder when {p.knob.harder})")
    rule = p.rule
    what = (f"{rule.metric} succeeds at {'≥' if p.metric(rule.metric).direction == 'higher' else '≤'} {rule.success}"
            if isinstance(rule, Threshold) else f"{rule.kind} on {rule.metric}: {rule}")
    console.print(f"[bold]rule[/]: {e(what)}; positive control: {e(p.control.description)}")
    table = Table("contender", "role", "description")
    for c in p.contenders:
        table.add_row(Text(c.name), Text(c.role), Text(c.description))
    console.print(table)
    metrics = Table("metric", "direction", "chance", "description")
    for m in (m for m in p.metrics if not m.series):  # per-trial series stay in the store and exports
        metrics.add_row(Text(m.name), m.direction, "" if m.chance is None else str(m.chance), Text(m.description))
    console.print(metrics)
    profs = Table("profile", e(p.knob.name), "seeds", "budget")
    for name in PROFILE_NAMES:
        prof = p.profile(name)
        profs.add_row(name, Text(", ".join(map(str, prof.knob))), str(prof.seeds), Text(p.budget(prof)))
    console.print(profs)
    for ref in p.references:
        console.print(f"[bold]reference[/] {e(ref.source)} ({e(ref.provenance)}): {e(ref.value)}\n"
                      f"  setup: {e(ref.setup)}")
    from .challenge import learner_view

    console.print("[bold]what a learner sees[/] (deeplimits challenge):")
    for line in learner_view(p):
        console.print(Text(f"  {line}"))


@app.command()
def run(
    ids: Annotated[list[str] | None, typer.Argument(help="limit ids (default: every registered limit)")] = None,
    profile: Annotated[ProfileName, typer.Option(help="budget profile")] = ProfileName.quick,
    seeds: Annotated[int | None, typer.Option(help="seeds per cell (default: the profile's)")] = None,
    jobs: Annotated[int | None, typer.Option(help="worker processes (default: cores)")] = None,
    backend: Annotated[BackendName, typer.Option(help="where trials run")] = BackendName.local,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --backend ray)")] = None,
    device: Annotated[Device, typer.Option(help="torch device")] = Device.cpu,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override: knob=v1,v2 or field=value")] = None,
    out: Out = DEFAULT_OUT,
    no_report: Annotated[bool, typer.Option("--no-report", help="skip writing the HTML report")] = False,
    no_budget_check: Annotated[bool, typer.Option("--no-budget-check",
                                                  help="skip the 4x budget rerun at breaking points")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar; print only the verdict table")
                     ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the verdicts as JSON (implies --quiet)")] = False,
    baseline: Annotated[Path | None, typer.Option(help="a `verdicts --json` file: exit 4 when a verdict differs")
                        ] = None,
) -> int:
    """Run limits, store every trial, print the verdicts and write the report."""
    from .runner import run as run_api

    _check_jobs(jobs)
    _check_address(backend.value, address)
    _check_out(out)  # creates nothing: the store makes the folder once every input is valid
    expected = _read_baseline(baseline)
    result = run_api(ids or None, profile.value, seeds=seeds, overrides=profiles.parse_set(set_), out=out, jobs=jobs,
                     backend=backend.value, address=address, device=device.value, report=False,
                     progress=not (quiet or as_json), budget_check=not no_budget_check)
    failed = result.failed
    if as_json:
        from .export import verdict_records

        _json({"verdicts": verdict_records(result.verdicts.values()), "skipped": result.skipped,
               "ran": result.ran, "failed": len(failed), "wall_time": result.wall_time})
    else:
        _print_verdicts(result.verdicts, f"verdicts ({profile.value})", reasons=not quiet)
        for limit, why in result.skipped.items():
            console.print(f"[yellow]skipped {escape(limit)}[/]: {escape(why)}")
        if failed:
            console.print(f"[yellow]{len(failed)} failed trial(s)[/]; first: {escape(str(failed[0].error))}")
        if not quiet:
            console.print(Text(f"{result.ran} trial(s) run, {len(result.records) - result.ran} from the store, "
                               f"{result.wall_time:.1f} s; store {out / 'trials.sqlite'}"), soft_wrap=True)
    code = _exit_code(result.verdicts, expected, failed)
    if no_report:
        return code
    from .report import build_report

    try:
        path = build_report(out)
        if not (quiet or as_json):
            console.print(Text(f"report {path}"), soft_wrap=True)
    except OSError as exc:  # the trials and verdicts above are stored: only the page is missing
        print(f"deeplimits: error: report not written: {_os_error(exc)}; the trials are stored, "
              f"`deeplimits report --out {out} --to FOLDER` writes it elsewhere", file=sys.stderr)
        return code or REPORT_FAILED
    return code




def _print_verdicts(verdicts: dict[str, Any], title: str, reasons: bool = True) -> None:
    table = Table("limit", "verdict", "breaking point", "measured at", title=title)
    for limit, v in verdicts.items():
        table.add_row(Text(limit), f"[{BADGES[v.outcome]}]{v.outcome}[/]",
                      Text("" if v.breaking_point is None else str(v.breaking_point)), Text(v.sentence))
    console.print(table)
    for limit, v in verdicts.items():
        for reason in v.reasons[:3] if reasons else []:
            console.print(Text(f"  {limit}: {reason}", style="dim"))



@app.command()
def verdicts(
    ids: Annotated[list[str] | None, typer.Argument(help="limit ids (default: every registered limit)")] = None,
    out: Out = DEFAULT_OUT,
    as_json: Annotated[bool, typer.Option("--json", help="every verdict with its cells, CIs, comparisons, budget")
                       ] = False,
    baseline: Annotated[Path | None, typer.Option(help="a `verdicts --json` file: exit 4 when a verdict differs")
                        ] = None,
) -> int:
    """The verdicts of the trials stored in --out, read-only: nothing is run or written."""
    from . import results

    expected = _read_baseline(baseline)
    found = {r.probe.id: r.verdict for r in results.load(out, ids or None) if r.verdict is not None}
    if as_json:
        from .export import verdict_records

        _json({"verdicts": verdict_records(found.values())})
    elif not found:
        console.print(Text(f"no stored trials of {'these limits' if ids else 'any registered limit'} in {out}"))
    else:
        _print_verdicts(found, f"verdicts stored in {out}")
    return _exit_code(found, expected, [])


@app.command()
def report(out: Out = DEFAULT_OUT,
           jobs: Annotated[int | None, typer.Option(help="processes drawing figures (default: cores)")] = None,
           to: Annotated[Path | None, typer.Option("--to", help="folder for index.html (default: <out>/report)")
                         ] = None,
           ) -> None:
    """Rebuild the HTML report from the store alone (nothing is re-run)."""
    from .report import build_report
    from .store import Store

    _check_jobs(jobs)
    Store(out, create=False).close()
    workers = jobs or os.cpu_count() or 1
    try:
        if to is None:
            path = build_report(out, workers=workers)
        else:  # e.g. from a read-only --out: nothing is written there (no figure cache either)
            from .report import _runs, load_results, render_html

            html = render_html(load_results(out), _runs(out), workers, None)
            to.mkdir(parents=True, exist_ok=True)
            path = to / "index.html"
            path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the report: {_os_error(exc)}; `--to FOLDER` writes it elsewhere") from None
    console.print(Text(f"report: {path}"), soft_wrap=True)


@app.command()
def export(
    fmt: Annotated[Format, typer.Option("--format", "-f", help="file format")] = Format.csv,
    out: Out = DEFAULT_OUT,
    path: Annotated[str | None, typer.Option(help="file to write (default: <out>/trials.<format>; - = stdout)")
                    ] = None,
    limit: Annotated[str | None, typer.Option(help="only this limit's trials")] = None,
    shape: Annotated[Shape, typer.Option(help="wide: a row per trial; long: a row per trial and metric")
                     ] = Shape.wide,
) -> None:
    """Export every stored trial (csv and json need nothing more; parquet needs the [data] extra)."""
    from .export import export as export_api

    if limit is not None:
        registry.get(limit)
    try:
        written = export_api(out, fmt.value, path, limit, shape.value)
        if str(written) != "-":
            console.print(Text(f"wrote {written}"), soft_wrap=True)
    except OSError as exc:
        raise UsageError(f"cannot write the export: {_os_error(exc)}; `--path FILE` writes it elsewhere") from None


CHALLENGE_HELP = """Try to break a limit with your own model: it runs as a challenger beside the limit's own
contenders (their stored trials are reused) and the command says at which knob values it succeeds
where every deep arm fails.

WARNING: loading a challenger executes its code (the file or module you name, or the estimator's
package) with your permissions, in this process and in the worker processes.

--contender path/to/file.py:make (or package.module:make): make() returns a deeplimits.Contender, or
make is itself the learner function fn(public, ctx) -> output; `deeplimits show LIMIT` prints what
`public` holds and how the output is scored. --estimator package.module:Class (scikit-learn style,
with --param key=value) for limits that declare their task as arrays."""


@app.command(help=CHALLENGE_HELP)
def challenge(
    limit_id: Annotated[str, typer.Argument(help="the limit to challenge")],
    contender: Annotated[str | None, typer.Option("--contender", "-c", help="path/to/file.py:make or "
                                                  "package.module:make (executes that code)")] = None,
    estimator: Annotated[str | None, typer.Option(
        help="package.module:Class with fit/predict, e.g. sklearn.ensemble:RandomForestClassifier (executes that code)"
    )] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="estimator parameter key=value (repeatable)")
                     ] = None,
    name: Annotated[str | None, typer.Option(help="the challenger's name (default: its function's or class's)")
                    ] = None,
    profile: Annotated[ProfileName, typer.Option(help="budget profile")] = ProfileName.quick,
    seeds: Annotated[int | None, typer.Option(help="seeds per cell (default: the profile's)")] = None,
    jobs: Annotated[int | None, typer.Option(help="worker processes (default: cores)")] = None,
    backend: Annotated[BackendName, typer.Option(help="where trials run")] = BackendName.local,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --backend ray)")] = None,
    device: Annotated[Device, typer.Option(help="torch device")] = Device.cpu,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override: knob=v1,v2 or field=value")] = None,
    out: Out = DEFAULT_OUT,
    no_report: Annotated[bool, typer.Option("--no-report", help="skip writing the HTML report")] = False,
) -> int:
    from .challenge import challenge as challenge_api
    from .challenge import parse_param

    _check_jobs(jobs)
    _check_address(backend.value, address)
    _check_out(out)
    params = dict(parse_param(p) for p in param or [])
    res = challenge_api(limit_id, contender, estimator=estimator, params=params, name=name, profile=profile.value,
                        overrides=profiles.parse_set(set_), seeds=seeds, out=out, jobs=jobs, backend=backend.value,
                        address=address, device=device.value, report=not no_report)
    table = Table(escape(res.knob), escape(f"best deep arm ({res.metric})"), escape(f"{res.challenger} ({res.metric})"),
                  "broken here", title=Text(f"{res.limit}: the deep arms' verdict here is '{res.outcome}'"))
    ci = lambda c: "—" if c is None else f"{c[0]:.3g} [{c[1]:.3g}, {c[2]:.3g}]"
    for row in res.rows:
        table.add_row(Text(str(row.knob)), Text(f"{row.deep_arm}: {ci(row.deep)}"), Text(ci(row.challenger)),
                      "[bold red]yes[/]" if row.broken else "no")
    console.print(table)
    if res.failed:
        console.print(Text(f"{len(res.failed)} challenger trial(s) failed; first: {res.failed[0].error}",
                           style="yellow"), soft_wrap=True)
    console.print(Text(res.sentence, style="bold"), soft_wrap=True)
    where = f"store {out / 'trials.sqlite'}" + ("" if no_report else f"; report {out / 'report' / 'index.html'}")
    console.print(Text(f"{res.run.ran} trial(s) run, {len(res.run.records) - res.run.ran} from the store; {where}"),
                  soft_wrap=True)
    return 1 if res.failed and len(res.failed) == sum(r.contender == res.challenger for r in res.run.records) else 0



from .entry import main  # noqa: E402, F401 - the entry point (`deeplimits.cli:main`)

if __name__ == "__main__":
    sys.exit(main())
