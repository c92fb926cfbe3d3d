"""The Ray backend: the same jobs as the local pool, as Ray tasks on this machine or a cluster.

`deeplimits run --backend ray` starts a local Ray runtime sized to the machine; `--address auto`
(or `ray://host:port`) joins a running cluster. Each job becomes one Ray task with the CPU/GPU share
it needs; results stream back with `ray.wait` and only the driver writes the store, so the commands,
the store and the verdicts are those of the local backend.

A local runtime is kept on this machine: no dashboard, no usage reporting, every Ray service bound
to the loopback address (Ray's single-machine mode), its logs and temp files in `<out>/ray` (or a
short folder under /tmp, linked from there, when that path is too long for Ray's unix sockets).

Faults: an error inside a trial is a failed trial with its text (as with the local pool); a worker
process that dies mid-task is retried by Ray `max_retries` times and then stored failed, and the
run goes on; the driver killed with SIGKILL loses no stored trial (Ray's processes die with it) and
the same command resumes.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .backends import Job, Outcome
from .probe import Probe, UsageError

SOCKET_ROOM = 107 - 66  # AF_UNIX paths are <= 107 bytes; Ray adds ~66 (session_<date>_<pid>/sockets/plasma_store)
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}  # no usage reporting, on a cluster too
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, a request through it fails at once
LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # single-machine mode: every service on 127.0.0.1
    "RAY_DISABLE_IMPORT_WARNING": "1",
    # Ray starts a usage-stats module even with the dashboard and usage reporting off, and it asks the
    # cloud metadata servers (169.254.169.254, metadata.google.internal) which cloud this is; an HTTP
    # proxy on loopback that nothing serves keeps those requests on this machine (gRPC between Ray's
    # own processes is on 127.0.0.1, which no_proxy exempts)
    **{k: DEAD_PROXY for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")},
    **{k: "localhost,127.0.0.1,::1" for k in ("no_proxy", "NO_PROXY")},
}


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--backend ray needs the [ray] extra: pip install 'deeplimits[ray]'") from None
    return ray


def temp_dir(out: Any) -> Path:
    """Ray's temp and log folder: `<out>/ray`, or a short one under /tmp (linked from `<out>/ray`)
    where that path would make Ray's unix socket paths too long."""
    wanted = Path(out or "deeplimits-out").resolve() / "ray"
    if wanted.is_symlink() and len(str(wanted.resolve())) <= SOCKET_ROOM:
        return wanted.resolve()
    if len(str(wanted)) <= SOCKET_ROOM:
        wanted.mkdir(parents=True, exist_ok=True)
        return wanted
    short = Path(tempfile.mkdtemp(prefix="dlray-", dir="/tmp" if os.path.isdir("/tmp") else None))
    try:
        wanted.parent.mkdir(parents=True, exist_ok=True)
        if wanted.is_symlink():
            wanted.unlink()
        if not wanted.exists():
            wanted.symlink_to(short, target_is_directory=True)
    except OSError:
        pass  # the link is a convenience; the logs are in `short`
    return short


@contextmanager
def _environment(changes: dict[str, str]) -> Iterator[None]:
    """Set environment variables while Ray starts its processes (they inherit them), then restore."""
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# Ray's own processes share the driver's fate, but its agents (started by the raylet) can hang on
# their way out, after ray.shutdown() as after a SIGKILLed driver. This watchdog, in its own session,
# notes the driver's Ray descendants every second and kills those still running once the driver is
# gone or once it is told to (SIGTERM, from close() after ray.shutdown()).
WATCHDOG = """
import os, signal, sys, time
import psutil
driver, ray_dir, me, seen, stop = int(sys.argv[1]), sys.argv[2], os.getpid(), {}, []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
def ours(p):
    return p.name().startswith("ray::") or any(ray_dir in part for part in p.cmdline())
while not stop:
    try:
        d = psutil.Process(driver)
        if d.status() == psutil.STATUS_ZOMBIE:
            break
        for c in d.children(recursive=True):
            try:
                if c.pid != me and c.pid not in seen and ours(c):
                    seen[c.pid] = c.create_time()
            except psutil.Error:
                pass
    except psutil.Error:
        break
    time.sleep(1.0)
for pid, created in seen.items():
    try:
        p = psutil.Process(pid)
        if p.create_time() == created:
            p.kill()
    except psutil.Error:
        pass
"""


def _watchdog(ray: Any) -> subprocess.Popen | None:
    """Start the watchdog (needs psutil, in the [ray] extra); None without psutil."""
    if importlib.util.find_spec("psutil") is None:
        return None
    ray_dir = os.path.dirname(os.path.abspath(ray.__file__))
    return subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), ray_dir], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _run_job(job: Job, probe: Probe | None, threads: int) -> list[Outcome]:
    """What a Ray task runs: the local backend's job function, under the job's time limit."""
    import torch

    torch.set_num_threads(max(1, threads))
    from .pool import run_inline

    return run_inline(job, probe)


def _error(exc: BaseException, retries: int) -> str:
    """One line for a task that did not return (worker died, cancelled, cannot unpickle...)."""
    ray = _ray()
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and cause is not None:
        text = f"{type(cause).__name__}: {cause}"
    elif isinstance(exc, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
        text = (f"the Ray worker running this job died ({type(exc).__name__}) and Ray's {retries} "
                "retries were used up; the job is retried on the next run")
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) < 600 else text[:597] + "…"


class RayBackend:
    """Jobs as Ray tasks. `jobs`: CPUs of a local runtime (default: all cores); `address`: join a
    cluster instead; `max_retries`: Ray's retries of a task whose worker died."""

    def __init__(self, jobs: int | None = None, address: str | None = None, out: Any = None,
                 max_retries: int = 2, cpus_per_job: float = 1.0, gpus_per_job: float = 1.0) -> None:
        _ray()  # fail now, with the install hint, if the extra is missing
        if jobs is not None and jobs < 1:
            raise UsageError(f"--jobs must be at least 1, got {jobs}")
        if address is not None and not address.strip():
            raise UsageError("--address: give auto, host:port or ray://host:port")
        self.jobs, self.address, self.out = jobs, address, out
        self.max_retries, self.cpus_per_job, self.gpus_per_job = max_retries, cpus_per_job, gpus_per_job
        self.started = False  # connected (to our own runtime, a cluster, or the caller's Ray)
        self.owned = False  # we called ray.init, so close() shuts it down
        self.logs: Path | None = None
        self._watchdog: subprocess.Popen | None = None
        self._remote: Any = None

    # --- start and stop -----------------------------------------------------------------------
    def start(self) -> None:
        if self.started:
            return
        ray = _ray()
        common = dict(logging_level=logging.ERROR, log_to_driver=False, namespace="deeplimits")
        with _environment(QUIET_ENV):
            if ray.is_initialized():  # the caller manages Ray (a notebook, a test): use it as it is
                pass
            elif self.address:
                try:
                    ray.init(address=self.address, **common)
                except (ConnectionError, ValueError, RuntimeError) as exc:
                    raise UsageError(f"cannot join the Ray cluster at {self.address}: {' '.join(str(exc).split())}"
                                     ) from None
                self.owned = True
            else:
                self._start_local(ray, common)
                self.owned = True
                self._watchdog = _watchdog(ray)
        self.started = True
        self._remote = ray.remote(_run_job)

    def _start_local(self, ray: Any, common: dict[str, Any]) -> None:
        self.logs = temp_dir(self.out)
        # workers import what the driver imports (its sys.path), as spawned pool workers do
        path = os.pathsep.join([p for p in sys.path if p and os.path.isdir(p)]
                               + [os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
        from ray._private import ray_constants  # private, so every use below tolerates its absence

        was = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
        if was is not None:  # the driver's own address look-up: loopback, no UDP "connect" to 8.8.8.8
            ray_constants.ENABLE_RAY_CLUSTER = False
        try:
            with _environment({**LOCAL_ENV, "PYTHONPATH": path}):
                for attempt in (1, 2):  # Ray gives its raylet 30 s to start: a loaded machine may need a retry
                    try:
                        ray.init(num_cpus=self.jobs or os.cpu_count() or 1, include_dashboard=False,
                                 _temp_dir=str(self.logs), **common)
                        break
                    except Exception as exc:  # noqa: BLE001 - Ray raises bare Exception on a start-up timeout
                        ray.shutdown()
                        if attempt == 2:
                            raise UsageError(f"the local Ray runtime did not start ({' '.join(str(exc).split())}); "
                                             f"its logs are in {self.logs}") from None
        finally:
            if was is not None:
                ray_constants.ENABLE_RAY_CLUSTER = was

    def close(self) -> None:
        if self.owned:
            ray = _ray()
            if ray.is_initialized():
                ray.shutdown()
        if self._watchdog is not None:  # Ray has shut down: the watchdog ends whatever of it still runs
            self._watchdog.terminate()
            try:
                self._watchdog.wait(15)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
            self._watchdog = None
        self.started = self.owned = False

    # --- running ----------------------------------------------------------------------------------
    def _options(self, job: Job) -> dict[str, Any]:
        gpus = self.gpus_per_job if job.device == "cuda" else 0
        return {"num_cpus": self.cpus_per_job, "num_gpus": gpus, "max_retries": self.max_retries,
                "retry_exceptions": False}

    def _probe_refs(self, ray: Any, jobs: list[Job], probes: dict[str, Probe]) -> dict[str, Any]:
        """Each probe goes to the workers once, by value (cloudpickle: only its own module is
        imported there); one that cannot be pickled is looked up by id in the worker's registry."""
        refs = {}
        for lid in {j.specs[0].limit_id for j in jobs}:
            try:
                refs[lid] = ray.put(probes[lid]) if lid in probes else None
            except Exception:  # noqa: BLE001 - unpicklable probe: the worker finds it by id
                refs[lid] = None
        return refs

    def run(self, jobs: list[Job], probes: dict[str, Probe]) -> Iterator[tuple[Job, list[Outcome]]]:
        if not jobs:
            return
        self.start()
        ray = _ray()
        threads = max(1, int(self.cpus_per_job))
        refs = self._probe_refs(ray, jobs, probes)
        pending: dict[Any, tuple[Job, float]] = {}
        for job in jobs:
            task = self._remote.options(**self._options(job)).remote(job, refs[job.specs[0].limit_id], threads)
            pending[task] = (job, time.perf_counter())
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                more, _ = ray.wait([r for r in pending if r not in ready], num_returns=len(pending) - len(ready),
                                   timeout=0) if len(pending) > len(ready) else ([], [])
                for ref in [*ready, *more]:
                    job, submitted = pending.pop(ref)
                    yield job, self._result(ray, ref, job, submitted)
        finally:
            for ref in pending:  # Ctrl-C or an error: stop the tasks in flight (finished ones are stored)
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001, S110 - already finished or gone
                    pass

    def _result(self, ray: Any, ref: Any, job: Job, submitted: float) -> list[Outcome]:
        try:
            return ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a task that did not return is a failed trial, not a crash
            wall = (time.perf_counter() - submitted) / len(job.specs)
            return [(s.key, None, _error(exc, self.max_retries), wall) for s in job.specs]
