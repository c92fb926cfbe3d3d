"""Stored trials and verdicts as rows: CSV and JSON with the standard library, pandas frames and
parquet with the `[data]` extra (pandas, pyarrow).

Two shapes, as in pandas' own vocabulary: `wide` (one row per trial, one `m_<metric>` column per
metric) and `long` (tidy: one row per trial and metric). Verdicts export with every cell's mean
and CI, the ratio/gap comparisons and the budget check: what a CI pipeline consumes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .probe import UsageError
from .store import Store, TrialRecord

FORMATS = ("csv", "json", "parquet")
SHAPES = ("wide", "long")
TRIAL_COLUMNS = ("limit", "version", "contender", "role", "knob", "seed", "profile", "status", "error",
                 "wall_time", "device", "key", "params")


def trial_rows(records: Iterable[TrialRecord], shape: str = "wide") -> list[dict[str, Any]]:
    """Plain dict rows: `wide` one per trial (metrics as m_<name>), `long` one per trial and metric."""
    if shape not in SHAPES:
        raise UsageError(f"unknown shape {shape!r}; choose {', '.join(SHAPES)}")
    rows = []
    for r in records:
        base = {"limit": r.limit_id, "version": r.version, "contender": r.contender, "role": r.role,
                "knob": json.dumps(r.knob) if isinstance(r.knob, list | tuple) else r.knob, "seed": r.seed,
                "profile": r.profile, "status": r.status, "error": r.error, "wall_time": r.wall_time,
                "device": r.device, "key": r.key, "params": json.dumps(r.params, sort_keys=True)}
        if shape == "wide":
            rows.append({**base, **{f"m_{k}": v for k, v in r.metrics.items()}})
        else:
            rows.extend({**base, "metric": k, "value": v} for k, v in r.metrics.items())
            if not r.metrics:
                rows.append({**base, "metric": None, "value": None})
    return rows


def to_frame(records: Iterable[TrialRecord], shape: str = "wide") -> Any:
    """A pandas DataFrame of the trials (needs the [data] extra)."""
    return _pandas().DataFrame(trial_rows(records, shape))


def cell_rows(verdicts: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per (limit, contender, knob, metric) cell: mean, 95% CI, seeds, failed trials."""
    return [{"limit": v.limit, "contender": c.contender, "role": c.role, "knob": c.knob, "metric": c.metric,
             "mean": c.mean, "lo": c.lo, "hi": c.hi, "n": c.n, "n_failed": c.n_failed}
            for v in verdicts for c in v.cells]


def verdict_records(verdicts: Iterable[Any]) -> list[dict[str, Any]]:
    """Every verdict with its cells, comparisons and budget check (JSON-ready)."""
    out = []
    for v in verdicts:
        d = v.to_dict()
        d["cells"] = [{k: _plain(x) for k, x in row.items() if k != "limit"} for row in cell_rows([v])]
        d["comparisons"] = {str(k): list(ci) for k, ci in v.comparisons.items()}
        out.append(_plain(d))
    return out


def _plain(value: Any) -> Any:
    """JSON-safe: tuples to lists, non-finite floats to None, knob keys to text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise UsageError("this needs pandas: pip install 'deeplimits[data]'") from None
    return pd


def write_rows(rows: list[dict[str, Any]], fmt: str, target: str | Path) -> None:
    """Rows to csv/json/parquet at `target` ('-' = standard output; parquet needs a file)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")
    to_stdout = str(target) == "-"
    if fmt == "parquet":
        if to_stdout:
            raise UsageError("parquet is binary: give --path FILE, not -")
        try:
            _pandas().DataFrame(rows).to_parquet(target, index=False)
        except ImportError:
            raise UsageError("parquet export needs pyarrow: pip install 'deeplimits[data]'") from None
        return
    buf = io.StringIO()
    if fmt == "json":
        json.dump(rows, buf, indent=1, default=str)
        buf.write("\n")
    else:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    if to_stdout:
        sys.stdout.write(buf.getvalue())
    else:
        Path(target).write_text(buf.getvalue(), encoding="utf-8")


def export(out: str | Path, fmt: str = "csv", path: str | Path | None = None, limit: str | None = None,
           shape: str = "wide") -> Path | str:
    """Write every stored trial (or one limit's) to `path` (default `<out>/trials.<fmt>`; '-' = stdout)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")
    with Store(out, create=False) as store:
        rows = trial_rows(store.records(limit), shape)
    target = path if path is not None else Path(out) / f"trials.{fmt}"
    write_rows(rows, fmt, target)
    return target
