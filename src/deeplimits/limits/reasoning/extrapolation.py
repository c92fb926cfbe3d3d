"""Extrapolation: networks fit simple maps inside the training range and miss them outside it.

Claim: an MLP trained on x in [-R, R] learns the identity, y = 2x, a + b and a × b only where it saw
    data; outside the training range its error grows (tanh saturates, ReLU goes linear along rays, so
    it misses any non-linear map), while a learner whose hypothesis space holds the formula
    extrapolates exactly.
Source: seeds 002_c08bf31bab69b760.txt ("local generalization") and 004_4ead15eadcdcceb2.txt ("can
    interpolate ... cannot extrapolate"); Trask, Hill, Reed, Rae, Dyer & Blunsom, "Neural Arithmetic
    Logic Units", NeurIPS 2018 (Fig. 1, Table 1); Xu et al., "How Neural Networks Extrapolate", ICLR 2021.
Setup: inputs (a, b) uniform on [-R, R]² (R = 5 as in Trask Fig. 1), noiseless targets for each map in
    the profile's `maps` (identity: a; double: 2a; sum: a + b; product: a × b); n_train samples per map,
    20 % of them held out for early stopping. Test inputs at knob m: for m = 1 fresh points inside
    [-R, R]² (the positive control), for m > 1 points uniform on [-mR, mR]² with max(|a|, |b|) > R, i.e.
    all outside the training square, up to m times its half-width. Maps are POOLED: the verdict metric
    is the mean over the maps of the per-map relative error; each map's own error is scored as well
    (rel_error_<map>) so the report shows which maps drive the verdict (`--set maps=identity` judges
    one map alone).
Deep contender: MLPs, 2 hidden layers of width 64, (a) ReLU and (b) tanh, inputs and targets
    standardised by the training statistics, MSE, Adam, batch 64, up to `epochs` epochs with early
    stopping on the held-out 20 % (patience 40); one net per map, every seed and map trained at once
    (deeplimits.ensemble).
Remedy: NALU (Trask et al. 2018): two stacked NALU layers (2 -> 2 -> 1) on the raw inputs, same loss,
    optimiser, epochs and early stopping. Known gap: its multiplicative path works on |x| (log-space),
    so it loses the sign of a × b for negative inputs.
Alternative: (a) symbolic regression: exhaustive search over expressions built from a, b with + and ×
    (up to 3 leaves), each fitted with one least-squares scale, the lowest training error kept (ties:
    the shortest); (b) least squares on the degree-2 polynomial basis (sklearn PolynomialFeatures +
    LinearRegression).
Metric: relative error mean|ŷ - y| / mean|y| on the test points, lower is better; chance 1.0 (the
    error of predicting the training mean, ≈ 0 for these symmetric maps), success ≤ 0.1. Diagnostic:
    the same relative error on the training data (fit check: ≤ 0.1).
Reference figure: Trask et al. Fig. 1: identity, train [-5, 5], test [-20, 20] (m = 4): mean absolute
    error ≈ 0 inside, ≈ 13–16 at |x| = 20 for saturating units (tanh, sigmoid), ≈ 1 for ReLU.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures
from torch import nn

from deeplimits.ensemble import Ensemble, predict, seeded, train_epochs
from deeplimits.probe import Answer, Contender, Context, Fit, Knob, Metric, Probe, Profile, Reference, Task, Threshold

MAPS = {
    "identity": lambda a, b: a,
    "double": lambda a, b: 2 * a,
    "sum": lambda a, b: a + b,
    "product": lambda a, b: a * b,
}
MAX_ERROR = 1e6  # a diverged prediction is scored as this error (the metric must stay finite)


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtrapolationProfile(Profile):
    radius: float = 5.0  # R: training inputs on [-R, R]²
    maps: tuple[str, ...] = ("identity", "double", "sum", "product")
    n_train: int = 500  # per map, 20 % held out for early stopping
    n_test: int = 1000
    width: int = 64
    epochs: int = 200
    patience: int = 20
    batch: int = 100
    mlp_lr: float = 1e-2
    nalu_lr: float = 1e-2


PROFILES = {
    "smoke": ExtrapolationProfile("smoke", knob=(1, 4), seeds=3, maps=("identity", "product"), n_train=200,
                                  n_test=200, width=16, epochs=8, patience=8),
    "quick": ExtrapolationProfile("quick", knob=(1, 2, 4, 8), seeds=5),
    "paper": ExtrapolationProfile("paper", knob=(1, 1.5, 2, 4, 8, 16), seeds=10, n_train=10_000, batch=64,
                                  epochs=1000, patience=100),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtrapolationPublic:
    maps: tuple[str, ...]
    x_train: np.ndarray  # [maps, n, 2]
    y_train: np.ndarray  # [maps, n]
    x_test: np.ndarray  # [n_test, 2], the same inputs for every map


def outside(rng: np.random.Generator, n: int, radius: float, m: float) -> np.ndarray:
    """n points uniform on [-mR, mR]² with max(|a|, |b|) > R (rejection sampling); m = 1: inside."""
    if m <= 1:
        return rng.uniform(-radius, radius, (n, 2))
    out = np.empty((0, 2))
    while len(out) < n:
        x = rng.uniform(-m * radius, m * radius, (4 * n, 2))
        out = np.concatenate([out, x[np.abs(x).max(1) > radius]])
    return out[:n]


def make_task(m: float, rng: np.random.Generator, profile: ExtrapolationProfile) -> Task:
    x_train = rng.uniform(-profile.radius, profile.radius, (len(profile.maps), profile.n_train, 2))
    y_train = np.stack([MAPS[f](x[:, 0], x[:, 1]) for f, x in zip(profile.maps, x_train)])
    x_test = outside(rng, profile.n_test, profile.radius, m)
    y_test = np.stack([MAPS[f](x_test[:, 0], x_test[:, 1]) for f in profile.maps])
    public = ExtrapolationPublic(profile.maps, x_train.astype(np.float32), y_train.astype(np.float32),
                                 x_test.astype(np.float32))
    return Task(public, y_test)


def relative_error(pred: np.ndarray, y: np.ndarray) -> float:
    pred = np.nan_to_num(np.asarray(pred, float), nan=MAX_ERROR, posinf=MAX_ERROR, neginf=-MAX_ERROR)
    return float(min(np.abs(pred - y).mean() / max(np.abs(y).mean(), 1e-12), MAX_ERROR))


def score(task: Task, output: np.ndarray, ctx: Context) -> dict[str, float]:
    """output: predictions [maps, n_test]; the verdict metric pools the maps by their mean."""
    errors = {f"rel_error_{f}": relative_error(p, y) for f, p, y in zip(task.public.maps, output, task.hidden)}
    return {"rel_error": float(np.mean(list(errors.values()))), **errors}


# --- deep contenders: MLPs (ReLU, tanh), one per map, all seeds at once ---------------------------
def make_mlp(width: int, act: type[nn.Module]) -> nn.Module:
    return nn.Sequential(nn.Linear(2, width), act(), nn.Linear(width, width), act(), nn.Linear(width, 1))


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((out.squeeze(-1) - y) ** 2).mean(-1)


def neg_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -mse(out, y)


def fit_members(publics: list[ExtrapolationPublic], ctxs: list[Context], factory, lr: float, standardise: bool
                ) -> list[Answer]:
    """One member per (seed, map): fit on 80 %, early-stop on 20 %, predict the test inputs."""
    prof: ExtrapolationProfile = ctxs[0].profile
    maps = publics[0].maps
    x = torch.as_tensor(np.concatenate([p.x_train for p in publics]))  # [E, n, 2], E = seeds × maps
    y = torch.as_tensor(np.concatenate([p.y_train for p in publics]))
    x_test = torch.as_tensor(np.stack([p.x_test for p in publics for _ in maps]))
    if standardise:  # the learner's own statistics (training data only)
        mx, sx = x.mean(1, keepdim=True), x.std(1, keepdim=True)
        my, sy = y.mean(1, keepdim=True), y.std(1, keepdim=True)
    else:
        mx, sx = torch.zeros(1), torch.ones(1)
        my, sy = torch.zeros(1), torch.ones(1)
    xs, ys, xt = (x - mx) / sx, (y - my) / sy, (x_test - mx) / sx
    n_fit = int(0.8 * x.shape[1])
    members = [seeded(factory, c.rng_seed + j) for c in ctxs for j in range(len(maps))]
    ens = Ensemble(members)
    train_epochs(ens, xs[:, :n_fit], ys[:, :n_fit], mse, prof.epochs, prof.batch, lr, "adam",
                 x_val=xs[:, n_fit:], y_val=ys[:, n_fit:], score=neg_mse, patience=prof.patience)
    fit = (predict(ens, xs).squeeze(-1) * sy + my).numpy()
    pred = (predict(ens, xt).squeeze(-1) * sy + my).numpy()
    k = len(maps)
    answers = []
    for i in range(len(publics)):
        train_err = np.mean([relative_error(f, t) for f, t in zip(fit[i * k:(i + 1) * k], publics[i].y_train)])
        answers.append(Answer(pred[i * k:(i + 1) * k], {"train_rel_error": float(train_err)}))
    return answers


def mlp_relu(publics: list[ExtrapolationPublic], ctxs: list[Context]) -> list[Answer]:
    width = ctxs[0].profile.width
    return fit_members(publics, ctxs, lambda: make_mlp(width, nn.ReLU), ctxs[0].profile.mlp_lr, True)


def mlp_tanh(publics: list[ExtrapolationPublic], ctxs: list[Context]) -> list[Answer]:
    width = ctxs[0].profile.width
    return fit_members(publics, ctxs, lambda: make_mlp(width, nn.Tanh), ctxs[0].profile.mlp_lr, True)


# --- remedy: NALU (Trask et al. 2018) ------------------------------------------------------------
class NALU(nn.Module):
    """Neural arithmetic logic unit. Hand-written: no maintained library implements it (~15 lines).
    NAC: a = x (tanh(Ŵ) ⊙ σ(M̂))ᵀ; multiplicative path m = exp(log(|x| + ε) Wᵀ); gate g = σ(x Gᵀ)."""

    def __init__(self, inputs: int, outputs: int, eps: float = 1e-7) -> None:
        super().__init__()
        self.w_hat = nn.Parameter(torch.empty(outputs, inputs))
        self.m_hat = nn.Parameter(torch.empty(outputs, inputs))
        self.gate = nn.Parameter(torch.empty(outputs, inputs))
        for p in (self.w_hat, self.m_hat, self.gate):
            nn.init.xavier_uniform_(p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.tanh(self.w_hat) * torch.sigmoid(self.m_hat)
        add = x @ w.T
        mul = torch.exp(torch.log(x.abs() + self.eps) @ w.T)
        g = torch.sigmoid(x @ self.gate.T)
        return g * add + (1 - g) * mul


def nalu(publics: list[ExtrapolationPublic], ctxs: list[Context]) -> list[Answer]:
    factory = lambda: nn.Sequential(NALU(2, 2), NALU(2, 1))
    return fit_members(publics, ctxs, factory, ctxs[0].profile.nalu_lr, False)


# --- alternatives: symbolic regression over {+, ×}; least squares on the degree-2 basis ------------
def expressions(leaves: int = 3) -> dict[str, callable]:
    """Every expression over a, b with + and × of up to `leaves` leaves, as name -> f(a, b)."""
    by_size: dict[int, dict[str, callable]] = {1: {"a": lambda a, b: a, "b": lambda a, b: b}}
    for size in range(2, leaves + 1):
        found: dict[str, callable] = {}
        for left in range(1, size):
            for (ln, lf), (rn, rf) in itertools.product(by_size[left].items(), by_size[size - left].items()):
                found[f"({ln} + {rn})"] = lambda a, b, lf=lf, rf=rf: lf(a, b) + rf(a, b)
                found[f"({ln} × {rn})"] = lambda a, b, lf=lf, rf=rf: lf(a, b) * rf(a, b)
        by_size[size] = found
    return {name: f for size in sorted(by_size) for name, f in by_size[size].items()}


def symbolic_regression(public: ExtrapolationPublic, ctx: Context) -> Answer:
    """Per map: the expression (times one least-squares scale) with the lowest training error."""
    exprs = expressions(3)
    preds, train_errs = [], []
    for x, y in zip(public.x_train, public.y_train):
        best = (np.inf, None, 0.0)
        for f in exprs.values():  # ordered by size: a strict improvement is needed to pick a longer one
            z = f(x[:, 0].astype(float), x[:, 1].astype(float))
            c = float(z @ y / max(z @ z, 1e-12))
            err = float(np.mean((c * z - y) ** 2))
            if err < best[0] * (1 - 1e-9) - 1e-12:
                best = (err, f, c)
        _, f, c = best
        preds.append(c * f(public.x_test[:, 0].astype(float), public.x_test[:, 1].astype(float)))
        train_errs.append(relative_error(c * f(x[:, 0].astype(float), x[:, 1].astype(float)), y))
    return Answer(np.stack(preds), {"train_rel_error": float(np.mean(train_errs))})


def poly_regression(public: ExtrapolationPublic, ctx: Context) -> Answer:
    preds, train_errs = [], []
    for x, y in zip(public.x_train, public.y_train):
        model = make_pipeline(PolynomialFeatures(2), LinearRegression()).fit(x.astype(float), y)
        preds.append(model.predict(public.x_test.astype(float)))
        train_errs.append(relative_error(model.predict(x.astype(float)), y))
    return Answer(np.stack(preds), {"train_rel_error": float(np.mean(train_errs))})


# --- the probe ------------------------------------------------------------------------------
TUNING = ("picked at m = 1 (inside the training range), quick budget, all four maps, on fresh in-range points of 3 "
          "tuning seeds (100-102, not the verdict's): ReLU width {32, 64} × Adam lr {1e-3, 3e-3, 1e-2}, relative "
          "error 0.019 / 0.010 / 0.008 and 0.008 / 0.006 / 0.005; tanh at width 64, lr {1e-3, 3e-3, 1e-2}: "
          "0.018 / 0.007 / 0.005. Pick width 64, lr 1e-2 for both")

PROBE = Probe(
    id="extrapolation",
    family="reasoning",
    claim="Networks trained on inputs in [-R, R] do not extrapolate simple maps (identity, 2x, a + b, a × b) "
          "beyond that range, where a learner whose hypothesis space holds the formula does.",
    sources=("seeds/002_c08bf31bab69b760.txt", "seeds/004_4ead15eadcdcceb2.txt",
             "Trask et al. 2018, Neural Arithmetic Logic Units, Fig. 1 and Table 1",
             "Xu et al. 2021, How Neural Networks Extrapolate"),
    version=1,
    knob=Knob("m", "test inputs up to m × R, outside the training square [-R, R]² (m = 1: inside it)",
              unit="× R", validate=lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= 1),
    metrics=(
        Metric("rel_error", "mean over maps of mean|ŷ - y| / mean|y| on the test points (capped at 1e6)",
               direction="lower", chance=1.0, lo=0.0, log_scale=True),
        *(Metric(f"rel_error_{f}", f"relative test error on the {f} map", direction="lower", lo=0.0,
                 hi=MAX_ERROR, log_scale=True) for f in MAPS),
        Metric("train_rel_error", "relative error on the training data (mean over maps)", direction="lower",
               lo=0.0, hi=MAX_ERROR, diagnostic=True),
    ),
    rule=Threshold("rel_error", success=0.1),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("mlp_relu", "deep", mlp_relu, "MLP 2 hidden ReLU layers, standardised in/out, Adam, early stopping",
                  batched=True, tuning=TUNING),
        Contender("mlp_tanh", "deep", mlp_tanh, "MLP 2 hidden tanh layers, standardised in/out, Adam, early stopping",
                  batched=True, tuning=TUNING),
        Contender("nalu", "remedy", nalu, "two stacked NALU layers (Trask et al. 2018), Adam, early stopping",
                  batched=True),
        Contender("symbolic_regression", "alternative", symbolic_regression,
                  "exhaustive search over expressions in a, b with +, × (≤ 3 leaves) and one fitted scale"),
        Contender("poly_regression", "alternative", poly_regression,
                  "least squares on the degree-2 polynomial basis (sklearn)"),
    ),
    references=(
        Reference("Trask et al. 2018, Fig. 1",
                  "identity; MLP 3 hidden layers of 8 units, train [-5, 5], test [-20, 20], 15 nonlinearities",
                  "mean absolute error ≈ 0 inside; at |x| = 20: tanh / sigmoid / ReLU6 ≈ 13–16, ReLU ≈ 1, "
                  "ELU ≈ 0.5", "read off a plot (references/perception.md §5)"),
        Reference("Trask et al. 2018, Table 1 (static arithmetic, extrapolation)",
                  "x in R^100, a, b sums of two fixed subsets; error scaled 0 = perfect, 100 = random init",
                  "ReLU6 MLP: a+b 42.6, a×b 10.1; NAC / linear: 0.0 for a±b; NALU ≈ 0 on all six ops",
                  "recalled (references/perception.md §5); independent re-runs agree qualitatively"),
    ),
    budget=lambda p: (f"MLP 2×{p.width}, Adam lr {p.mlp_lr:g} (NALU {p.nalu_lr:g}), ≤ {p.epochs} epochs × batch "
                      f"{p.batch}, early stopping (patience {p.patience}), {p.n_train} samples per map, "
                      f"maps {'+'.join(p.maps)} pooled"),
    budget_fields=("epochs", "patience"),
    fit=Fit("train_rel_error", 0.1),
)
