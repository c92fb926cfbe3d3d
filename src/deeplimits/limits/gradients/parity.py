"""Parity: gradient training cannot learn a random parity of many bits.

Claim: a random parity f(x) = prod_{i in S} x_i over x in {±1}^d is out of reach of gradient
    training once d is a few tens, because the gradient barely depends on which S is the target:
    its variance across targets is at most G²/2^d.
Source: seed 001_89d092338235e9e1.txt; Shalev-Shwartz, Shamir & Shammah, "Failures of
    Gradient-Based Deep Learning", ICML 2017, Sec. 2 (Thm 1, Fig. 1).
Setup: S holds each bit with probability 1/2 (|S| ≈ d/2; sparse parities are easy and not the
    claim); inputs uniform on {±1}^d, fresh samples every step as in the paper; test on 2,000 fresh
    samples.
Deep contender: one hidden ReLU layer of width 10d, linear output, hinge loss, plain SGD
    (the paper: lr 0.01, batch 128, 50k steps; quick scales steps down and lr up).
Alternative: Gaussian elimination over GF(2) on d + 20 samples (a parity is a linear map over GF(2)).
Metric: test accuracy (chance 0.5, success 0.95). Diagnostic: the variance of the population
    loss gradient across random targets S at the network's initialisation (exact, enumerating all
    2^d inputs, up to d = 16), with Thm 1's bound G²/2^d for every d.
Reference figure: Fig. 1 — d = 5 and 10 climb to ≈1.0, d = 30 stays at ≈0.5 after 50k SGD steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deeplimits.ensemble import Ensemble, chunked, seeded, train
from deeplimits.probe import Contender, Context, Knob, Metric, Probe, Profile, Reference, Threshold


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParityProfile(Profile):
    steps: int = 10_000
    lr: float = 0.1
    batch: int = 128
    width_factor: int = 10  # hidden width = width_factor * d (the paper: 10)
    n_test: int = 2_000
    extra_samples: int = 20  # GF(2) elimination sees d + extra_samples samples
    grad_targets: int = 48  # random targets S for the gradient-variance diagnostic
    grad_max_bits: int = 16  # exact gradient variance (all 2^d inputs) up to this d


PROFILES = {
    "smoke": ParityProfile("smoke", knob=(4, 12), seeds=2, steps=300, grad_targets=8),
    "quick": ParityProfile("quick", knob=(5, 10, 15, 20, 25, 30), seeds=5, steps=10_000),
    "paper": ParityProfile("paper", knob=(5, 10, 15, 20, 25, 30, 40, 50), seeds=10, steps=50_000, lr=0.01),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParityTask:
    d: int
    mask: np.ndarray  # bool [d]: the hidden subset S
    stream_seed: int  # the training input stream
    x_test: np.ndarray
    y_test: np.ndarray

    def label(self, x: np.ndarray) -> np.ndarray:
        return np.prod(np.where(self.mask, x, 1), axis=-1)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(n, self.d))
        return x, self.label(x)


def make_task(d: int, rng: np.random.Generator, profile: ParityProfile) -> ParityTask:
    mask = rng.random(d) < 0.5
    if not mask.any():
        mask[rng.integers(d)] = True
    stream_seed = int(rng.integers(2**62))
    x = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(profile.n_test, d))
    return ParityTask(d, mask, stream_seed, x, np.prod(np.where(mask, x, 1), axis=-1))


# --- deep contender: a one-hidden-layer ReLU net trained by SGD on the hinge loss ---------------
def make_mlp(d: int, width: int) -> nn.Module:
    net = nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, 1), nn.Flatten(0))
    for layer in (net[0], net[2]):  # the paper's init: std 1/sqrt(fan_in), zero bias
        nn.init.normal_(layer.weight, std=layer.in_features ** -0.5)
        nn.init.zeros_(layer.bias)
    return net


def hinge(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean hinge loss per member: out, y [E, B] -> [E]."""
    return torch.relu(1 - y * out).mean(-1)


def gradient_variance(model: nn.Module, d: int, rng: np.random.Generator, profile: ParityProfile
                      ) -> dict[str, float]:
    """Thm 1's quantities at these weights: the bound G²/2^d, and (where all 2^d inputs can be
    enumerated) the exact across-target variance of the population hinge-loss gradient.

    Beyond grad_max_bits only the bound is reported: a sampled estimate is swamped by sampling
    noise (~G²/n) long before it reaches 2^-d, so it would measure the noise, not the claim."""
    params = list(model.parameters())
    out: dict[str, float] = {}
    if d <= profile.grad_max_bits:
        targets = rng.random((profile.grad_targets, d)) < 0.5  # uniform over all 2^d parities
        x = 1.0 - 2.0 * ((np.arange(2**d)[:, None] >> np.arange(d)) & 1).astype(np.float32)
        ys = torch.as_tensor(np.prod(np.where(targets[:, None, :], x[None], 1), -1), dtype=torch.float32)
        f = model(torch.as_tensor(x))
        dloss = -ys * (ys * f.detach() < 1).float() / len(x)  # d hinge / d f for each target [M, 2^d]
        g = torch.autograd.grad(f, params, grad_outputs=dloss, is_grads_batched=True)
        g = torch.cat([t.reshape(len(targets), -1) for t in g], 1)  # [M, P]
        out["grad_var"] = float(((g - g.mean(0)) ** 2).sum(1).mean())
    # G² = E_x ||df/dw||², from per-sample gradients on 256 random inputs
    x_small = torch.as_tensor(rng.choice(np.array([-1.0, 1.0], np.float32), size=(256, d)))
    weights = {k: v.detach() for k, v in model.named_parameters()}

    def f_one(w: dict, xi: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(model, w, (xi[None],))[0]

    per = torch.func.vmap(torch.func.grad(f_one), in_dims=(None, 0))(weights, x_small)
    g2 = float(sum((v.reshape(len(x_small), -1) ** 2).sum(1) for v in per.values()).mean())
    out["grad_var_bound"] = g2 / 2**d
    return out


def mlp_sgd(tasks: list[ParityTask], ctxs: list[Context]) -> list[dict[str, float]]:
    """Batched over seeds: every member has its own target S, init and input stream."""
    prof: ParityProfile = ctxs[0].profile
    d, device = tasks[0].d, ctxs[0].device
    width = prof.width_factor * d
    members = [seeded(lambda: make_mlp(d, width), c.rng_seed) for c in ctxs]
    diagnostics = [gradient_variance(m, d, c.rng(), prof) for m, c in zip(members, ctxs)]
    ens = Ensemble(members).to(device)
    masks = torch.as_tensor(np.stack([t.mask for t in tasks]), device=device)

    def maker(task: ParityTask, mask: torch.Tensor):
        gen = torch.Generator().manual_seed(task.stream_seed)

        def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            x = torch.randint(0, 2, (n, prof.batch, d), generator=gen).float().mul_(2).sub_(1).to(device)
            return x, torch.where(mask, x, 1.0).prod(-1)

        return make

    batches = chunked([maker(t, m) for t, m in zip(tasks, masks)])
    train(ens, batches, hinge, prof.steps, prof.lr, "sgd")
    x_test = torch.as_tensor(np.stack([t.x_test for t in tasks]), device=device)
    y_test = torch.as_tensor(np.stack([t.y_test for t in tasks]), device=device)
    with torch.no_grad():
        acc = (torch.sign(ens(x_test)) == y_test).float().mean(-1).cpu().numpy()
    return [{"accuracy": float(a), **diag} for a, diag in zip(acc, diagnostics)]


# --- alternative: Gaussian elimination over GF(2) ----------------------------------------------
def solve_gf2(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """One solution of a s = b over GF(2), or None if inconsistent.
    Hand-written: 20 lines of elimination; `galois` would pull numba for this alone."""
    a, b = a.astype(np.uint8) % 2, b.astype(np.uint8) % 2
    rows, cols = a.shape
    aug = np.concatenate([a, b[:, None]], 1)
    pivots, r = [], 0
    for c in range(cols):
        hits = np.nonzero(aug[r:, c])[0]
        if len(hits) == 0:
            continue
        p = r + hits[0]
        aug[[r, p]] = aug[[p, r]]
        others = np.nonzero(aug[:, c])[0]
        aug[others[others != r]] ^= aug[r]
        pivots.append(c)
        r += 1
        if r == rows:
            break
    if aug[r:, -1].any():
        return None
    s = np.zeros(cols, dtype=np.uint8)
    for i, c in enumerate(pivots):
        s[c] = aug[i, -1]  # free variables stay 0
    return s


def gf2_elimination(task: ParityTask, ctx: Context) -> dict[str, float]:
    n = task.d + ctx.profile.extra_samples
    x, y = task.sample(n, ctx.rng())
    s = solve_gf2(x < 0, y < 0)  # x_i = (-1)^{bit_i}, y = (-1)^{<bits, S>}
    if s is None:
        return {"accuracy": 0.5, "samples": float(n)}
    pred = np.prod(np.where(s.astype(bool), task.x_test, 1), -1)
    return {"accuracy": float((pred == task.y_test).mean()), "samples": float(n)}


# --- the probe ------------------------------------------------------------------------------
PROBE = Probe(
    id="parity",
    family="gradients",
    claim="Gradient training cannot learn a random parity of many bits: the gradient's variance "
          "across targets shrinks like 2^-d, so it carries no signal about the target.",
    sources=("seeds/001_89d092338235e9e1.txt",
             "Shalev-Shwartz, Shamir & Shammah 2017, Failures of Gradient-Based Deep Learning, Sec. 2"),
    version=1,
    knob=Knob("d", "input bits (the hidden subset holds each bit with probability 1/2)", unit="bits",
              validate=lambda v: isinstance(v, int) and 2 <= v <= 200),
    metrics=(
        Metric("accuracy", "test accuracy on 2,000 fresh inputs", chance=0.5, lo=0.0, hi=1.0),
        Metric("grad_var", "exact variance across random targets S of the population loss gradient at init "
               "(d ≤ grad_max_bits)", direction="lower", lo=0.0, log_scale=True),
        Metric("grad_var_bound", "Thm 1 bound G²/2^d at the same init", direction="lower", lo=0.0,
               log_scale=True),
        Metric("samples", "training samples the method used", direction="lower", lo=0.0),
    ),
    rule=Threshold("accuracy", success=0.95),
    profiles=PROFILES,
    make_task=make_task,
    contenders=(
        Contender("mlp_sgd", "deep", mlp_sgd, "1 hidden ReLU layer (width 10d), hinge loss, SGD",
                  batched=True),
        Contender("gf2_elimination", "alternative", gf2_elimination,
                  "Gaussian elimination over GF(2) on d + 20 samples"),
    ),
    references=(
        Reference("Shalev-Shwartz et al. 2017, Fig. 1",
                  "width 10d ReLU, hinge, SGD lr 0.01, batch 128, 50k iterations; 500 test samples",
                  "d = 5, 10 reach ≈1.0; d = 30 stays at ≈0.5", "read off a plot (coarse)",
                  points=((5, 1.0), (10, 1.0), (30, 0.5)), metric="accuracy"),
        Reference("deeplimits references/gradients.md (numpy, exact over 2^d inputs, 300 targets)",
                  "width 10d, hinge, one random init",
                  "Var = 0.96, 0.25, 1.7e-3, 9.7e-4 at d = 4, 8, 12, 14", "computed",
                  points=((4, 0.96), (8, 0.25), (12, 1.7e-3), (14, 9.7e-4)), metric="grad_var"),
    ),
    budget=lambda p: f"MLP 1×{p.width_factor}d ReLU, hinge, SGD lr {p.lr}, {p.steps:,} steps × batch {p.batch}",
)
