"""The Ray backend: the same metrics as the local backend for the same seeds, no socket to a
non-loopback address, a killed worker retried (or recorded failed) while the run finishes, and a
driver killed with SIGKILL losing no stored trial. Ray's start-up takes seconds: marked slow."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

import deeplimits  # noqa: E402
import toy_arrays  # noqa: E402
from deeplimits.backends import Job  # noqa: E402
from deeplimits.probe import Contender, Context, Knob, Metric, Probe, Profile, Task, Threshold  # noqa: E402
from deeplimits.ray_backend import RayBackend  # noqa: E402
from deeplimits.runner import expand  # noqa: E402
from deeplimits.store import Store, StoreError  # noqa: E402

import toy  # noqa: E402
from procs import still_running  # noqa: E402

pytestmark = pytest.mark.slow
TESTS = Path(__file__).parent


def tree(pid: int) -> set[int]:
    try:
        root = psutil.Process(pid)
        return {pid, *(c.pid for c in root.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def remote_addresses(pids: set[int]) -> set[str]:
    """Remote addresses of every inet socket of these processes (the run's process tree)."""
    found = set()
    for c in psutil.net_connections("inet"):
        if c.pid in pids and c.raddr:
            found.add(c.raddr.ip)
    return found


def loopback(ip: str) -> bool:
    ip = ip.removeprefix("::ffff:")
    return ip.startswith("127.") or ip == "::1"


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The smoke profile of two toys through the local backend and through Ray, with the run's sockets
    sampled every 0.2 s during the Ray run."""
    out = tmp_path_factory.mktemp("ray")
    probes = [toy.make_probe(), toy_arrays.PROBE]
    local = deeplimits.run(probes=probes, profile="smoke", out=out / "local", jobs=1, progress=False, report=False)
    seen: set[str] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.update(remote_addresses(tree(os.getpid())))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        ray = deeplimits.run(probes=probes, profile="smoke", out=out / "ray", jobs=2, backend="ray",
                             progress=False, report=False)
    finally:
        done.set()
        sampler.join()
    return {"local": local, "ray": ray, "remote": seen}


def test_ray_gives_the_local_backends_metrics(both: dict) -> None:
    local = {r.key: r.metrics for r in both["local"].records}
    ray = {r.key: r.metrics for r in both["ray"].records}
    assert len(local) == 5 * 4 * 3 + 3 * 3 * 3 and ray == local
    assert {k: v.outcome for k, v in both["ray"].verdicts.items()} == {k: v.outcome for k, v in
                                                                       both["local"].verdicts.items()}


def test_no_socket_to_a_non_loopback_address(both: dict) -> None:
    assert both["remote"], "the sampler saw no socket at all: it did not watch the Ray processes"
    assert all(loopback(ip) for ip in both["remote"]), both["remote"]


# --- a worker killed mid-task ---------------------------------------------------------------------
@dataclass(frozen=True)
class SleepProfile(Profile):
    sleep: float = 2.0
    pid_dir: str = ""


def sleepy(public: float, ctx: Context) -> float:
    """Writes its worker's pid where the test can find it, then sleeps."""
    Path(ctx.profile.pid_dir, f"{ctx.seed}-{os.getpid()}-{time.time_ns()}").write_text("")
    time.sleep(ctx.profile.sleep if ctx.seed == 0 else 0.0)
    return 0.99


def sleep_probe(pid_dir: Path) -> Probe:
    return Probe(
        id="toy_sleep", family="toys", claim="a toy", sources=("none",), version=1,
        knob=Knob("k", "difficulty"), metrics=(Metric("accuracy", chance=0.5, lo=0.0, hi=1.0),),
        rule=Threshold("accuracy", success=0.95),
        profiles={n: SleepProfile(n, knob=(0,), seeds=3, pid_dir=str(pid_dir)) for n in ("smoke", "quick", "paper")},
        make_task=lambda k, rng, p: Task(0.0), score=lambda task, out, ctx: {"accuracy": float(out)},
        contenders=(Contender("sleepy", "deep", sleepy), Contender("other", "deep", sleepy)))


def kill_first_seed0_worker(pid_dir: Path, killed: list[int], stop: threading.Event) -> None:
    while not stop.is_set() and not killed:
        for f in pid_dir.glob("0-*"):
            pid = int(f.name.split("-")[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


@pytest.mark.parametrize("retries", [2, 0])
def test_a_killed_worker_is_retried_or_recorded_failed(tmp_path: Path, retries: int) -> None:
    probe = sleep_probe(tmp_path)
    profile = probe.profile("smoke")
    jobs = [Job((spec,), profile, "cpu") for spec in expand(probe, profile)]
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_first_seed0_worker, args=(tmp_path, killed, stop), daemon=True)
    killer.start()
    backend = RayBackend(2, out=tmp_path / "out", max_retries=retries)
    try:
        results = {job.specs[0].key: outcomes[0] for job, outcomes in backend.run(jobs, {probe.id: probe})}
    finally:
        stop.set()
        backend.close()
    assert killed, "no worker was killed"
    assert len(results) == len(jobs)  # the run finished
    failed = {k: o[2] for k, o in results.items() if o[2] is not None}
    if retries:
        assert not failed, failed  # Ray ran the killed task again in a new worker
    else:
        assert len(failed) == 1 and "worker" in next(iter(failed.values())), failed


# --- the driver killed with SIGKILL -----------------------------------------------------------------
def wait_for_trials(driver: subprocess.Popen, out: Path, n: int, timeout: float = 240) -> int:
    """Trials stored by the running `driver` once there are at least n (or at its end or the timeout)."""
    deadline, stored = time.time() + timeout, 0
    while time.time() < deadline and driver.poll() is None and stored < n:
        time.sleep(0.5)
        try:
            with Store(out, create=False) as store:  # read-only: the running driver holds the writer's lock
                stored = store.count()
        except (StoreError, sqlite3.Error):  # not created yet, or its schema not yet written
            pass
    return stored


def test_driver_sigkill_loses_nothing_and_the_same_command_resumes(tmp_path: Path) -> None:
    site = toy_arrays.register(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(site)]), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "deeplimits.cli", "run", "toy", "--backend", "ray", "--jobs", "2", "--profile",
           "smoke", "--set", "sleep=0.3", "--out", str(out), "--no-report"]
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        stored = wait_for_trials(driver, out, 6)
        assert driver.poll() is None and stored >= 6, driver.stderr.read().decode() if driver.poll() else stored
        ray_pids = tree(driver.pid) - {driver.pid}
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:  # a failed assertion: stop the run we started (SIGTERM: Ray shuts down)
            driver.terminate()
            driver.wait(60)
    with Store(out) as store:
        kept = {r.key for r in store.records() if r.status == "ok"}
    assert len(kept) >= stored
    alive = still_running(list(ray_pids), timeout=60.0, poll=1.0)
    # Ray's processes share the driver's fate (workers notice their raylet)
    for p in alive:  # leave nothing running, whatever the assertion says
        p.kill()
    assert not alive, f"Ray processes outlived the killed driver: {[p.name() for p in alive]}"
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    said = " ".join(again.stdout.split())
    total = 5 * 4 * 3
    assert f"{total - len(kept)} trial(s) run, {len(kept)} from the store" in said, said
    with Store(out) as store:
        assert store.count() == total and kept <= {r.key for r in store.records()}


def test_a_long_out_path_uses_a_short_ray_folder(tmp_path: Path) -> None:
    from deeplimits.ray_backend import SOCKET_ROOM, temp_dir

    long_out = tmp_path / ("x" * 80)
    folder = temp_dir(long_out)
    assert len(str(folder)) <= SOCKET_ROOM and (long_out / "ray").resolve() == folder.resolve()
    short = Path(tempfile.mkdtemp(prefix="dl-", dir="/tmp"))
    try:
        assert temp_dir(short) == short / "ray"
    finally:
        shutil.rmtree(short)



def test_a_challenger_file_runs_on_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deeplimits import registry

    monkeypatch.syspath_prepend(str(toy_arrays.register(tmp_path / "site")))
    registry.all_probes.cache_clear()
    oracle = tmp_path / "oracle.py"
    oracle.write_text("from deeplimits import registry\nfrom deeplimits.probe import task_rng\n\n\n"
                      "def make(public, ctx):  # regenerates the hidden labels: a test device\n"
                      "    rng = task_rng(ctx.probe_id, ctx.knob, ctx.seed)\n"
                      "    return registry.get(ctx.probe_id).make_task(ctx.knob, rng, ctx.profile).hidden\n")
    try:
        res = deeplimits.challenge("toy_arrays", f"{oracle}:make", profile="smoke", out=tmp_path / "out",
                                   backend="ray", jobs=2, progress=False, report=False)
    finally:
        registry.all_probes.cache_clear()
    assert res.broke == [1, 2] and not res.failed and res.run.ran == 36
