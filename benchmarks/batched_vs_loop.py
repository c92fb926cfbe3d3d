"""Batched (torch.func ensemble) vs per-seed loop training of the parity MLP, measured in one run.

For d = 10, 20, 30 and 8 / 32 seeds, trains the parity probe's network (width 10d, hinge, SGD,
batch 128) both ways for the same number of steps and prints the speed-up and the achieved
GFLOP/s as a fraction of this machine's fp32 matmul peak (measured here, first). The compiled
column uses `train(..., compile=True)` and excludes compile time (seconds per shape).

    python benchmarks/batched_vs_loop.py [--steps 300] [--threads N] [--no-compile]
"""

from __future__ import annotations

import argparse
import time

import torch

from deeplimits.ensemble import Ensemble, make_optimizer, seeded, train
from deeplimits.limits.gradients.parity import hinge, make_mlp

BATCH = 128
WARMUP = 10


def matmul_peak(seconds: float = 2.0, n: int = 2048) -> float:
    """fp32 GFLOP/s of a large square matmul: the practical peak of this machine."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def flops_per_step(d: int, seeds: int) -> float:
    """Matmul FLOPs of one step: layer 1 forward + weight grad (inputs need no grad), layer 2 forward + 2 grads."""
    width = 10 * d
    return seeds * BATCH * (4 * d * width + 6 * width)


def data(d: int, seeds: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (steps, seeds, BATCH, d), generator=gen).float() * 2 - 1
    mask = torch.rand(seeds, 1, d, generator=gen) < 0.5
    return x, torch.where(mask, x, 1.0).prod(-1)


def loop(d: int, seeds: int, steps: int) -> float:
    models = [seeded(lambda: make_mlp(d, 10 * d), s) for s in range(seeds)]
    opts = [make_optimizer(list(m.parameters()), "sgd", 0.1) for m in models]
    x, y = data(d, seeds, steps)
    start = time.perf_counter()
    for t in range(steps):
        for i, (m, opt) in enumerate(zip(models, opts)):
            loss = hinge(m(x[t, i])[None], y[t, i][None]).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return (time.perf_counter() - start) / steps


def batched(d: int, seeds: int, steps: int, compile: bool = False) -> float:
    """The library's own training loop (deeplimits.ensemble.train), timed after a warm-up."""
    ens = Ensemble([seeded(lambda: make_mlp(d, 10 * d), s) for s in range(seeds)])
    x, y = data(d, seeds, steps + WARMUP)
    times: list[float] = []

    def tick(step: int) -> None:
        if step + 1 == WARMUP:  # compiling (and first-call allocation) is not steady-state speed
            times.append(time.perf_counter())

    train(ens, lambda t: (x[t], y[t]), hinge, steps + WARMUP, 0.1, "sgd", on_step=tick, compile=compile)
    return (time.perf_counter() - times[0]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the compiled variant")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = matmul_peak()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32 matmul peak {peak:.1f} GFLOP/s")
    print("ms/step: per-seed loop | vmap ensemble | vmap ensemble with compile=True (after compiling)")
    print(f"{'d':>3} {'seeds':>5} {'loop':>7} {'batched':>8} {'compiled':>9} {'speed-up':>9} {'compiled':>9} "
          f"{'% peak':>7} {'compiled':>9}")
    for d in (10, 20, 30):
        for seeds in (8, 32):
            t_loop, t_batch = loop(d, seeds, args.steps), batched(d, seeds, args.steps)
            t_comp = batched(d, seeds, args.steps, compile=True) if args.compile else float("nan")
            peak_frac = [100 * flops_per_step(d, seeds) / t / 1e9 / peak for t in (t_batch, t_comp)]
            print(f"{d:>3} {seeds:>5} {t_loop * 1e3:>7.2f} {t_batch * 1e3:>8.2f} {t_comp * 1e3:>9.2f} "
                  f"{t_loop / t_batch:>8.1f}x {t_loop / t_comp:>8.1f}x {peak_frac[0]:>6.0f}% {peak_frac[1]:>8.0f}%")


if __name__ == "__main__":
    main()
