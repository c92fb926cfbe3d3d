"""Flat activations: a piecewise-constant activation passes no gradient signal, and smoothing it only helps
where the flat pieces are narrow.

Claim: learning y = u(w*·x + b*) for a known step-like (piecewise-constant) u by gradient training fails:
    the true derivative of u is zero almost everywhere, and a smoothed (sigmoid) surrogate of u gives a
    signal only near the jumps, so training slows down or stalls as the flat pieces widen; the
    forward-only update of Isotron / Kalai-Sastry (backward message through u replaced by the identity,
    i.e. a straight-through estimator) learns it.
Source: seed 001_89d092338235e9e1.txt; Shalev-Shwartz, Shamir & Shammah, "Failures of
    Gradient-Based Deep Learning", ICML 2017, Sec. 5 (5.2 non-flat approximation, 5.5 forward-only,
    App. A.7, Fig. 7).
Setup: x ~ N(0, I_d / d), w* ~ N(0, I_d), b* ~ N(0, 1), so the pre-activation r = w*·x + b* has unit
    spread around b*. u is a staircase u(r) = h·floor(r/h - φ) + h·φ with step width h (the knob, in
    units of the pre-activation's spread; about 6/h steps cover the data) and a random phase φ per task
    (so no jump sits at a special place such as 0). Model: û(w·x + b) with the known u, w drawn with
    std 1/sqrt(d) and b = 0 (the paper's init); squared loss, Adam (torch defaults; the paper used β2 0.99,
    ε 1e-5, which the shared training helper does not expose), fresh batches each step.
Deep contender: gradient training through the sigmoid surrogate ũ(r) = Σ_i h·σ(c (r - z_i)) (+ const)
    over the jumps z_i, steepness c = 10 per unit of spread fixed across the knob (the paper's 5.2) --
    the verdict's deep contender, since smoothing is what a practitioner would do. Second deep
    contender: plain autograd through u itself (its gradient is exactly zero).
Alternative: the forward-only update (straight-through: forward u, backward identity), as the paper's
    5.5.
Metric: relative squared test error E(u(w·x + b) - y)² / Var(y), every contender predicting with the
    true u (lower is better; 1 ≈ the best constant; success ≤ 0.05). Diagnostic: the norm of the
    loss gradient at initialisation (exactly 0 through the true u).
Reference figure: Fig. 7 (fits vs r after 10,000 iterations, forward-only after 5,000; no numbers):
    the non-flat approximation is "much slower, and sometimes completely failing", forward-only is best.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deeplimits.ensemble import Ensemble, chunked, seeded, train
from deeplimits.probe import Contender, Context, Knob, Metric, Probe, Profile, Reference, Threshold

SUCCESS = 0.05  # relative squared error that counts as learned (chosen from the claim, before measuring)
STEEPNESS = 10.0  # sigmoid steepness c of the surrogate, per unit of the pre-activation's spread


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlatProfile(Profile):
    d: int = 100
    steps: int = 2_000
    lr: float = 1e-2
    batch: int = 256
    n_test: int = 4_000


PROFILES = {
    "smoke": FlatProfile("smoke", knob=(0.25, 2.0), seeds=2, d=20, steps=300, n_test=1_000),
    "quick": FlatProfile("quick", knob=(0.25, 1.0, 2.0, 4.0), seeds=5),
    "paper": FlatProfile("paper", knob=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0), seeds=10, steps=10_000, lr=1e-3),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepTask:
    h: float  # step width
    phase: float  # jumps at h·(i + phase)
    w_star: np.ndarray
    b_star: float
    stream_seed: int
    x_test: np.ndarray
    y_test: np.ndarray


def staircase(r: np.ndarray | torch.Tensor, h: float, phase: float) -> np.ndarray | torch.Tensor:
    lib = torch if isinstance(r, torch.Tensor) else np
    return h * lib.floor(r / h - phase) + h * phase


def make_task(h: float, rng: np.random.Generator, profile: FlatProfile) -> StepTask:
    d = profile.d
    w_star, b_star, phase = rng.normal(size=d), float(rng.normal()), float(rng.random())
    x = rng.normal(size=(profile.n_test, d)) / np.sqrt(d)
    y = staircase(x @ w_star + b_star, h, phase)
    return StepTask(h, phase, w_star.astype(np.float32), b_star, int(rng.integers(2**62)),
                    x.astype(np.float32), y.astype(np.float32))


# --- the model: a linear unit followed by the known u, with three ways to differentiate u ----------
class StepUnit(nn.Module):
    """r = w·x + b, then u(r) (mode 'exact': autograd through floor, zero gradient), the sigmoid
    surrogate (mode 'sigmoid') or u forward / identity backward (mode 'forward_only')."""

    def __init__(self, d: int, h: float, mode: str) -> None:
        super().__init__()
        self.linear = nn.Linear(d, 1)
        nn.init.trunc_normal_(self.linear.weight, std=d ** -0.5, a=-2 * d ** -0.5, b=2 * d ** -0.5)
        nn.init.zeros_(self.linear.bias)
        self.h, self.mode = h, mode
        self.register_buffer("phase", torch.zeros(()))  # per member: set after construction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.linear(x)[..., 0]
        u = staircase(r, self.h, self.phase)
        if self.mode == "exact":
            return u
        if self.mode == "forward_only":
            return r + (u - r).detach()
        return self.surrogate(r)

    def surrogate(self, r: torch.Tensor) -> torch.Tensor:
        """u(r) + Σ h·(σ(c(r - z)) - 1[r ≥ z]) over the jumps z near r: equals Σ_i h·σ(c(r - z_i)) + const
        over all jumps up to e^-12 (jumps further than 12/c contribute nothing at float precision)."""
        j = torch.floor(r / self.h - self.phase).detach()  # index of the jump just below r
        k = int(np.ceil(12.0 / (STEEPNESS * self.h))) + 1
        m = torch.arange(-k + 1, k + 1, dtype=r.dtype)
        z = self.h * (j[..., None] + m + self.phase)
        below = (m <= 0).to(r.dtype)
        near = torch.sigmoid(STEEPNESS * (r[..., None] - z)) - below
        return staircase(r, self.h, self.phase) + self.h * near.sum(-1)


def sq_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((out - y) ** 2).mean(-1)


def fit(tasks: list[StepTask], ctxs: list[Context], mode: str) -> list[dict[str, float]]:
    """Batched over seeds: each member has its own target, init and input stream."""
    prof: FlatProfile = ctxs[0].profile
    h, d, device = tasks[0].h, prof.d, ctxs[0].device
    members = []
    for t, c in zip(tasks, ctxs):
        m = seeded(lambda: StepUnit(d, h, mode), c.rng_seed)
        m.phase.fill_(t.phase)
        members.append(m)

    def maker(task: StepTask):
        gen = torch.Generator().manual_seed(task.stream_seed)
        w, b = torch.as_tensor(task.w_star), task.b_star

        def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            x = torch.randn((n, prof.batch, d), generator=gen) / d**0.5
            return x.to(device), staircase(x @ w + b, h, task.phase).to(device)

        return make

    grad_norms = [init_grad_norm(m, maker(t)(1)) for m, t in zip(members, tasks)]
    ens = Ensemble(members).to(device)
    train(ens, chunked([maker(t) for t in tasks]), sq_loss, prof.steps, prof.lr, "adam")
    out = []
    for i, (t, g) in enumerate(zip(tasks, grad_norms)):
        net = ens.member(i)
        with torch.no_grad():
            r = net.linear(torch.as_tensor(t.x_test))[..., 0].double().numpy()
        err = np.mean((staircase(r, h, t.phase) - t.y_test) ** 2) / np.var(t.y_test)
        out.append({"rel_error": float(err), "grad_norm_init": g})
    return out


def init_grad_norm(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Norm of the squared-loss gradient at the initial weights on one training batch."""
    x, y = batch
    loss = ((model(x[0]) - y[0]) ** 2).mean()
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    return float(sum((g**2).sum() for g in grads if g is not None) ** 0.5)


def sigmoid_surrogate(tasks: list[StepTask], ctxs: list[Context]) -> list[dict[str, float]]:
    return fit(tasks, ctxs, "sigmoid")


def exact_gradient(tasks: list[StepTask], ctxs: list[Context]) -> list[dict[str, float]]:
    return fit(tasks, ctxs, "exact")


def forward_only(tasks: list[StepTask], ctxs: list[Context]) -> list[dict[str, float]]:
    return fit(tasks, ctxs, "forward_only")


# --- the probe ------------------------------------------------------------------------------
PROBE = Probe(
    id="flat_activations",
    family="gradients",
    claim="Piecewise-flat activations give gradient training no signal: the true gradient is zero and a "
          "smoothed surrogate stalls as the flat pieces widen, while the forward-only (Isotron) update learns.",
    sources=("seeds/001_89d092338235e9e1.txt",
             "Shalev-Shwartz, Shamir & Shammah 2017, Failures of Gradient-Based Deep Learning, Sec. 5"),
    version=1,
    knob=Knob("h", "width of each flat step, in units of the pre-activation's spread (≈ 6/h steps)",
              validate=lambda v: isinstance(v, (int, float)) and 0.05 <= v <= 20, log_scale=True),
    metrics=(
        Metric("rel_error", "relative squared test error E(û - y)² / Var(y), predicting with the true u",
               direction="lower", chance=1.0, lo=0.0, hi=np.inf, log_scale=True),
        Metric("grad_norm_init", "norm of the loss gradient at initialisation (one batch)",
               direction="higher", lo=0.0, hi=np.inf),
    ),
    rule=Threshold("rel_error", success=SUCCESS),
    profiles=PROFILES,
    make_task=make_task,
    contenders=(
        Contender("sigmoid_surrogate", "deep", sigmoid_surrogate,
                  f"gradient through a sigmoid-smoothed staircase (steepness {STEEPNESS:g}), Adam", batched=True),
        Contender("exact_gradient", "deep", exact_gradient, "autograd through the true staircase, Adam",
                  batched=True),
        Contender("forward_only", "alternative", forward_only,
                  "forward u, identity backward (Isotron / straight-through), Adam", batched=True),
    ),
    references=(
        Reference("Shalev-Shwartz et al. 2017, Sec. 5.2 and 5.5, Fig. 7",
                  "d = 100, 55 steps, Adam lr 1e-3 (surrogate 1e-2), batch 256, 10k steps (forward-only 5k)",
                  "surrogate much slower, sometimes completely failing; forward-only best (plots, no numbers)",
                  "verbatim (text)"),
    ),
    budget=lambda p: f"linear unit + staircase, d = {p.d}, Adam lr {p.lr:g}, {p.steps:,} steps × batch {p.batch}",
)
