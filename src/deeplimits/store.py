"""The trial store: one SQLite file (stdlib, WAL mode) in the output folder.

Only the parent process writes. Each finished trial is committed on its own, so a run killed at
any moment keeps every finished trial and the same command resumes with the rest. A file that is
not ours (corrupt, or another program's database) is refused and never written to.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .probe import UsageError, canonical, stable_int

DEFAULT_OUT = Path("deeplimits-out")  # the output folder (store + report) when --out is not given

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


# store schema version -> a function that upgrades a connection from it to the next version
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}
LOCK_NAME = ".deeplimits.lock"


def _columns(schema: str) -> dict[str, tuple[str, ...]]:
    """table -> its columns, read from the schema itself (one source of truth)."""
    db = sqlite3.connect(":memory:")
    db.executescript(schema)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    out = {t: tuple(r[1] for r in db.execute(f"PRAGMA table_info({t})")) for t in tables}
    db.close()
    return out


COLUMNS = _columns(_SCHEMA)


class StoreError(UsageError):
    """The store file cannot be used (corrupt, foreign, newer, damaged, unwritable, in use)."""


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """Open read-only; in a read-only folder SQLite cannot create the WAL's shared-memory file, so
    fall back to `immutable` (nobody can be writing there)."""
    problem: Exception | None = None
    for flag in ("mode=ro", "immutable=1"):
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?{flag}", uri=True, timeout=30)
            db.row_factory = sqlite3.Row
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.DatabaseError as exc:
            problem = exc
            if "not a database" in str(exc) or "malformed" in str(exc):
                break
    raise StoreError(f"{path} is not a deeplimits store ({problem}); move it away or use --out")


def _take_lock(folder: Path) -> Any:
    """An exclusive lock on the folder for this process's lifetime (released at close or death);
    a second writer is refused with one line rather than computing the same trials twice."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): runs into one folder are not guarded
        return None
    handle = open(folder / LOCK_NAME, "a+")  # noqa: SIM115 - held open for the store's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreError(f"another deeplimits run ({holder}) is writing to {folder}; wait for it to finish "
                         "or use another --out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


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
    """The SQLite store in `<out>/trials.sqlite`.

    A writer (`create=True`, the runner) holds an exclusive lock on `<out>/.deeplimits.lock` for its
    lifetime, so a second run into the same folder is refused with one line. A reader
    (`create=False`: report, export, verdicts) opens the file read-only and works in a read-only folder.
    The file is checked (ours, schema version, columns) before anything is written or run.
    """

    def __init__(self, out: str | Path, create: bool = True) -> None:
        self.path = Path(out) / STORE_NAME
        self.readonly = not create
        self.migrated: tuple[int, int] | None = None  # (from, to) when this open migrated the file
        self._lock: Any = None
        exists = self.path.exists()
        if not exists and not create:
            raise StoreError(f"no store at {self.path}: run `deeplimits run` first")
        version = self._check_file() if exists else SCHEMA_VERSION
        if self.readonly:
            if version < SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {version} (this deeplimits reads {SCHEMA_VERSION}); "
                                 "a `deeplimits run` into that folder migrates it")
            self.db = _connect_readonly(self.path)
            return
        self._prepare_folder(exists)
        self._lock = _take_lock(self.path.parent)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            if self.db.execute("PRAGMA application_id").fetchone()[0] == 0:
                self.db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._migrate(version)
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._release()
            raise StoreError(f"cannot use store {self.path}: {exc}") from None

    def _check_file(self) -> int:
        """Refuse, without writing, a file that is not a deeplimits store, one written by a newer
        deeplimits, or one whose tables lack columns; returns its schema version."""
        try:
            db = _connect_readonly(self.path)
            try:
                app = db.execute("PRAGMA application_id").fetchone()[0]
                version = db.execute("PRAGMA user_version").fetchone()[0]
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                columns = {t: {r[1] for r in db.execute(f"PRAGMA table_info({t})")} for t in tables & set(COLUMNS)}
            finally:
                db.close()
        except StoreError:
            raise
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a deeplimits store ({exc}); move it away or use --out") from None
        if app != APPLICATION_ID and (app != 0 or tables):
            raise StoreError(f"{self.path} is another program's database; move it away or use --out")
        if app == 0:
            return SCHEMA_VERSION  # an empty file: a new store
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer deeplimits (store schema {version}, this one "
                             f"knows {SCHEMA_VERSION}): upgrade deeplimits, or use another --out")
        if version < SCHEMA_VERSION and any(v not in MIGRATIONS for v in range(version, SCHEMA_VERSION)):
            raise StoreError(f"{self.path} has store schema {version}, which this deeplimits cannot migrate "
                             f"to {SCHEMA_VERSION}; move it away or use --out")
        if version == SCHEMA_VERSION:
            missing = [f"{t}.{c}" for t, cols in columns.items() for c in COLUMNS[t] if c not in cols]
            if missing:
                raise StoreError(f"{self.path} lacks column(s) {', '.join(missing)} of store schema {version} "
                                 "(damaged or edited by hand); it was left untouched: move it away or use --out")
        return version

    def _prepare_folder(self, exists: bool) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create output folder {folder}: {exc.strerror or exc}") from None
        if not os.access(folder, os.W_OK) or (exists and not os.access(self.path, os.W_OK)):
            raise StoreError(f"cannot write to {folder}: permission denied (its store can still be read: "
                             "`deeplimits verdicts`, `export --path`, `report --to`)")

    def _migrate(self, version: int) -> None:
        """Bring an older store to SCHEMA_VERSION, one step at a time, in one transaction."""
        if version >= SCHEMA_VERSION:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for v in range(version, SCHEMA_VERSION):
                MIGRATIONS[v](self.db)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.migrated = (version, SCHEMA_VERSION)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    def close(self) -> None:
        self.db.close()
        self._release()

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
