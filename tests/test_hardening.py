"""Hardening (issue 10): no orphaned workers, no lost results, no crash from a bad plugin, store,
setting or folder. Process and signal behaviour is tested on real subprocesses; every probe here is
the toy (tests/toy.py), made importable by workers as small modules in a temporary folder."""

from __future__ import annotations

import ctypes
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psutil
import pytest

import deeplimits
from deeplimits import cli, profiles, registry
from deeplimits.probe import Contender, UsageError
from deeplimits.store import MIGRATIONS, STORE_NAME, Store, StoreError

from procs import still_running
from toy import ToyProfile, make_probe

TESTS = Path(__file__).parent
ALL_PROBES = registry.all_probes.__wrapped__  # the registry's discovery, uncached

# toyplug: the toy with a sleep per trial (so that a run lasts long enough to be interrupted)
TOYPLUG = """
from toy import ToyProfile, make_probe

PROFILES = {n: ToyProfile(n, knob=(0, 1, 2, 4), seeds=3, sleep=0.15) for n in ("smoke", "quick", "paper")}
PROBE = make_probe(id="toyplug", profiles=PROFILES)
"""
# toyhang: one trial (k=1, seed 0) of the deep arm hangs, swallowing exceptions, or kills its process
TOYHANG = """
import multiprocessing
import os
import signal
import time

from deeplimits.probe import Contender
from toy import ToyProfile, alternative, deep, make_probe, steep


def hangs(task, ctx):
    if (ctx.knob, ctx.seed) == (1, 0):
        if os.environ.get("TOYHANG_DIE"):
            if multiprocessing.parent_process() is None:
                raise RuntimeError("inline: refusing to kill the caller")
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            time.sleep(600)
        except Exception:  # a contender that swallows errors must still stop at its time limit
            pass
    return deep(task, ctx)


PROFILES = {n: ToyProfile(n, knob=(0, 1), seeds=3, timeout=1.5) for n in ("smoke", "quick", "paper")}
PROBE = make_probe(id="toyhang", profiles=PROFILES, contenders=(
    Contender("line", "deep", hangs, tuning="none: a toy"), Contender("steep", "deep", steep, tuning="none: a toy"),
    Contender("const", "alternative", alternative)))
"""
# the command line with a registry of the two toys only (importing every built-in probe is slow)
CLI = ("import sys, toyplug, toyhang\n"
       "from deeplimits import registry\n"
       "registry.all_probes = lambda: {p.id: p for p in (toyplug.PROBE, toyhang.PROBE)}\n"
       "from deeplimits.cli import main\n"
       "sys.exit(main(sys.argv[1:]))\n")


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the toy modules, on sys.path here and on PYTHONPATH for subprocesses."""
    root = tmp_path_factory.mktemp("plugins")
    (root / "toyplug.py").write_text(TOYPLUG)
    (root / "toyhang.py").write_text(TOYHANG)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in ("toyplug", "toyhang"):
        sys.modules.pop(name, None)


def env(plugins: Path, **extra: str) -> dict[str, str]:
    paths = [str(plugins), str(TESTS), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "OMP_NUM_THREADS": "1",
            "COLUMNS": "200", **extra}


def start_cli(plugins: Path, *args: str, **popen: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI, *args], env=env(plugins), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def run_cli(plugins: Path, *args: str, **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], env=env(plugins), capture_output=True, text=True,
                          timeout=180, **kw)


def stored(out: Path) -> int:
    try:
        with sqlite3.connect(f"file:{out / STORE_NAME}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM trials WHERE status='ok'").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_for(out: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.time() + timeout
    while (k := stored(out)) < n and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert k >= n, f"only {k} trials stored after {timeout} s"
    return k


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --- 1. no orphans; SIGTERM behaves like Ctrl-C ---------------------------------------------------
def test_kill_9_of_the_parent_leaves_no_worker_or_tracker(plugins: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_cli(plugins, "run", "toyplug", "--profile", "smoke", "--jobs", "2", "--out", str(out), "--no-report")
    wait_for(out, 3, proc)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 3, children  # two workers and multiprocessing's resource tracker
    proc.kill()
    proc.wait()
    assert not still_running(children)


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                   (signal.SIGINT, 130, "interrupted")])
def test_sigterm_and_ctrl_c_stop_cleanly_and_keep_trials(plugins: Path, tmp_path: Path, sig: int, code: int,
                                                         word: str) -> None:
    out = tmp_path / "out"
    # a shell starts background jobs with Ctrl-C ignored, and children inherit that: undo it for the CLI under test
    proc = start_cli(plugins, "run", "toyplug", "--profile", "smoke", "--jobs", "2", "--out", str(out), "--no-report",
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for(out, 3, proc)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert lines(err) == [line for line in lines(err) if word in line] and len(lines(err)) == 1, err
    assert not still_running(children)
    assert stored(out) >= 3  # finished trials kept (resuming them: test_store, and the ten kills below)


@pytest.mark.slow
def test_ten_kill_9_lose_nothing_and_resume_bit_identical(plugins: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    rng = random.Random(0)
    for _ in range(10):
        proc = start_cli(plugins, "run", "toyplug", "--profile", "smoke", "--jobs", "2", "--out", str(out),
                         "--no-report")
        before = stored(out)
        if before >= 30:
            proc.kill()
            proc.wait()
            break
        wait_for(out, before + 1, proc)
        time.sleep(rng.uniform(0, 0.6))
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.kill()
        proc.wait()
        assert stored(out) >= before + 1  # nothing finished was lost
        assert not still_running(children)
    assert run_cli(plugins, "run", "toyplug", "--profile", "smoke", "--jobs", "2", "--out", str(out),
                   "--no-report").returncode == 0
    clean = tmp_path / "clean"
    assert run_cli(plugins, "run", "toyplug", "--profile", "smoke", "--jobs", "1", "--out", str(clean),
                   "--no-report").returncode == 0

    def metrics(folder: Path) -> dict:
        with sqlite3.connect(folder / STORE_NAME) as db:
            return dict(db.execute("SELECT key, metrics FROM trials WHERE status='ok'").fetchall())

    assert metrics(out) == metrics(clean) and len(metrics(clean)) == 36


# --- 2. the Python API from an unguarded script, stdin, -c and a notebook -------------------------
SCRIPT = """
import multiprocessing.process as mpp
starts = []
_start = mpp.BaseProcess.start
mpp.BaseProcess.start = lambda self: (starts.append(1), _start(self))[1]
import deeplimits, toyplug
print("MAIN RAN")
res = deeplimits.run(probes=[toyplug.PROBE], profile="smoke", jobs=2, out=OUT, progress=False, report=False,
                     overrides={"k": [0, 1], "sleep": 0.05}, seeds=3)
print("RESULT", res.ran, len(res.failed), "WORKERS", len(starts))
"""


@pytest.mark.parametrize("how", ["file", "stdin", "-c", "notebook"])
def test_api_works_without_a_main_guard(plugins: Path, tmp_path: Path, how: str) -> None:
    code = SCRIPT.replace("OUT", repr(str(tmp_path / "out")))
    script = tmp_path / "s.py"
    script.write_text(code)
    notebook = ("import sys, types\nm = types.ModuleType('__main__')\nsys.modules['__main__'] = m\n"
                f"exec(compile(open({str(script)!r}).read(), '<cell>', 'exec'), m.__dict__)\n")
    args = {"file": [str(script)], "stdin": ["-"], "-c": ["-c", code], "notebook": ["-c", notebook]}[how]
    done = subprocess.run([sys.executable, *args], input=code if how == "stdin" else None, env=env(plugins),
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("MAIN RAN") == 1, done.stdout  # the workers did not re-run the script
    result = done.stdout.split("RESULT")[1].split()
    assert result[:2] == ["18", "0"] and int(result[3]) >= 2, done.stdout  # run in a pool, nothing failed


def test_a_dead_worker_says_how_it_died_and_the_run_goes_on(plugins: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import toyhang

    monkeypatch.setenv("TOYHANG_DIE", "1")
    res = deeplimits.run(probes=[toyhang.PROBE], profile="smoke", jobs=2, out=tmp_path, progress=False,
                         report=False, budget_check=False)
    errors = [r.error for r in res.failed]
    assert len(errors) == 1 and "killed by SIGKILL (signal 9)" in errors[0], errors
    assert "out of memory?" not in errors[0] and len(res.records) == 18


# --- 9. a trial that never ends --------------------------------------------------------------------
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_trial_that_never_ends_times_out(plugins: Path, tmp_path: Path, jobs: int) -> None:
    import toyhang

    start = time.perf_counter()
    res = deeplimits.run(probes=[toyhang.PROBE], profile="smoke", jobs=jobs, out=tmp_path, progress=False,
                         report=False, budget_check=False)
    assert time.perf_counter() - start < 90
    errors = [r.error for r in res.failed]
    assert len(errors) == 1 and errors[0].startswith("timed out after 1.5 s"), errors
    assert len(res.records) == 18
    assert "timeout" not in res.records[0].params  # the time limit does not change what a trial is


def test_timeout_is_a_setting_with_a_rule() -> None:
    probe = make_probe()
    assert profiles.resolve(probe, "smoke", {"timeout": "30"}).timeout == 30.0
    with pytest.raises(UsageError, match="timeout must be a finite number > 0"):
        profiles.resolve(probe, "smoke", {"timeout": "0"})


# --- 3. the store's schema is checked before any work ----------------------------------------------
def small_run(out: Path, probe=None) -> deeplimits.RunResult:
    return deeplimits.run(probes=[probe or make_probe()], out=out, jobs=1, progress=False, report=False,
                          overrides={"k": "0,1"}, seeds=3, budget_check=False)


def never_called(task, ctx):
    raise AssertionError("a trial ran although the store was refused")


def test_newer_or_damaged_store_is_refused_untouched_before_any_trial(tmp_path: Path) -> None:
    small_run(tmp_path)
    path = tmp_path / STORE_NAME
    probe = make_probe(version=2).with_contenders(Contender("line", "deep", never_called), replace=True)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=2")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="written by a newer deeplimits"):
        small_run(tmp_path, probe)
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path, create=False)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=1")
        db.execute("ALTER TABLE trials DROP COLUMN device")
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"lacks column\(s\) trials.device"):
        small_run(tmp_path, probe)
    assert path.read_bytes() == before


def test_older_store_is_migrated_explicitly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small_run(tmp_path)
    path = tmp_path / STORE_NAME
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=0")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="cannot migrate"):  # no migration from 0 is known
        Store(tmp_path)
    assert path.read_bytes() == before
    steps = []
    monkeypatch.setitem(MIGRATIONS, 0, lambda db: steps.append(db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]))
    with pytest.raises(StoreError, match="migrates it"):
        Store(tmp_path, create=False)  # a reader never writes, so it does not migrate either
    with Store(tmp_path) as store:
        assert store.migrated == (0, 1) and steps == [18]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1


# --- 4. unwritable report folder; read-only output folder -------------------------------------------
@pytest.fixture
def toys_only(plugins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import toyhang
    import toyplug

    monkeypatch.setattr(registry, "all_probes", lambda: {p.id: p for p in (toyplug.PROBE, toyhang.PROBE)})


def test_unwritable_report_prints_verdicts_then_one_line(toys_only: None, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "report").write_text("a file where the report folder should be")
    code = cli.main(["run", "toyplug", "--profile", "smoke", "--jobs", "1", "--set", "sleep=0", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == cli.REPORT_FAILED == 1
    assert "toyplug" in captured.out and "holds" in captured.out  # the verdict table came first
    assert len(lines(captured.err)) == 1 and "report not written" in captured.err, captured.err
    assert stored(out) == 36


def drop_write_override() -> None:
    """Root writes anywhere; without CAP_DAC_OVERRIDE it respects a read-only folder like anyone."""
    if os.geteuid() == 0 and ctypes.CDLL(None, use_errno=True).prctl(24, 1, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
        raise OSError(ctypes.get_errno(), "prctl")


@pytest.mark.slow  # five command-line processes (about 10 s each on a loaded 2-core machine)
def test_read_only_folder_is_readable_and_says_why_it_cannot_be_written(plugins: Path, tmp_path: Path) -> None:
    out = tmp_path / "ro"
    done = run_cli(plugins, "run", "toyplug", "--profile", "smoke", "--jobs", "1", "--set", "sleep=0",
                   "--set", "k=0,1", "--out", str(out), "--no-report")
    assert done.returncode == 0, done.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.chmod(0o555)
    try:
        ro = {"preexec_fn": drop_write_override}
        check = run_cli(plugins, "run", "toyplug", "--out", str(out), **ro)
        if check.returncode == 0:
            pytest.skip("this system lets the test write to a read-only folder")
        assert check.returncode == 2 and "permission denied" in check.stderr and "can still be read" in check.stderr
        assert len(lines(check.stderr)) == 1 and "not a deeplimits store" not in check.stderr
        shown = run_cli(plugins, "verdicts", "--out", str(out), **ro)
        assert shown.returncode == 0 and "toyplug" in shown.stdout and "holds" in shown.stdout, shown.stderr
        exported = run_cli(plugins, "export", "--out", str(out), "--path", str(elsewhere / "t.csv"), **ro)
        assert exported.returncode == 0, exported.stderr
        assert (elsewhere / "t.csv").read_text().count("\n") == 1 + 18
        refused = run_cli(plugins, "export", "--out", str(out), **ro)
        assert refused.returncode == 2 and "cannot write the export" in refused.stderr
        report = run_cli(plugins, "report", "--out", str(out), "--jobs", "1", "--to", str(elsewhere / "r"), **ro)
        assert report.returncode == 0 and (elsewhere / "r" / "index.html").exists(), report.stderr
        assert sorted(p.name for p in out.iterdir()) == [".deeplimits.lock", STORE_NAME]
    finally:
        out.chmod(0o755)


# --- 5. plugins: a broken one is skipped with one line; markup printed literally --------------------
class FakeEntryPoint:
    def __init__(self, name: str, value: str, load, package: str) -> None:
        self.name, self.value, self._load = name, value, load
        self.dist = type("Dist", (), {"name": package})()

    def load(self):
        return self._load()


def test_bad_plugins_are_skipped_with_one_line_each(toys_only: None, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    import toyhang
    import toyplug

    def broken():
        raise ImportError("No module named 'missing_dependency'")

    marked = make_probe(id="toymarkup", claim="accuracy in [lo, hi] falls [/i] here",
                        sources=("Doe [2020] [bold]x[/bold]",))
    eps = [FakeEntryPoint("broken", "brokenpkg.mod:PROBE", broken, "brokenpkg"),
           FakeEntryPoint("number", "numberpkg:PROBE", lambda: 42, "numberpkg"),
           FakeEntryPoint("clash", "clashpkg:PROBE", lambda: make_probe(id="toyplug"), "clashpkg"),
           FakeEntryPoint("good", "toyhang:PROBE", lambda: toyhang, "goodpkg"),
           FakeEntryPoint("markup", "markpkg:PROBE", lambda: marked, "markpkg")]
    monkeypatch.setattr(registry, "all_probes", ALL_PROBES)
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    builtin = [type("Info", (), {"name": "toyplug", "ispkg": False})()]
    monkeypatch.setattr(registry.pkgutil, "walk_packages", lambda *a, **k: builtin)
    monkeypatch.setattr(cli, "console", cli.Console(width=250))
    with pytest.warns(registry.PluginWarning) as caught:
        found = registry.all_probes()
    assert set(found) == {"toyplug", "toyhang", "toymarkup"} and found["toyplug"] is toyplug.PROBE
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3
    assert "brokenpkg" in messages[0] and "missing_dependency" in messages[0]
    assert "numberpkg" in messages[1] and "not a deeplimits Probe" in messages[1]
    assert "clashpkg" in messages[2] and "already taken by a built-in" in messages[2]

    assert cli.main(["list"]) == 0
    captured = capsys.readouterr()
    warned = lines(captured.err)
    assert len(warned) == 3 and all(w.startswith("deeplimits: warning: ") for w in warned), warned
    assert "[lo, hi]" in captured.out and "[/i]" in captured.out  # list: id, family, claim, status
    assert cli.main(["show", "toymarkup"]) == 0
    shown = capsys.readouterr().out
    assert "accuracy in [lo, hi] falls [/i] here" in shown and "[bold]x[/bold]" in shown


# --- 6 and 7. settings are validated; a usage error creates nothing ----------------------------------
@dataclass(frozen=True)
class TrainProfile(ToyProfile):
    steps: int = 100
    lr: float = 1e-3
    n_test: int = 50
    widths: tuple[int, ...] = (4, 8)
    momentum: float = 0.9
    ranges: ClassVar[dict[str, tuple[float, float]]] = {"momentum": (0.0, 1.0)}


TRAIN = make_probe(profiles={n: TrainProfile(n, knob=(0, 1), seeds=3) for n in ("smoke", "quick", "paper")})


@pytest.mark.parametrize(("setting", "message"), [
    ("steps=-5", "steps must be an integer >= 1"),
    ("lr=nan", "lr must be a finite number > 0"),
    ("lr=inf", "lr must be a finite number > 0"),
    ("lr=0", "lr must be a finite number > 0"),
    ("n_test=0", "n_test must be an integer >= 1"),
    ("slope=-0.1", "slope must be a finite number >= 0"),
    ("widths=4,-8", "widths must be an integer >= 1"),
    ("momentum=1.5", "momentum must be a number in [0.0, 1.0]"),
    ("widths=4.5", "cannot read '4.5' as a comma-separated tuple of int"),
    ("k=4.5", "cannot read '4.5' as a comma-separated tuple of int"),
])
def test_settings_are_validated(setting: str, message: str) -> None:
    name, _, value = setting.partition("=")
    with pytest.raises(UsageError) as caught:
        profiles.resolve(TRAIN, "smoke", {name: value})
    assert message in str(caught.value)


def test_valid_settings_pass() -> None:
    prof = profiles.resolve(TRAIN, "smoke", {"steps": "5", "lr": "0.1", "widths": "2,3", "momentum": "0",
                                             "sleep": "0"})
    assert (prof.steps, prof.lr, prof.widths, prof.momentum, prof.sleep) == (5, 0.1, (2, 3), 0.0, 0.0)


@pytest.mark.parametrize("args", [
    ["run", "toyplug", "--set", "budget=-5"], ["run", "toyplug", "--set", "slope=nan"],
    ["run", "toyplug", "--jobs", "0"], ["run", "toyplug", "--jobs", "-2"], ["run", "toyplug", "--seeds", "0"],
    ["run", "nosuch"], ["run", "toyplug", "--device", "tpu"], ["run", "toyplug", "--backend", "spark"],
    ["run", "toyplug", "--profile", "fast"], ["run", "toyplug", "--set", "nope=1"], ["report", "--jobs", "0"],
    ["export", "--format", "xlsx"],
], ids=" ".join)
def test_usage_errors_are_one_line_and_create_nothing(toys_only: None, tmp_path: Path, args: list[str],
                                                      capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "new" / "out"
    assert cli.main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(lines(err)) == 1 and err.startswith("deeplimits: error: "), err
    assert not (tmp_path / "new").exists()


def test_jobs_below_one_refused_by_the_api(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--jobs must be at least 1"):
        deeplimits.run(probes=[make_probe()], out=tmp_path / "x", jobs=0, progress=False, report=False)
    assert not (tmp_path / "x").exists()


# --- 8. two runs into one folder -----------------------------------------------------------------------
def test_a_second_run_into_a_busy_folder_is_refused(plugins: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture, toys_only: None) -> None:
    out = tmp_path / "out"
    proc = start_cli(plugins, "run", "toyplug", "--profile", "smoke", "--jobs", "1", "--out", str(out), "--no-report")
    try:
        wait_for(out, 1, proc)
        assert cli.main(["run", "toyplug", "--profile", "smoke", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert len(lines(err)) == 1 and f"another deeplimits run (pid {proc.pid})" in err, err
    finally:
        proc.kill()
        proc.wait()
    with Store(out) as store:  # the lock died with its holder
        assert store.count() >= 1


# --- the verdict says where every trial failed -------------------------------------------------------------
def test_all_failed_cells_are_named_not_straddling(tmp_path: Path) -> None:
    def fails_at_2(task, ctx):
        if ctx.knob == 2:
            raise RuntimeError("boom")
        return 0.99

    probe = make_probe().with_contenders(Contender("line", "deep", fails_at_2, tuning="none"),
                                         Contender("steep", "deep", fails_at_2, tuning="none"),
                                         Contender("const", "alternative", lambda t, c: 0.99), replace=True)
    res = deeplimits.run(probes=[probe], out=tmp_path, jobs=1, progress=False, report=False, budget_check=False)
    reasons = " | ".join(res.verdicts["toy"].reasons)
    assert "all 5 trial(s) failed" in reasons, reasons
    assert "straddles the line at k = 2" not in reasons, reasons


def test_inline_time_limit_restores_the_alarm(tmp_path: Path) -> None:
    from deeplimits import pool

    before = signal.getsignal(signal.SIGALRM)
    with pool._alarm(5.0):
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
    assert signal.getsignal(signal.SIGALRM) is before and signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_describe_exit() -> None:
    from deeplimits.pool import describe_exit

    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-signal.SIGSEGV).startswith("was killed by SIGSEGV (signal 11)")

