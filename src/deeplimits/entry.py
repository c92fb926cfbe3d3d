"""The process around the command line: usage errors as one line and exit code 2, Ctrl-C as 130
and SIGTERM as 143 (each one line, finished trials kept), a skipped plugin as one warning line."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

from . import registry
from .probe import PROFILE_NAMES, UsageError

TRIALS_FAILED = 3  # exit code: the run finished but some trials failed
VERDICT_CHANGED = 4  # exit code: a verdict differs from the --baseline file

INTERRUPTED = "deeplimits: interrupted; finished trials are kept, run the same command again to resume"
TERMINATED = "deeplimits: terminated (SIGTERM); finished trials are kept, run the same command again to resume"


def main(argv: list[str] | None = None) -> int:
    """Entry point: every usage error (ours or click's) is one line on stderr and exit code 2."""
    argv = sys.argv[1:] if argv is None else argv
    global _terminated
    _terminated = False
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", registry.PluginWarning)
            warnings.showwarning = _show_warning
            from .cli import app

            code = app(args=argv or ["--help"], standalone_mode=False)
    except UsageError as exc:
        print(f"deeplimits: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, EOFError) as exc:
        return _interrupted(exc)
    except Exception as exc:
        # the command-line parser's own usage errors (typer vendors click: match by shape, not class)
        if getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message"):
            print(f"deeplimits: error: {exc.format_message()}", file=sys.stderr)
            return 2
        if type(exc).__name__ == "Abort":  # click turns Ctrl-C (and our SIGTERM) into Abort
            return _interrupted(exc.__cause__ or exc.__context__)
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    if code == 130:  # the parser turned Ctrl-C (or our SIGTERM) into an exit code
        return _interrupted(Terminated() if _terminated else None)
    return code if isinstance(code, int) else 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C: workers stopped, store closed."""


_terminated = False  # set by SIGTERM: the parser reports any interruption as exit code 130


def _on_sigterm(signum: int, frame: Any) -> None:
    global _terminated
    _terminated = True
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated


def _interrupted(exc: BaseException | None) -> int:
    """Ctrl-C: exit 130; SIGTERM: exit 143 (128 + the signal, as a shell reports it); one line each."""
    if isinstance(exc, Terminated) or _terminated:
        print(TERMINATED, file=sys.stderr)
        return 143
    print(INTERRUPTED, file=sys.stderr)
    return 130


_default_showwarning = warnings.showwarning


def _show_warning(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    """A skipped plugin or probe module is one line on stderr; other warnings keep their usual form."""
    if issubclass(category, registry.PluginWarning):
        print(f"deeplimits: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)




# --- inputs and exit codes shared by the commands ----------------------------------------------
def _read_baseline(path: Path | None) -> dict[str, str] | None:
    """{limit: outcome} from a `verdicts --json` (or `run --json`) file."""
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data["verdicts"] if isinstance(data, dict) else data
        return {str(v["limit"]): str(v["outcome"]) for v in rows}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--baseline {path}: not a `deeplimits verdicts --json` file ({type(exc).__name__})") from None


def _exit_code(verdicts: dict[str, Any], expected: dict[str, str] | None, failed: list[Any]) -> int:
    if expected is not None:
        changed = [f"{k}: {expected[k]} -> {v.outcome}" for k, v in verdicts.items()
                   if k in expected and expected[k] != v.outcome]
        if changed:
            print("deeplimits: verdicts changed against the baseline: " + "; ".join(changed), file=sys.stderr)
            return VERDICT_CHANGED
    return TRIALS_FAILED if failed else 0


def _describe(p: Any) -> dict[str, Any]:
    """`show --json`: the limit's declaration as data."""
    rule = p.rule
    return {"id": p.id, "family": p.family, "version": p.version, "claim": p.claim, "sources": list(p.sources),
            "knob": {"name": p.knob.name, "description": p.knob.description, "unit": p.knob.unit,
                     "harder": p.knob.harder},
            "rule": {k: getattr(rule, k) for k in ("kind", "metric", "success", "factor", "margin", "baseline_metric")
                     if hasattr(rule, k)},
            "control": {"metric": p.control.metric or rule.metric, "description": p.control.description},
            "contenders": [{"name": c.name, "role": c.role, "description": c.description, "tuning": c.tuning}
                           for c in p.contenders],
            "metrics": [{"name": m.name, "direction": m.direction, "chance": m.chance, "description": m.description,
                         "diagnostic": m.diagnostic} for m in p.metrics],
            "profiles": {n: {"knob": list(p.profile(n).knob), "seeds": p.profile(n).seeds,
                             "budget": p.budget(p.profile(n))} for n in PROFILE_NAMES},
            "budget_fields": list(p.budget_fields), "extra": p.extra, "accepts_estimator": p.as_arrays is not None,
            "references": [{"source": r.source, "value": r.value, "provenance": r.provenance} for r in p.references]}


def _check_address(backend: str, address: str | None) -> None:
    if address is not None and backend != "ray":
        raise UsageError("--address joins a Ray cluster: add --backend ray")


def _os_error(exc: OSError) -> str:
    return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)


def _check_jobs(jobs: int | None) -> None:
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")


def _check_out(out: Path) -> None:
    """An output folder we cannot write is a usage error before anything runs. Nothing is created
    here: the folder itself is made by the store, after every other input has been validated."""
    existing = out
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent  # the nearest existing ancestor decides whether the folder can be made
    if not existing.is_dir():
        raise UsageError(f"cannot write to --out {out}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        readable = " (its store can still be read: `deeplimits verdicts`, `export --path`, `report --to`)" \
            if (out / "trials.sqlite").exists() else ""
        raise UsageError(f"cannot write to --out {out}: permission denied{readable}")

