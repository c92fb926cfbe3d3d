"""Ray vs the local pool: per-trial overhead and efficiency, then a cluster simulation.

Part 1 runs a smoke atlas of sleep trials (each trial sleeps `--sleep` seconds, no CPU) through
the local backend (inline with 1 worker, the process pool with 2) and through a local Ray runtime
(1 and 2 concurrent tasks), after one warm-up pass each (worker start-up is reported apart).
Per-trial overhead = workers x wall / trials - sleep; efficiency = trials x sleep / (workers x wall).

Part 2 simulates the paper profile on N = 1, 8, 64, 512 workers: jobs in the runner's submission
order, each started on the first free worker (Ray's FIFO dispatch) with the measured per-task
overhead. Trial durations come from a store (`--store PATH`: the quick-profile trials of a real
run, scaled by each probe's paper/quick budget ratio) or, without one, from a synthetic atlas
(said so in the output). It then finds the job granularity (split batched jobs into chunks of c
seeds) that keeps efficiency >= 0.8 at N = 64, and the effect of submitting the longest jobs first.

    python benchmarks/ray_overhead.py [--store deeplimits-out] [--trials 40] [--sleep 0.1]
"""

from __future__ import annotations

import argparse
import heapq
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplimits.probe import Contender, Context, Knob, Metric, Probe, Profile, Task, Threshold


# --- part 1: the sleep atlas --------------------------------------------------------------------
@dataclass(frozen=True)
class SleepProfile(Profile):
    sleep: float = 0.1


def make_task(k: int, rng: np.random.Generator, profile: SleepProfile) -> Task:
    return Task(0.0)


def score(task: Task, output: float, ctx: Context) -> dict[str, float]:
    return {"accuracy": float(output)}


def sleeper(public: float, ctx: Context) -> float:
    time.sleep(ctx.profile.sleep)
    return 0.99


PROBE = Probe(
    id="sleep_bench", family="benchmarks", claim="none", sources=("none",), version=1,
    knob=Knob("k", "trial index"), metrics=(Metric("accuracy", chance=0.5, lo=0.0, hi=1.0),),
    rule=Threshold("accuracy", 0.95),
    profiles={n: SleepProfile(n, knob=(0,), seeds=1) for n in ("smoke", "quick", "paper")},
    make_task=make_task, score=score,
    contenders=(Contender("sleep_a", "deep", sleeper, tuning="none"), Contender("sleep_b", "deep", sleeper,
                                                                              tuning="none")),
)


def register_self() -> None:
    """Register PROBE through the entry-point group, so that pool workers can find it by id."""
    from deeplimits import registry

    site = Path(tempfile.mkdtemp(prefix="dlbench-"))
    info = site / "deeplimits_bench-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: deeplimits-bench\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[deeplimits.limits]\nsleep_bench = ray_overhead:PROBE\n")
    sys.path[:0] = [str(Path(__file__).parent), str(site)]
    registry.all_probes.cache_clear()


def jobs_for(n: int, sleep: float, tag: int) -> tuple[list[Any], Probe]:
    from deeplimits import registry
    from deeplimits.backends import Job
    from deeplimits.runner import expand

    probe = registry.get("sleep_bench")  # imported as module `ray_overhead`, so workers can unpickle its profile
    profile = type(probe.profile("smoke"))(f"smoke{tag}", knob=tuple(range(n // 2)), seeds=1, sleep=sleep)
    return [Job((s,), profile, "cpu") for s in expand(probe, profile)], probe


def timed(backend: Any, n: int, sleep: float, tag: int) -> float:
    jobs, probe = jobs_for(n, sleep, tag)
    start = time.perf_counter()
    done = sum(1 for _ in backend.run(jobs, {probe.id: probe}))
    assert done == len(jobs)
    return time.perf_counter() - start


def measure(n: int, sleep: float) -> dict[str, dict[str, float]]:
    from deeplimits.pool import LocalBackend
    from deeplimits.ray_backend import RayBackend

    rows: dict[str, dict[str, float]] = {}
    for workers in (1, 2):
        local = LocalBackend(workers)
        t0 = time.perf_counter()
        timed(local, 4, 0.0, 100 + workers)  # warm-up: spawns the pool's workers
        start = time.perf_counter() - t0
        wall = timed(local, n, sleep, workers)
        local.close()
        rows[f"local, {workers} worker(s)"] = _row(workers, n, sleep, wall, start)
    ray_out = Path(tempfile.mkdtemp(prefix="dlb-"))
    ray2 = RayBackend(2, out=ray_out)  # starts a local runtime with 2 CPUs (its start-up is in the warm-up)
    ray1 = RayBackend(2, out=ray_out, cpus_per_job=2.0)  # the same runtime; each job takes both CPUs
    try:
        for workers, ray in ((2, ray2), (1, ray1)):
            t0 = time.perf_counter()
            timed(ray, 4, 0.0, 200 + workers)
            start = time.perf_counter() - t0
            wall = timed(ray, n, sleep, 10 + workers)
            rows[f"ray, {workers} worker(s)"] = _row(workers, n, sleep, wall, start)
    finally:
        ray1.close()
        ray2.close()
    return rows


def _row(workers: int, n: int, sleep: float, wall: float, start: float) -> dict[str, float]:
    return {"workers": workers, "wall": wall, "start": start, "overhead": workers * wall / n - sleep,
            "efficiency": n * sleep / (workers * wall)}


# --- part 2: the simulation ---------------------------------------------------------------------
@dataclass
class SimJob:
    limit: str
    seeds: int  # trials in the job
    duration: float  # seconds of one worker
    batched: bool


def synthetic_atlas(rng: np.random.Generator) -> tuple[list[SimJob], str]:
    """Ten limits x (2 batched deep arms + 1 alternative) x 6 knob values x 10 seeds: quick-profile
    trial times drawn around the README's quick atlas (675 trials, 6.5 min on 2 cores: ~1.2 s of a
    core per trial), heavy-tailed per limit, scaled 10x for the paper budget."""
    jobs = []
    for limit in range(10):
        base = float(rng.lognormal(np.log(1.2), 1.0)) * 10
        for arm in range(3):
            batched = arm < 2
            per_trial = base * (1.0 if arm < 2 else 0.3)
            for knob in range(6):
                scale = 1 + knob / 2  # harder knob values take longer (bigger inputs)
                if batched:
                    jobs.append(SimJob(f"L{limit}", 10, per_trial * scale * 10, True))
                else:
                    jobs.extend(SimJob(f"L{limit}", 1, per_trial * scale, False) for _ in range(10))
    return jobs, "synthetic durations (no store given or readable)"


def store_atlas(path: Path) -> tuple[list[SimJob], str]:
    """Paper-profile jobs from the quick-profile trials stored in `path`."""
    from deeplimits import registry
    from deeplimits.store import Store

    with Store(path, create=False) as store:
        records = [r for r in store.records() if r.status == "ok" and r.profile == "quick"]
    if not records:
        raise ValueError("no quick-profile trials in the store")
    probes = registry.all_probes()
    per: dict[tuple[str, str], list[float]] = {}
    for r in records:
        per.setdefault((r.limit_id, r.contender), []).append(r.wall_time)
    jobs = []
    for (limit, name), walls in per.items():
        probe = probes.get(limit)
        if probe is None:
            continue
        try:
            batched = probe.contender(name).batched
        except Exception:  # noqa: BLE001 - a challenger or a removed contender: not in the paper run
            continue
        quick, paper = probe.profile("quick"), probe.profile("paper")
        scale = math.prod(float(getattr(paper, f)) / float(getattr(quick, f)) for f in probe.budget_fields
                          if isinstance(getattr(quick, f), int | float) and getattr(quick, f))
        trial = float(np.mean(walls)) * scale
        for _ in paper.knob:
            if batched:
                jobs.append(SimJob(limit, paper.seeds, trial * paper.seeds, True))
            else:
                jobs.extend(SimJob(limit, 1, trial, False) for _ in range(paper.seeds))
    return jobs, f"quick-profile durations from {path}, scaled to the paper budgets"


def split(jobs: list[SimJob], chunk: int, alpha: float) -> list[SimJob]:
    """Batched jobs split into chunks of `chunk` seeds; a chunk of c of s seeds takes (c/s)^alpha
    of the job (alpha = 1: no batching gain is lost; alpha < 1: the batch amortised work)."""
    out = []
    for j in jobs:
        if not j.batched or j.seeds <= chunk:
            out.append(j)
            continue
        sizes = [chunk] * (j.seeds // chunk) + ([j.seeds % chunk] if j.seeds % chunk else [])
        out.extend(SimJob(j.limit, c, j.duration * (c / j.seeds) ** alpha, True) for c in sizes)
    return out


def makespan(jobs: list[SimJob], workers: int, overhead: float) -> float:
    """FIFO list scheduling: each job, in submission order, on the first worker to become free."""
    free = [0.0] * workers
    heapq.heapify(free)
    end = 0.0
    for j in jobs:
        t = heapq.heappop(free) + j.duration + overhead
        end = max(end, t)
        heapq.heappush(free, t)
    return end


def efficiency(jobs: list[SimJob], workers: int, overhead: float, work: float | None = None) -> tuple[float, float]:
    span = makespan(jobs, workers, overhead)
    total = work if work is not None else sum(j.duration for j in jobs)
    return span, total / (workers * span)


def fmt_s(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def simulate(jobs: list[SimJob], overhead: float, source: str) -> None:
    work = sum(j.duration for j in jobs)
    print(f"\n## Simulated paper profile ({source})")
    print(f"{len(jobs)} jobs ({sum(j.batched for j in jobs)} batched), {fmt_s(work)} of one worker in all, "
          f"longest job {fmt_s(max(j.duration for j in jobs))}, per-task overhead {overhead * 1000:.1f} ms\n")
    print("| workers N | makespan | efficiency |")
    print("|---:|---:|---:|")
    for n in (1, 8, 64, 512):
        span, eff = efficiency(jobs, n, overhead)
        print(f"| {n} | {fmt_s(span)} | {eff:.2f} |")
    print("\nGranularity at N = 64 (batched jobs split into chunks of c seeds):\n")
    print("| chunk c | jobs | eff. (alpha=1) | eff. (alpha=0.7, vs unsplit work) | longest first, alpha=1 |")
    print("|---:|---:|---:|---:|---:|")
    best = None
    for chunk in (max((j.seeds for j in jobs), default=1), 5, 3, 2, 1):
        a1 = split(jobs, chunk, 1.0)
        _, e1 = efficiency(a1, 64, overhead)
        _, e07 = efficiency(split(jobs, chunk, 0.7), 64, overhead, work)
        _, lpt = efficiency(sorted(a1, key=lambda j: -j.duration), 64, overhead)
        print(f"| {chunk} | {len(a1)} | {e1:.2f} | {e07:.2f} | {lpt:.2f} |")
        if best is None and e1 >= 0.8:
            best = chunk
    if best is None:
        print("\nNo split reaches 0.8 at N = 64: the longest single trial bounds the makespan.")
    else:
        print(f"\nSplitting batched jobs into chunks of {best} seed(s) keeps efficiency >= 0.8 at N = 64 "
              "(alpha = 1). With alpha < 1 splitting costs batching gains (column 4, efficiency against the "
              "unsplit work).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=None, help="an output folder with a quick-profile run")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--sleep", type=float, default=0.1)
    parser.add_argument("--skip-measure", action="store_true", help="only the simulation (overhead 5 ms)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    overhead = 0.005
    if not args.skip_measure:
        register_self()
        rows = measure(args.trials, args.sleep)
        print(f"## Per-trial overhead, {args.trials} trials of {args.sleep} s sleep ({os.cpu_count()} cores; "
              f"load average {os.getloadavg()[0]:.1f})\n")
        print("| backend | wall | overhead per trial | efficiency | start-up (warm-up pass) |")
        print("|---|---:|---:|---:|---:|")
        for name, r in rows.items():
            print(f"| {name} | {r['wall']:.2f} s | {r['overhead'] * 1000:.1f} ms | {r['efficiency']:.2f} | "
                  f"{r['start']:.1f} s |")
        ray2, local2 = rows["ray, 2 worker(s)"], rows["local, 2 worker(s)"]
        ratio = max(ray2["overhead"], 1e-4) / max(local2["overhead"], 1e-4)
        print(f"\nRay / local-pool per-trial overhead (2 workers): {ratio:.1f}x "
              f"({ray2['overhead'] * 1000:.1f} ms vs {local2['overhead'] * 1000:.1f} ms)")
        overhead = max(ray2["overhead"], 0.0)
    try:
        jobs, source = store_atlas(args.store) if args.store else synthetic_atlas(np.random.default_rng(0))
    except Exception as exc:  # noqa: BLE001 - a missing or foreign store: say so and simulate anyway
        print(f"\n(store {args.store}: {exc}; using synthetic durations)")
        jobs, source = synthetic_atlas(np.random.default_rng(0))
    simulate(jobs, overhead, source)


if __name__ == "__main__":
    main()
