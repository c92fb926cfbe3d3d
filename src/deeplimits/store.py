"""The trial store: one SQLite file (stdlib, WAL mode) in the output folder.

Only the parent process writes. Each finished trial is committed on its own, so a run killed at
any moment keeps every finished trial and the same command resumes with the rest. A file that is
not ours (corrupt, or another program's database) is refused and never written to.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .probe import UsageError, canonical, stable_int

APPLICATION_ID = 0x444C494D  # "DLIM": marks a deeplimits store
SCHEMA_VERSION = 1
STORE_NAME = "trials.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    key TEXT PRIMARY KEY, limit_id TEXT NOT NULL, version INTEGER NOT NULL, contender TEXT NOT NULL,
    role TEXT NOT NULL, knob TEXT NOT NULL, seed INTEGER NOT NULL, profile TEXT NOT NULL,
    params TEXT NOT NULL, status TEXT NOT NULL, metrics TEXT NOT NULL, error TEXT,
    wall_time REAL NOT NULL, device TEXT NOT NULL, finished REAL NOT NULL, run_id TEXT
);
CREATE INDEX IF NOT EXISTS trials_limit ON trials (limit_id, version, profile);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started REAL NOT NULL, ended REAL, facts TEXT NOT NULL
);
"""


class StoreError(UsageError):
    """The store file cannot be used (corrupt, foreign, unwritable)."""


@dataclass(frozen=True)
class TrialSpec:
    """One (limit, contender, knob value, seed, profile) to run."""

    limit_id: str
    version: int
    contender: str
    role: str
    knob: Any
    seed: int
    profile: str
    params: dict[str, Any]

    @property
    def key(self) -> str:
        parts = (self.limit_id, self.version, self.contender, self.knob, self.seed, self.params)
        return f"{stable_int(*parts):016x}"


@dataclass(frozen=True)
class TrialRecord:
    """A stored trial: its spec, status ('ok' or 'failed'), metrics and wall time."""

    key: str
    limit_id: str
    version: int
    contender: str
    role: str
    knob: Any
    seed: int
    profile: str
    params: dict[str, Any]
    status: str
    metrics: dict[str, float]
    error: str | None
    wall_time: float
    device: str
    finished: float
    run_id: str | None = None

    @classmethod
    def from_spec(cls, spec: TrialSpec, metrics: dict[str, float] | None, error: str | None,
                  wall_time: float, device: str, run_id: str | None = None) -> TrialRecord:
        status = "ok" if error is None else "failed"
        return cls(spec.key, spec.limit_id, spec.version, spec.contender, spec.role, spec.knob,
                   spec.seed, spec.profile, spec.params, status, metrics or {}, error, wall_time,
                   device, time.time(), run_id)

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.update(knob=canonical(self.knob), params=canonical(self.params),
                   metrics=json.dumps(self.metrics))
        return row


def _decode(row: sqlite3.Row) -> TrialRecord:
    data = dict(row)
    knob = json.loads(data["knob"])
    data.update(knob=tuple(knob) if isinstance(knob, list) else knob, params=json.loads(data["params"]),
                metrics=json.loads(data["metrics"]))
    return TrialRecord(**data)


class Store:
    """The SQLite store in `<out>/trials.sqlite`."""

    def __init__(self, out: str | Path, create: bool = True) -> None:
        self.path = Path(out) / STORE_NAME
        if not self.path.exists() and not create:
            raise StoreError(f"no store at {self.path}: run `deeplimits run` first")
        if self.path.exists():
            self._check_foreign()
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create output folder {self.path.parent}: {exc.strerror}") from None
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            if self.db.execute("PRAGMA application_id").fetchone()[0] == 0:
                self.db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use store {self.path}: {exc}") from None

    def _check_foreign(self) -> None:
        """Refuse, without writing, a file that is not a deeplimits store."""
        try:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as probe:
                app = probe.execute("PRAGMA application_id").fetchone()[0]
                tables = {r[0] for r in probe.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a deeplimits store ({exc}); move it away or use --out") from None
        if app != APPLICATION_ID and (app != 0 or tables):
            raise StoreError(f"{self.path} is another program's database; move it away or use --out")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # writing (parent process only)
    def put(self, record: TrialRecord) -> None:
        row = record.as_row()
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        self.db.execute(f"INSERT OR REPLACE INTO trials ({cols}) VALUES ({marks})", row)

    def start_run(self, run_id: str, facts: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, NULL, ?)",
                        (run_id, time.time(), json.dumps(facts, default=str)))

    def end_run(self, run_id: str) -> None:
        self.db.execute("UPDATE runs SET ended = ? WHERE run_id = ?", (time.time(), run_id))

    # reading
    def finished_keys(self, keys: Iterable[str]) -> set[str]:
        """Keys already stored with status ok (failed trials are retried on the next run)."""
        keys = list(keys)
        found: set[str] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT key FROM trials WHERE status='ok' AND key IN ({marks})", chunk)
            found.update(r[0] for r in rows)
        return found

    def get(self, keys: Iterable[str]) -> dict[str, TrialRecord]:
        keys = list(keys)
        out: dict[str, TrialRecord] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(f"SELECT * FROM trials WHERE key IN ({marks})", chunk):
                out[row["key"]] = _decode(row)
        return out

    def records(self, limit_id: str | None = None) -> Iterator[TrialRecord]:
        sql, args = "SELECT * FROM trials", ()
        if limit_id is not None:
            sql, args = sql + " WHERE limit_id = ?", (limit_id,)
        for row in self.db.execute(sql + " ORDER BY limit_id, contender, seed", args):
            yield _decode(row)

    def runs(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM runs ORDER BY started").fetchall()
        return [dict(r, facts=json.loads(r["facts"])) for r in rows]

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
