"""The store: resume after SIGKILL, no duplicate trials, refusal of corrupt or foreign files."""

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import deeplimits
from deeplimits.store import STORE_NAME, Store, StoreError

from toy import ToyProfile, make_probe

SLOW = {name: ToyProfile(name, knob=(0, 1, 2, 4), seeds=5, sleep=0.1) for name in ("smoke", "quick", "paper")}


def count(out: Path) -> int:
    path = out / STORE_NAME
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.OperationalError:  # the table does not exist yet
        return 0


def test_resume_after_sigkill(out: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import deeplimits
        from toy import make_probe
        from test_store import SLOW
        deeplimits.run(probes=[make_probe(profiles=SLOW)], out={str(out)!r}, jobs=1, progress=False, report=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while count(out) < 6 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = count(out)
    assert 6 <= kept < 60, f"expected a partial store, found {kept} trials"

    res = deeplimits.run(probes=[make_probe(profiles=SLOW)], out=out, jobs=1, progress=False, report=False)
    assert res.ran == 60 - kept  # only the missing trials ran
    assert count(out) == 60 and len(res.records) == 60 and not res.failed
    assert res.verdicts["toy"].outcome == "holds"


def test_rerun_adds_nothing_and_more_seeds_reuse_the_old(out: Path) -> None:
    probe = make_probe()
    first = deeplimits.run(probes=[probe], out=out, jobs=1, progress=False, report=False)
    again = deeplimits.run(probes=[probe], out=out, jobs=1, progress=False, report=False)
    assert first.ran == 60 and again.ran == 0 and count(out) == 60  # 3 contenders x 4 knobs x 5 seeds
    more = deeplimits.run(probes=[probe], out=out, seeds=7, jobs=1, progress=False, report=False)
    assert more.ran == 24 and count(out) == 84
    bumped = deeplimits.run(probes=[make_probe(version=2)], out=out, jobs=1, progress=False, report=False)
    assert bumped.ran == 60  # a changed probe version invalidates only its own old results


def test_failed_trials_are_recorded_and_retried(out: Path) -> None:
    broken = {"yes": True}

    def sometimes(task, ctx):
        if broken["yes"] and (ctx.knob, ctx.seed) == (2, 0):
            raise RuntimeError("boom")
        return float("nan") if broken["yes"] and (ctx.knob, ctx.seed) == (4, 1) else 0.99  # scored as accuracy

    probe = make_probe().with_contenders(deeplimits.Contender("line", "deep", sometimes), replace=True)
    probe = probe.with_contenders(deeplimits.Contender("const", "alternative", lambda t, c: 0.99))
    res = deeplimits.run(probes=[probe], out=out, jobs=1, progress=False, report=False)
    errors = sorted(r.error for r in res.failed)
    assert len(errors) == 2 and "RuntimeError: boom" in errors[0] and "accuracy is nan" in errors[1]
    assert res.verdicts["toy"].outcome == "inconclusive"
    broken["yes"] = False
    again = deeplimits.run(probes=[probe], out=out, jobs=1, progress=False, report=False)
    assert again.ran == 2 and not again.failed and count(out) == 40


def test_corrupt_store_is_refused_and_kept(out: Path) -> None:
    out.mkdir(parents=True)
    path = out / STORE_NAME
    path.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a deeplimits store"):
        Store(out)
    assert path.read_bytes() == before


def test_foreign_sqlite_is_refused_and_kept(out: Path) -> None:
    out.mkdir(parents=True)
    path = out / STORE_NAME
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE other (x)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="another program"):
        Store(out)
    assert path.read_bytes() == before


def test_export_and_pandas(out: Path) -> None:
    res = deeplimits.run(probes=[make_probe()], out=out, jobs=1, progress=False, report=False)
    frame = res.to_pandas()
    assert len(frame) == 60 and "m_accuracy" in frame
    from deeplimits.export import export

    csv = export(out, "csv")
    assert csv.read_text().count("\n") == 61
    assert export(out, "json").exists()
