"""Flat activations: a piecewise-constant activation passes no gradient signal, and smoothing it does not
help where the flat pieces are wide compared with the spread of the data.

Claim: learning y = u(w*·x + b*) for a known step-like (piecewise-constant) u by gradient training fails
    once the model starts in a wide flat region: the true derivative of u is zero almost everywhere,
    and a smoothed (sigmoid) surrogate of u gives a signal only near its jumps, so training stalls;
    the forward-only update of Isotron / Kalai-Sastry (backward message through u replaced by the
    identity, i.e. a straight-through estimator) learns it.
Source: seed 001_89d092338235e9e1.txt; Shalev-Shwartz, Shamir & Shammah, "Failures of
    Gradient-Based Deep Learning", ICML 2017, Sec. 5 (5.2 non-flat approximation, 5.5 forward-only,
    App. A.7, Fig. 7).
Setup: the paper's scale (step_learn.py): d = 100, x ~ N(0, I_d)/d, w* ~ N(0, I_d), b* ~ N(0, 1), so the
    target's pre-activation r* = w*·x + b* has spread ≈ 0.1 around b*. u rounds down to the nearest of
    the known jumps Z = b* + ({-0.2, 0, 0.1, 0.15, 0.175} ∪ {h·j: j ≠ 0, |h·j| ≤ 10}): the paper's fine
    jumps where the data lies (so Var(y) > 0 at every h), and flat pieces of width h (the knob) around
    them. h = 1 is the paper's grid (it has width-1 pieces out to ±5, then width 5). The model
    r = w·x + b starts with w ~ N(0, 1/d) (truncated) and b = 0 (the paper's init), i.e. about |b*| ≈ 1
    (≈ 10 data spreads) away from the data, with a pre-activation spread of only ≈ 0.01: the easy end
    h = 0.01 has jumps as dense as that spread, so the surrogate's sigmoids overlap the model's
    outputs wherever it starts. Squared loss,
    fresh batches of 256 each step. The learner sees a training stream, the jumps Z and the test
    inputs; w*, b* and the test labels stay hidden.
Deep contender: gradient training through the paper's sigmoid surrogate of u (5.2):
    ũ(r) = z_0 + Σ_i Δ_i σ(5L (r - m_i)/Δ_i), Δ_i = z_{i+1} - z_i, m_i = z_{i+1} - Δ_i/(2L), L = 10, with
    (a) plain SGD and (b) Adam (the paper's: β2 0.99, ε 1e-5). Learning rates picked at the easy end
    (h = 0.01) on held-out fresh samples, see `tuning`. Plain SGD is handicapped by the paper's input
    scale besides the flatness: the loss's curvature along b is ≈ 10^4 times that along w (x ~ N(0, I)/d),
    so no single SGD step size both keeps b stable and moves w; Adam's per-weight scaling removes that.
    Plain autograd through u itself is not an arm: its gradient is exactly zero (reported as the
    diagnostic grad_norm_exact).
Remedy: the forward-only update (5.5): forward u, identity backward (straight-through), Adam with
    the paper's β2 and ε at lr 3e-3 (the paper: 1e-3 for 5,000 steps; quick has 2,000 steps, too few
    at 1e-3 to move b by |b*|; 1e-2 was tried first and its jitter left errors of 0.02-0.1 at h = 1,
    so the remedy's lr was set at the hard end: allowed for a helper, and said here).
Metric: relative squared test error E(u(ŵ·x + b̂) - y)² / Var(y) of the contender's predictions with
    the true u, scored by the probe, capped at 1 (= the best constant, the chance level); finite at
    every h because the data always straddles the fine jumps (lower is better; success ≤ 0.05). The
    cap keeps the t interval meaningful: uncapped, a model left at its init scores ≈ b*²/Var(y), up to
    ~100, and one such seed makes the interval straddle any threshold (rel_error_raw keeps the
    uncapped value). Diagnostics: the loss-gradient norm at initialisation through the arm's own u
    (grad_norm_init) and through the true u (grad_norm_exact, always 0).
Reference figure: Fig. 7 (fits vs r after 10,000 iterations, forward-only after 5,000; no numbers):
    the non-flat approximation is "much slower, and sometimes completely failing", forward-only is best.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deeplimits.ensemble import chunked, seeded, train
from deeplimits.probe import Answer, Contender, Context, Knob, Metric, Probe, Profile, Reference, Task, Threshold

SUCCESS = 0.05  # relative squared error that counts as learned (chosen from the claim, before measuring)
FINE = (-0.2, 0.0, 0.1, 0.15, 0.175)  # the paper's jumps next to b*, where the data lies
REACH = 10.0  # coarse jumps cover b* ± REACH (the model starts at b = 0, |b*| ~ N(0, 1))
L_SMOOTH = 10.0  # the paper's L: each sigmoid rises over about Δ/(5L) just left of its jump
ADAM = {"betas": (0.9, 0.99), "eps": 1e-5}  # the paper's Adam settings
SGD_LR = 0.1  # picked at h = 0.01 (see TUNING_SGD)
ADAM_LR = 1e-2  # picked at h = 0.01 (see TUNING_ADAM)
REMEDY_LR = 3e-3  # the paper: 1e-3 for 5,000 steps; 1e-2 was tried first and left 0.02-0.1 at h = 1 (Adam jitter)


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlatProfile(Profile):
    d: int = 100
    steps: int = 2_000
    sgd_lr: float = SGD_LR
    adam_lr: float = ADAM_LR
    remedy_lr: float = REMEDY_LR
    batch: int = 256
    n_test: int = 4_000


PROFILES = {
    "smoke": FlatProfile("smoke", knob=(0.01, 1.0), seeds=3, steps=150, batch=64, n_test=500, remedy_lr=3e-2),
    "quick": FlatProfile("quick", knob=(0.01, 1.0), seeds=4),  # 0.1 (borderline for Adam) is in paper: CPU budget
    "paper": FlatProfile("paper", knob=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0), seeds=10, steps=10_000, remedy_lr=1e-3),
}


# --- task -----------------------------------------------------------------------------------
def jump_offsets(h: float) -> np.ndarray:
    """The jumps relative to b*, sorted and de-duplicated (the same for every task at this h)."""
    coarse = h * np.arange(1, int(np.floor(REACH / h + 1e-9)) + 1)
    return np.unique(np.round(np.concatenate([FINE, coarse, -coarse]), 9))


def take(z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """z[idx] for one sorted grid z [J], or per member for stacked grids z [E, J] and idx [E, ...]."""
    if z.dim() == 1:
        return z[idx]
    return torch.gather(z, 1, idx.reshape(len(z), -1)).view(idx.shape)


def round_down(r: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """u(r): the largest jump z ≤ r (the lowest jump below the grid), for sorted z [J] (or [E, J]
    with r [E, ...])."""
    idx = torch.searchsorted(z, r.detach().reshape(*z.shape[:-1], -1).contiguous(), right=True) - 1
    return take(z, idx.clamp_min(0).view(r.shape))


class FlatStream:
    """Fresh labelled samples on demand (the learner's example oracle; w*, b* stay inside it)."""

    def __init__(self, d: int, w: tuple[float, ...], b: float, jumps: np.ndarray) -> None:
        self.d = d
        self._w, self._b = w, b  # private: the rule the learner must find
        self.jumps = jumps

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn((*shape, self.d), generator=generator) / self.d
        r = x @ torch.tensor(self._w) + self._b
        return x, round_down(r, torch.as_tensor(self.jumps, dtype=r.dtype))


@dataclass(frozen=True)
class FlatPublic:
    d: int
    jumps: np.ndarray  # the known u: sorted jumps Z (float32)
    stream: FlatStream
    stream_seed: int
    x_test: np.ndarray  # [n_test, d]


@dataclass(frozen=True)
class FlatHidden:
    w_star: np.ndarray
    b_star: float
    y_test: np.ndarray


def make_task(h: float, rng: np.random.Generator, profile: FlatProfile) -> Task:
    d = profile.d
    w_star, b_star = rng.normal(size=d).astype(np.float32), float(rng.normal())
    jumps = (b_star + jump_offsets(h)).astype(np.float32)
    stream = FlatStream(d, tuple(float(v) for v in w_star), b_star, jumps)
    x = (rng.normal(size=(profile.n_test, d)) / d).astype(np.float32)
    r = torch.as_tensor(x) @ torch.as_tensor(w_star) + b_star
    y = round_down(r, torch.as_tensor(jumps)).numpy()
    public = FlatPublic(d, jumps, stream, int(rng.integers(2**62)), x)
    return Task(public, FlatHidden(w_star, b_star, y))


def score(task: Task, output: np.ndarray, ctx: Context) -> dict[str, float]:
    """Relative squared error, capped at 1 (no better than the best constant) so that a few huge
    failures do not blow up the t interval, and uncapped for the record."""
    y = task.hidden.y_test.astype(np.float64)
    pred = np.asarray(output, dtype=np.float64).reshape(y.shape)
    raw = float(np.mean((pred - y) ** 2) / np.var(y))
    return {"rel_error": min(raw, 1.0), "rel_error_raw": raw}


# --- the model: a linear unit followed by u, differentiated two ways -----------------------------
class StepUnit(nn.Module):
    """r = w·x + b, then the surrogate ũ(r) (mode 'surrogate') or u forward / identity backward
    (mode 'forward_only'). The jumps are a buffer, so each ensemble member has its own."""

    def __init__(self, d: int, jumps: np.ndarray, mode: str) -> None:
        super().__init__()
        self.linear = nn.Linear(d, 1)
        nn.init.trunc_normal_(self.linear.weight, std=d ** -0.5, a=-2 * d ** -0.5, b=2 * d ** -0.5)
        nn.init.zeros_(self.linear.bias)
        self.mode = mode
        self.register_buffer("jumps", torch.as_tensor(jumps, dtype=torch.float32))

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)[..., 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.pre(x)
        if self.mode == "forward_only":
            return r + (round_down(r, self.jumps) - r).detach()
        return surrogate_near(r, self.jumps)


def surrogate(r: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The paper's non-flat approximation of u (Sec. 5.2, step_learn.py), summed over every jump:
    z_0 + Σ_i Δ_i σ(5L (r - m_i)/Δ_i). Used as the reference for `surrogate_near`."""
    gap = z[1:] - z[:-1]
    mid = z[1:] - gap / (2 * L_SMOOTH)
    return z[0] + (gap * torch.sigmoid(5 * L_SMOOTH * (r[..., None] - mid) / gap)).sum(-1)


def surrogate_near(r: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The same function at a cost independent of the number of jumps: u(r) plus the sigmoids'
    departures from their steps for the four jumps around r (every other sigmoid is saturated:
    it sits at least 47 of its own widths away, so it differs from its step by < e^-47)."""
    below = torch.searchsorted(z, r.detach().reshape(*z.shape[:-1], -1).contiguous(), right=True).view(r.shape) - 1
    jumps = (below[..., None] + torch.arange(-1, 3)).clamp(1, z.shape[-1] - 1)  # z_{j-1} .. z_{j+2}
    upper, lower = take(z, jumps), take(z, jumps - 1)
    gap = upper - lower
    sig = torch.sigmoid(5 * L_SMOOTH * (r[..., None] - upper + gap / (2 * L_SMOOTH)) / gap)
    step = (r[..., None] >= upper).to(r.dtype)
    distinct = torch.ones_like(gap)
    distinct[..., 1:] = (jumps[..., 1:] != jumps[..., :-1]).to(r.dtype)  # clamping may repeat a jump
    return round_down(r, z) + (distinct * gap * (sig - step)).sum(-1)


class StackedStepUnit(nn.Module):
    """The members' StepUnits stacked into one module (forward on [E, B, d]) for ensemble.train.
    Hand-stacked rather than deeplimits.ensemble.Ensemble: vmap over searchsorted and gathers costs
    several times more per step, and both take batched inputs natively."""

    def __init__(self, members: list[StepUnit]) -> None:
        super().__init__()
        self.mode = members[0].mode
        self.w = nn.Parameter(torch.stack([m.linear.weight.detach()[0] for m in members]))  # [E, d]
        self.b = nn.Parameter(torch.stack([m.linear.bias.detach() for m in members]))  # [E, 1]
        self.register_buffer("jumps", torch.stack([m.jumps for m in members]))  # [E, J]

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.b[:, :, None], x, self.w[:, :, None])[..., 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.pre(x)
        if self.mode == "forward_only":
            return r + (round_down(r, self.jumps) - r).detach()
        return surrogate_near(r, self.jumps)


def sq_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((out - y) ** 2).mean(-1)


def grad_norms(model: StepUnit, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Loss-gradient norms at these weights through the model's own u and through the true u."""
    params = list(model.parameters())
    out = {}
    for name, pred in (("grad_norm_init", model(x)), ("grad_norm_exact", round_down(model.pre(x), model.jumps))):
        loss = ((pred - y) ** 2).mean()
        grads = torch.autograd.grad(loss, params, allow_unused=True) if loss.requires_grad else []
        out[name] = float(sum((g**2).sum() for g in grads if g is not None) ** 0.5)
    return out


def fit(publics: list[FlatPublic], ctxs: list[Context], mode: str, optimizer: str) -> list[Answer]:
    """Batched over seeds: each member has its own target, init and input stream."""
    prof: FlatProfile = ctxs[0].profile
    d, device = publics[0].d, ctxs[0].device
    members = [seeded(lambda: StepUnit(d, p.jumps, mode), c.rng_seed) for p, c in zip(publics, ctxs)]

    def maker(public: FlatPublic):
        gen = torch.Generator().manual_seed(public.stream_seed)
        return lambda n: public.stream.sample((n, prof.batch), gen)

    makers = [maker(p) for p in publics]
    diagnostics = []
    for m, p in zip(members, publics):
        x, y = p.stream.sample((prof.batch,), torch.Generator().manual_seed(p.stream_seed + 1))
        diagnostics.append(grad_norms(m, x, y))
    ens = StackedStepUnit(members).to(device)
    if mode == "forward_only":
        lr, options = prof.remedy_lr, ADAM
    else:
        lr, options = (prof.sgd_lr, {}) if optimizer == "sgd" else (prof.adam_lr, ADAM)
    batches = chunked([lambda n, mk=mk: tuple(t.to(device) for t in mk(n)) for mk in makers])
    train(ens, batches, sq_loss, prof.steps, lr, optimizer, **options)
    with torch.no_grad():
        x_test = torch.as_tensor(np.stack([p.x_test for p in publics]), device=device)
        pred = round_down(ens.pre(x_test), ens.jumps).cpu().numpy()
    return [Answer(o, diag) for o, diag in zip(pred, diagnostics)]


def surrogate_sgd(publics: list[FlatPublic], ctxs: list[Context]) -> list[Answer]:
    return fit(publics, ctxs, "surrogate", "sgd")


def surrogate_adam(publics: list[FlatPublic], ctxs: list[Context]) -> list[Answer]:
    return fit(publics, ctxs, "surrogate", "adam")


def forward_only(publics: list[FlatPublic], ctxs: list[Context]) -> list[Answer]:
    return fit(publics, ctxs, "forward_only", "adam")


# --- the probe ------------------------------------------------------------------------------
TUNING_SGD = ("lr picked at h = 0.01 (easy end) from {0.1, 1, 10} by relative error on 4,096 held-out fresh "
              "samples after the quick budget (2,000 steps, 3 seeds): 0.1 gives 0.93-0.95 (b reaches b*, w barely "
              "moves), 1 diverges on 2 of 3 seeds (errors ≈ 1e4), 10 was not finished (larger than a diverging "
              f"step): {SGD_LR:g}")
TUNING_ADAM = ("lr picked at h = 0.01 (easy end) from {1e-3, 1e-2, 3e-2} by relative error on 4,096 held-out "
               "fresh samples after the quick budget (2,000 steps, 3 seeds): 0.11-15 / 0.0008-0.0016 / 0.0019-0.0043: "
               f"{ADAM_LR:g}; β2 0.99, ε 1e-5 as the paper")

PROBE = Probe(
    id="flat_activations",
    family="gradients",
    claim="Piecewise-flat activations give gradient training no signal: the true gradient is zero and a "
          "smoothed surrogate stalls where the flat pieces are wide, while the forward-only (Isotron) update "
          "learns.",
    sources=("seeds/001_89d092338235e9e1.txt",
             "Shalev-Shwartz, Shamir & Shammah 2017, Failures of Gradient-Based Deep Learning, Sec. 5"),
    version=2,
    knob=Knob("h", "width of the flat pieces around the data (data spread ≈ 0.1, model's at init ≈ 0.01; the "
              "paper: 1)",
              validate=lambda v: isinstance(v, int | float) and 0.005 <= v <= 5, log_scale=True),
    metrics=(
        Metric("rel_error", "relative squared test error E(û - y)² / Var(y) with the true u, capped at 1 (the "
               "best constant)", direction="lower", chance=1.0, lo=0.0, hi=1.0, log_scale=True),
        Metric("rel_error_raw", "the same error uncapped (a model left at its init scores ≈ b*²/Var(y) ≫ 1)",
               direction="lower", lo=0.0, hi=np.inf, log_scale=True),
        Metric("grad_norm_init", "norm of the loss gradient at initialisation through the arm's own u (one batch)",
               lo=0.0, hi=np.inf, diagnostic=True),
        Metric("grad_norm_exact", "norm of the loss gradient at initialisation through the true u (one batch)",
               lo=0.0, hi=np.inf, diagnostic=True),
    ),
    rule=Threshold("rel_error", success=SUCCESS),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("surrogate_sgd", "deep", surrogate_sgd, "gradient through the paper's sigmoid surrogate, SGD",
                  batched=True, tuning=TUNING_SGD),
        Contender("surrogate_adam", "deep", surrogate_adam,
                  "gradient through the paper's sigmoid surrogate, Adam (β2 0.99, ε 1e-5)", batched=True,
                  tuning=TUNING_ADAM),
        Contender("forward_only", "remedy", forward_only,
                  "forward u, identity backward (Isotron / straight-through), Adam", batched=True),
    ),
    references=(
        Reference("Shalev-Shwartz et al. 2017, Sec. 5.2 and 5.5, Fig. 7",
                  "d = 100, ≈ 52 jumps (h = 1 here), Adam lr 1e-3 (surrogate 1e-2), batch 256, 10k steps "
                  "(forward-only 5k)",
                  "surrogate much slower, sometimes completely failing; forward-only best (plots, no numbers)",
                  "verbatim (text)"),
    ),
    budget=lambda p: (f"linear unit + staircase, d = {p.d}, SGD lr {p.sgd_lr:g} / Adam lr {p.adam_lr:g}, "
                      f"{p.steps:,} steps × batch {p.batch}"),
    budget_fields=("steps",),
    fit=None,  # fresh samples: train = test, and failing to fit is the claim
)
