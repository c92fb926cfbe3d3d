"""How long `build_report` takes on an existing store: 30 synthetic limits x 5 knob values x 5 seeds.

    python benchmarks/report_speed.py [--limits 30] [--knobs 5] [--seeds 5] [--out DIR]

Writes the trials straight into a store (no training), then times the rebuild: judging every limit
from the store (`load_results`: bootstrap CIs and verdict rules) and rendering the page (figures +
template). The target is under 5 s in all.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deeplimits.probe import Contender, Control, Gap, Knob, Metric, Probe, Profile, Ratio, Reference, Threshold
from deeplimits.store import Store, TrialRecord, TrialSpec

FAMILIES = ("gradients", "perception", "reasoning", "training", "cost", "rl", "continual", "trust")


@dataclass(frozen=True)
class SynthProfile(Profile):
    steps: int = 100


def _never(*args: object) -> None:  # the report never calls contenders
    raise RuntimeError("synthetic")


def synthetic_probe(i: int, knobs: tuple, seeds: int) -> Probe:
    """Threshold, ratio and gap rules in turn; every fifth limit has a categorical (string) knob."""
    kind = ("threshold", "ratio", "gap")[i % 3]
    knob_values = tuple(f"level-{k}" for k in knobs) if i % 5 == 4 else knobs
    metrics = [Metric("accuracy", "test accuracy", chance=0.5, lo=0, hi=1),
               Metric("cost", "samples to reach the target", direction="lower", lo=0, unit="samples", log_scale=True),
               Metric("diag", "a diagnostic", log_scale=True), Metric("diag_bound", "its bound", log_scale=True)]
    rule = {"threshold": Threshold("accuracy", 0.9), "ratio": Ratio("cost", 10.0), "gap": Gap("accuracy", 0.1)}[kind]
    control = Control() if kind == "threshold" else Control(metric="accuracy", success=0.9)
    profiles = {n: SynthProfile(n, knob_values, seeds) for n in ("smoke", "quick", "paper")}
    return Probe(
        id=f"synthetic_{i:02d}", family=FAMILIES[i % len(FAMILIES)],
        claim=f"Synthetic limit {i}: deep training fails as the knob grows ({kind} rule).",
        sources=("benchmarks/report_speed.py",), version=1,
        knob=Knob("k", "synthetic difficulty", unit="units"), metrics=tuple(metrics), rule=rule,
        profiles=profiles, make_task=lambda k, rng, p: None,
        contenders=(Contender("deep_net", "deep", _never), Contender("classical", "alternative", _never),
                    Contender("remedy_net", "remedy", _never)),
        references=(Reference("Someone et al. 2020, Fig. 2", "their setup", "0.95 then 0.5", "read off a plot",
                              points=((knob_values[0], 0.95), (knob_values[-1], 0.5)), metric="accuracy"),),
        control=control, budget=lambda p: f"{p.steps} steps")


def fill(store: Store, probe: Probe, seeds: int, rng: np.random.Generator) -> None:
    prof = probe.profile("quick")
    n = len(prof.knob)
    for c in probe.contenders:
        for j, knob in enumerate(prof.knob):
            for seed in range(seeds):
                spec = TrialSpec(probe.id, probe.version, c.name, c.role, knob, seed, "quick", prof.params())
                hard = j / max(n - 1, 1)
                acc = 0.99 - 0.5 * hard if c.role == "deep" else 0.98
                cost = 100 * (30 ** hard if c.role == "deep" else 2 ** hard)
                metrics = {"accuracy": float(np.clip(acc + rng.normal(0, 0.02), 0, 1)),
                           "cost": float(cost * rng.lognormal(0, 0.1)),
                           "diag": float(2.0 ** (-4 * j) * rng.lognormal(0, 0.3)), "diag_bound": float(2.0 ** (-3 * j))}
                failed = c.role == "remedy" and j == n - 1 and seed == 0
                record = TrialRecord.from_spec(spec, None if failed else metrics,
                                               "RuntimeError: synthetic failure" if failed else None,
                                               float(rng.uniform(0.5, 2)), "cpu", "bench")
                store.put(record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", type=int, default=30)
    parser.add_argument("--knobs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8))
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="deeplimits-report-bench-"))

    knobs = tuple(range(1, args.knobs + 1))
    probes = [synthetic_probe(i, knobs, args.seeds) for i in range(args.limits)]
    rng = np.random.default_rng(0)
    with Store(out) as store:
        store.start_run("bench", {"deeplimits": "bench", "profile": "quick", "device": "cpu"})
        for probe in probes:
            fill(store, probe, args.seeds, rng)
        store.end_run("bench")
        n = store.count()

    import deeplimits.report as report  # imported before timing: a CLI pays this once per process
    from deeplimits.report import figures, render

    cpu: dict[str, float] = {}

    def timed(**kw: object) -> float:
        t, c = time.perf_counter(), time.process_time()
        report.build_report(out, probes=probes, **kw)
        cpu[repr(sorted(kw.items()))] = time.process_time() - c  # ~ the wall time on an idle machine
        return time.perf_counter() - t

    t = time.perf_counter()
    results = report.load_results(out, probes)
    judge = time.perf_counter() - t
    n_panels = sum(len(render.figures(r)) for r in results)
    cold = timed(cache=False)
    parallel = timed(cache=False, workers=args.workers) if args.workers > 1 else float("nan")
    shutil.rmtree(out / report.CACHE_DIR, ignore_errors=True)
    timed()  # a run ends by building the report: this fills the figure cache
    warm = timed()
    index = out / "report" / "index.html"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.limits} limits x {args.knobs} knob values x {args.seeds} seeds: {n} trials, {n_panels} figures "
          f"({figures.FORMAT}); {os.cpu_count()} cores, load average {load:.1f}")
    print(f"judge all limits from the store:           {judge:6.2f} s")
    print(f"build_report, every figure drawn (1 proc):  {cold:6.2f} s   (CPU time "
          f"{cpu[repr([('cache', False)])]:.2f} s: the wall time on an idle core)")
    if args.workers > 1:
        print(f"build_report, every figure drawn ({args.workers} procs): {parallel:6.2f} s")
    print(f"build_report rebuild (figure cache warm):   {warm:6.2f} s   <- `deeplimits report` after a run")
    print(f"page: {index} ({index.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
