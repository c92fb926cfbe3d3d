"""The local backend: a small process pool of spawned workers that die with their parent, never
re-run the caller's main module, and are killed one by one when a job passes its time limit (or
jobs run inline, with a SIGALRM time limit, when there is one worker).

Hand-written rather than concurrent.futures: ProcessPoolExecutor cannot kill one stuck job's
worker, and its workers outlive a parent killed with SIGKILL."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import connection
from typing import Any

from .backends import Job, Outcome, execute_job
from .probe import Probe, UsageError


class JobTimeout(BaseException):
    """The inline time limit fired (a BaseException, so a contender's `except Exception` cannot swallow it)."""


def job_timeout(job: Job) -> float:
    """The job's time limit in seconds from its profile's `timeout` field (0: none)."""
    limit = float(getattr(job.profile, "timeout", 0) or 0)
    return limit if math.isfinite(limit) and limit > 0 else 0.0


def _failed(job: Job, error: str, elapsed: float) -> list[Outcome]:
    return [(s.key, None, error, elapsed / len(job.specs)) for s in job.specs]


def timed_out(job: Job, elapsed: float) -> list[Outcome]:
    limit = job_timeout(job)
    return _failed(job, f"timed out after {limit:g} s (the profile's timeout; raise it with --set timeout=...)",
                    elapsed)


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Raise JobTimeout in the main thread after `seconds` (SIGALRM; a no-op off Unix or off the main thread)."""
    usable = seconds > 0 and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def ring(signum: int, frame: Any) -> None:
        raise JobTimeout

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_inline(job: Job, probe: Probe | None = None) -> list[Outcome]:
    """One job in this process, under its time limit."""
    start = time.perf_counter()
    try:
        with _alarm(job_timeout(job)):
            return execute_job(job, probe)
    except JobTimeout:
        return timed_out(job, time.perf_counter() - start)


def describe_exit(code: int | None) -> str:
    """What happened to a worker process, from its exit code (negative: the signal that killed it)."""
    if code is None:
        return "did not exit"
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "an unknown signal"
    why = " (sent by kill -9 or by the kernel's out-of-memory killer)" if -code == signal.SIGKILL else ""
    return f"was killed by {name} (signal {-code}){why}"


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive the run: the kernel kills it when its parent dies (Linux), and a
    watchdog thread polling the parent's pid covers other systems and the start-up race."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="deeplimits-watchdog", daemon=True).start()


STARTED = "started"


def _worker_main(jobs_in: Any, results_out: Any, threads: int, parent: int) -> None:
    """A pool worker: run jobs from the parent until it says stop or goes away."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)  # before torch is imported (only probes that need it import it)
    from . import registry

    probes: dict[str, Probe] = {}
    while True:
        try:
            message = jobs_in.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        job, where = message
        lid = job.specs[0].limit_id
        if lid not in probes and where:
            try:  # import this probe's module alone, not the whole registry
                probes[lid] = registry.load_origin(where, lid)
            except Exception:  # noqa: BLE001 - execute_job then reports the failure as the trials' error
                pass
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        results_out.send(STARTED)  # the time limit counts from here, not from start-up and imports
        results_out.send(execute_job(job, probes.get(lid)))


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Spawned children re-run the parent's __main__ (found by its __file__ or __spec__) before
    anything else, which breaks unguarded scripts, `python -` and notebooks. Our workers need
    nothing from it (a probe travels as the name of the module that holds it), so it is hidden
    while a worker starts."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


class _Worker:
    """One spawned worker process with its own job and result pipes (so a stuck job is known
    precisely and only its worker is killed)."""

    def __init__(self, threads: int) -> None:
        ctx = mp.get_context("spawn")  # fork after torch threads start can deadlock
        jobs_in, self.jobs = ctx.Pipe(duplex=False)
        self.results, results_out = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_worker_main, args=(jobs_in, results_out, threads, os.getpid()),
                                name="deeplimits-worker", daemon=True)
        with _main_module_hidden():
            self.proc.start()
        jobs_in.close()
        results_out.close()
        self.job: Job | None = None
        self.sent = 0.0
        self.started: float | None = None  # when the worker began the job (after loading its probe)

    def give(self, job: Job, where: str) -> None:
        self.jobs.send((job, where))
        self.job, self.sent, self.started = job, time.monotonic(), None

    def overdue(self, now: float) -> bool:
        limit = job_timeout(self.job) if self.job else 0.0
        return bool(limit) and self.started is not None and now - self.started >= limit

    def stop(self, kill: bool = False) -> None:
        if not kill and self.proc.is_alive():
            try:
                self.jobs.send(None)
                self.proc.join(2.0)
            except OSError:
                pass
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.jobs.close()
        self.results.close()


def _origin(probe: Probe) -> str | None:
    """Where a worker can import this probe, unchanged but for added challengers ("module:attribute"),
    without loading the whole registry; None for a probe built in the caller's script or a modified
    copy: those run inline."""
    import dataclasses

    from . import registry

    own = tuple(c for c in probe.contenders if c.role != "challenger")
    base = probe if own == probe.contenders else dataclasses.replace(probe, contenders=own)
    where = registry.origin(probe.id, load=False)  # None unless the registry is already loaded
    if where and registry.all_probes().get(probe.id) == base:
        return where
    for name, module in list(sys.modules.items()):
        if name not in ("__main__", "__mp_main__") and getattr(module, "PROBE", None) == base:
            return f"{name}:PROBE"
    return None


def _poolable(job: Job, origins: dict[str, str | None]) -> bool:
    """A worker imports the probe from its origin; a challenger travels with its job, so it must
    pickle (deeplimits.challenge makes a user's file or module function a reference by path that the
    worker imports)."""
    import pickle

    if not origins.get(job.specs[0].limit_id):
        return False
    try:
        return job.challenger is None or bool(pickle.dumps(job.challenger))
    except Exception:  # noqa: BLE001 - a lambda or local function: it runs inline
        return False


class LocalBackend:
    """A process pool on this machine; with one worker, jobs run inline (easy to debug).

    Workers are spawned without re-running the caller's main module, die with the parent, and a
    job past its profile's `timeout` is stopped (its worker killed and replaced) and stored failed;
    inline, SIGALRM stops it. Only probes a worker can import by module go to workers (built-in,
    plugin or any importable module's PROBE); others, e.g. one built in the caller's script, run inline."""

    def __init__(self, jobs: int | None = None) -> None:
        if jobs is not None and jobs < 1:
            raise UsageError(f"--jobs must be at least 1, got {jobs}")
        cores = os.cpu_count() or 1
        self.workers = max(1, jobs or cores)
        self.threads = max(1, cores // self.workers)
        self._pool: list[_Worker] = []

    def run(self, jobs: list[Job], probes: dict[str, Probe]) -> Iterator[tuple[Job, list[Outcome]]]:
        origins = {lid: _origin(p) for lid, p in probes.items()} if self.workers > 1 else {}
        pooled = [j for j in jobs if _poolable(j, origins)]
        if len(pooled) <= 1:
            pooled = []
        if pooled:
            yield from self._run_pool(pooled, origins)
        chosen = {id(j) for j in pooled}
        for job in jobs:
            if id(job) not in chosen:
                yield job, run_inline(job, probes.get(job.specs[0].limit_id))

    def _run_pool(self, jobs: list[Job], origins: dict[str, Any]) -> Iterator[tuple[Job, list[Outcome]]]:
        queue = deque(jobs)
        try:
            while queue or any(w.job for w in self._pool):
                # start workers as needed (a worker killed for a stuck job is replaced only if work is left)
                while len(self._pool) < min(self.workers, len(queue) + sum(w.job is not None for w in self._pool)):
                    self._pool.append(_Worker(self.threads))
                for w in self._pool:
                    if w.job is None and queue:
                        job = queue.popleft()
                        w.give(job, origins[job.specs[0].limit_id])
                busy = [w for w in self._pool if w.job is not None]
                now = time.monotonic()
                ends = [w.started + job_timeout(w.job) for w in busy if job_timeout(w.job) and w.started is not None]
                wait_s = max(0.0, min(ends) - now) + 0.01 if ends else None
                connection.wait([w.results for w in busy] + [w.proc.sentinel for w in busy], wait_s)
                for w in busy:
                    yield from self._collect(w)
        finally:
            # on Ctrl-C, SIGTERM or an error, stop the jobs in flight now: finished trials are stored
            for w in [w for w in self._pool if w.job is not None]:
                w.stop(kill=True)
                self._pool.remove(w)

    def _collect(self, w: _Worker) -> Iterator[tuple[Job, list[Outcome]]]:
        """The worker's result if it has one; a dead or overdue worker's job fails and it is replaced."""
        job = w.job
        assert job is not None
        try:
            while w.results.poll():
                message = w.results.recv()
                if message == STARTED:
                    w.started = time.monotonic()
                    continue
                w.job = None
                yield job, message
                return
        except (EOFError, OSError):
            pass  # the worker died: its exit code says how
        elapsed = time.monotonic() - (w.started if w.started is not None else w.sent)
        if w.proc.is_alive() and not w.overdue(time.monotonic()):
            return
        if w.proc.is_alive():
            outcomes = timed_out(job, elapsed)
        else:
            w.proc.join(5.0)
            outcomes = _failed(job, f"the worker process running this job {describe_exit(w.proc.exitcode)}; "
                                    "the job is retried on the next run", elapsed)
        w.stop(kill=True)
        self._pool.remove(w)
        yield job, outcomes

    def close(self) -> None:
        for w in self._pool:
            w.stop()
        self._pool.clear()


