"""Stored trials as a pandas frame, CSV, JSON or parquet."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .probe import UsageError
from .store import Store, TrialRecord

FORMATS = ("csv", "json", "parquet")


def to_frame(records: Iterable[TrialRecord]) -> Any:
    """One row per trial, one column per metric (prefixed `m_`)."""
    import pandas as pd

    rows = []
    for r in records:
        row = {"limit": r.limit_id, "version": r.version, "contender": r.contender, "role": r.role,
               "knob": r.knob, "seed": r.seed, "profile": r.profile, "status": r.status,
               "error": r.error, "wall_time": r.wall_time, "device": r.device, "key": r.key,
               "params": json.dumps(r.params, sort_keys=True)}
        row.update({f"m_{k}": v for k, v in r.metrics.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def export(out: str | Path, fmt: str = "csv", path: str | Path | None = None,
           limit: str | None = None) -> Path:
    """Write every stored trial (or one limit's) to `path` (default `<out>/trials.<fmt>`)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")
    with Store(out, create=False) as store:
        frame = to_frame(store.records(limit))
    target = Path(path) if path else Path(out) / f"trials.{fmt}"
    if fmt == "csv":
        frame.to_csv(target, index=False)
    elif fmt == "json":
        frame.to_json(target, orient="records", indent=1)
    else:
        try:
            frame.to_parquet(target, index=False)
        except ImportError:
            raise UsageError("parquet export needs pyarrow: pip install pyarrow") from None
    return target
