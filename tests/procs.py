"""Waiting for processes to end, for the tests about orphans (the local pool and Ray)."""

from __future__ import annotations

import time

import psutil


def still_running(procs: list[psutil.Process | int], timeout: float = 15, poll: float = 0.1) -> list[psutil.Process]:
    """The processes (or pids) still alive after up to `timeout` s (a zombie is dead: nobody reaps orphans here)."""
    deadline = time.time() + timeout
    while True:
        alive = []
        for p in procs:
            try:
                proc = psutil.Process(p) if isinstance(p, int) else p
                if proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.time() > deadline:
            return alive
        time.sleep(poll)
