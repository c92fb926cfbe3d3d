"""The `deeplimits` command: thin over the Python API. Usage errors print one line and exit 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from . import profiles, registry
from .probe import PROFILE_NAMES, Threshold, UsageError
from .runner import DEFAULT_OUT

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="deeplimits: an executable atlas of where deep learning fails.")
console = Console()
BADGES = {"holds": "bold red", "does not hold": "bold green", "inconclusive": "yellow", "invalid": "magenta"}

INTERRUPTED = "deeplimits: interrupted; finished trials are kept, run the same command again to resume"
Out = Annotated[Path, typer.Option("--out", "-o", help="output folder (store + report)")]


@app.command("list")
def list_limits() -> None:
    """Every registered limit: id, family, claim, status, sources."""
    table = Table("id", "family", "claim", "status", "sources", show_lines=False)
    for probe in registry.all_probes().values():
        missing = probe.missing_requirements()
        status = f"needs [{probe.extra}]" if missing else "ready"
        table.add_row(probe.id, probe.family, probe.claim, status, "; ".join(probe.sources))
    console.print(table)


@app.command()
def show(limit_id: str) -> None:
    """One limit: claim, sources, knob, contenders, metrics, profiles, reference figures."""
    p = registry.get(limit_id)
    console.print(f"[bold]{p.id}[/] ({p.family}, version {p.version})\n{p.claim}\n")
    console.print("[bold]sources[/]: " + "; ".join(p.sources))
    console.print(f"[bold]knob[/] {p.knob.name}: {p.knob.description} (harder when {p.knob.harder})")
    rule = p.rule
    what = (f"{rule.metric} succeeds at {'≥' if p.metric(rule.metric).direction == 'higher' else '≤'} {rule.success}"
            if isinstance(rule, Threshold) else f"{rule.kind} on {rule.metric}: {rule}")
    console.print(f"[bold]rule[/]: {what}; positive control: {p.control.description}")
    table = Table("contender", "role", "description")
    for c in p.contenders:
        table.add_row(c.name, c.role, c.description)
    console.print(table)
    metrics = Table("metric", "direction", "chance", "description")
    for m in p.metrics:
        metrics.add_row(m.name, m.direction, "" if m.chance is None else str(m.chance), m.description)
    console.print(metrics)
    profs = Table("profile", p.knob.name, "seeds", "budget")
    for name in PROFILE_NAMES:
        prof = p.profile(name)
        profs.add_row(name, ", ".join(map(str, prof.knob)), str(prof.seeds), p.budget(prof))
    console.print(profs)
    for ref in p.references:
        console.print(f"[bold]reference[/] {ref.source} ({ref.provenance}): {ref.value}\n  setup: {ref.setup}")


@app.command()
def run(
    ids: Annotated[list[str] | None, typer.Argument(help="limit ids (default: every registered limit)")] = None,
    profile: Annotated[str, typer.Option(help="smoke | quick | paper")] = "quick",
    seeds: Annotated[int | None, typer.Option(help="seeds per cell (default: the profile's)")] = None,
    jobs: Annotated[int | None, typer.Option(help="worker processes (default: cores)")] = None,
    backend: Annotated[str, typer.Option(help="local | ray")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --backend ray)")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda | auto")] = "cpu",
    set_: Annotated[list[str] | None, typer.Option("--set", help="override: knob=v1,v2 or field=value")] = None,
    out: Out = DEFAULT_OUT,
    no_report: Annotated[bool, typer.Option("--no-report", help="skip writing the HTML report")] = False,
) -> None:
    """Run limits, store every trial, print the verdicts and write the report."""
    from .runner import run as run_api

    if profile not in PROFILE_NAMES:
        raise UsageError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
    _check_out(out)
    result = run_api(ids or None, profile, seeds=seeds, overrides=profiles.parse_set(set_), out=out, jobs=jobs,
                     backend=backend, address=address, device=device, report=not no_report)
    table = Table("limit", "verdict", "breaking point", "measured at", title=f"verdicts ({profile})")
    for limit, v in result.verdicts.items():
        table.add_row(limit, f"[{BADGES[v.outcome]}]{v.outcome}[/]",
                      "" if v.breaking_point is None else str(v.breaking_point), v.sentence)
    console.print(table)
    for limit, v in result.verdicts.items():
        for reason in v.reasons[:3]:
            console.print(f"  {limit}: {reason}", style="dim")
    for limit, why in result.skipped.items():
        console.print(f"[yellow]skipped {limit}[/]: {why}")
    failed = result.failed
    if failed:
        console.print(f"[yellow]{len(failed)} failed trial(s)[/]; first: {failed[0].error}")
    console.print(f"{result.ran} trial(s) run, {len(result.records) - result.ran} from the store, "
                  f"{result.wall_time:.1f} s; store {out / 'trials.sqlite'}"
                  + ("" if no_report else f"; report {out / 'report' / 'index.html'}"))


@app.command()
def report(out: Out = DEFAULT_OUT,
           jobs: Annotated[int | None, typer.Option(help="processes drawing figures (default: cores)")] = None
           ) -> None:
    """Rebuild the HTML report from the store alone (nothing is re-run)."""
    import os

    from .report import build_report
    from .store import Store

    Store(out, create=False).close()
    console.print(f"report: {build_report(out, workers=jobs or os.cpu_count() or 1)}")


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv | json | parquet")] = "csv",
    out: Out = DEFAULT_OUT,
    path: Annotated[Path | None, typer.Option(help="file to write (default: <out>/trials.<format>)")] = None,
    limit: Annotated[str | None, typer.Option(help="only this limit's trials")] = None,
) -> None:
    """Export every stored trial."""
    from .export import export as export_api

    if limit is not None:
        registry.get(limit)
    console.print(f"wrote {export_api(out, fmt, path, limit)}")


def _check_out(out: Path) -> None:
    """An output folder we cannot write is a usage error before anything runs."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to --out {out}: {exc.strerror or exc}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point: every usage error (ours or click's) is one line on stderr and exit code 2."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        code = app(args=argv or ["--help"], standalone_mode=False)
    except UsageError as exc:
        print(f"deeplimits: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, EOFError):
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except Exception as exc:
        # the command-line parser's own usage errors (typer vendors click: match by shape, not class)
        if getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message"):
            print(f"deeplimits: error: {exc.format_message()}", file=sys.stderr)
            return 2
        if type(exc).__name__ == "Abort":
            print(INTERRUPTED, file=sys.stderr)
            return 130
        raise
    if code == 130:  # the parser turned Ctrl-C into an exit code
        print(INTERRUPTED, file=sys.stderr)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
