"""Stored RL runs vs training again: what `remembered_run` saves the RL probes, measured in one run.

Trains rl_sample_efficiency's PPO on CartPole to a `--long` cap once (kept in a temporary cache
folder), then times (a) a fresh training run to a `--short` cap and (b) the same cap served by
cutting the stored run, checks that both give the same final weights, and prints the speed-up.
The quick profiles ask for every smaller cap, and for the budget check's larger ones after a run
that stopped on its own, this way.

    python benchmarks/rl_run_memo.py [--long 30000] [--short 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from deeplimits.limits.rl import rl_sample_efficiency as se


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=int, default=30_000)
    parser.add_argument("--short", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    every = 2_000
    if args.short % every or args.short >= args.long:
        parser.error(f"--short must be a multiple of {every} and below --long")

    def train(cap: int) -> se.Curve:
        return se.train_sb3("ppo", se.Setting(se.ENV_ID, cap), args.seed, every, 0)

    with tempfile.TemporaryDirectory() as cache:
        os.environ["DEEPLIMITS_CACHE"] = cache
        key = ("benchmark", args.seed)
        se.remembered_run("bench", key, args.long, train)  # stored once
        start = time.perf_counter()
        fresh = train(args.short)
        trained = time.perf_counter() - start
        start = time.perf_counter()
        cut = se.remembered_run("bench", key, args.short, train)
        served = time.perf_counter() - start
    same = all(torch.equal(a, b) for a, b in zip(fresh.points[-1][1].frozen.state_dict().values(),
                                                  cut.points[-1][1].frozen.state_dict().values()))
    print(f"PPO CartPole to {args.short:,} steps: trained {trained:.2f} s, cut from the stored {args.long:,}-step "
          f"run {served:.3f} s -> {trained / served:.0f}x faster; same final weights: {same}")


if __name__ == "__main__":
    main()
