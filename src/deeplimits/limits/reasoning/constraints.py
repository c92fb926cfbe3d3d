"""Constraints: a network that predicts an LP's solution is almost never exactly feasible and optimal.

Claim: an MLP trained to map a linear program's parameters to its optimal solution (with or without a
    constraint-violation penalty) returns points that break a constraint or fall short of the optimum
    once the constraints bind, where an LP solver (HiGHS) is feasible and optimal on every instance.
Source: seeds/003_f388986fd4a90ec9.txt (item 4: deep learning and constraints vs linear programming);
    Donti, Rolnick & Kolter, "DC3: A learning method for optimization with hard constraints", ICLR 2021.
Setup: a family of packing LPs per task: maximise cᵀx s.t. Ax ≤ b, 0 ≤ x ≤ 1, with A ~ U[0, 1]^{m×d} and
    c ~ U[0.5, 1.5]^d fixed per task (public) and the right-hand side varying per instance:
    b_i = (1 − t·u_i)·Σ_j A_ij, u ~ U[0, 1]^m. x = 0 is always feasible and the box keeps it bounded, so
    every instance is feasible and bounded by construction. Knob t (tightness): at t = 0 the optimum is
    x = 1 (no constraint binds: the positive control); as t grows more constraints bind. n_train
    instances with their HiGHS optima are the training data (20 % held out for early stopping); n_test
    fresh instances are the test set.
Deep contender: (a) MLP (2 hidden layers, ReLU, sigmoid output so the box holds by construction) from
    the normalised right-hand side b / A·1 to x, trained with MSE on the solver's optima; (b) the same
    MLP trained with MSE + λ·mean Σ_i relu(Aᵢx − bᵢ) (the soft-penalty "NN" baseline of DC3). Adam,
    up to `epochs` epochs, early stopping on held-out MSE; every seed trained at once.
Alternative: HiGHS (dual simplex through highspy, the solver SciPy's linprog(method="highs") wraps;
    one model whose row bounds change per instance, so it warm-starts).
Remedy: the MSE MLP's prediction projected onto the feasible set in the L1 norm (an LP solved by
    HiGHS): feasible by construction, optimal only when the prediction was close. A projection needs
    a solver call per instance, as DC3's correction needs gradient steps.
Metric: solved rate: share of test instances whose point is feasible (every violation ≤ 1e-6) and
    within 1 % of the optimal objective (chance 0, success 0.9). Also feasible rate, the largest
    violation, the mean relative optimality gap (negative where an infeasible point beats the optimum),
    solve time per instance; diagnostic: the solved rate on the training instances.
Reference figure: DC3 (Donti et al. 2021, authors' results_summary, QP 100 vars/50 eq/50 ineq): the
    penalty NN's max equality violation 0.349 and objective −12.57 vs optimum −15.05; DC3 −13.46 with
    violations ≤ 2e-4; the solver (OSQP, qpth) exact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from deeplimits.ensemble import Ensemble, predict, seeded, train_epochs
from deeplimits.probe import Answer, Contender, Context, Knob, Metric, Probe, Profile, Reference, Task, Threshold

TOL = 1e-6  # a constraint counts as violated beyond this
GAP = 0.01  # relative objective gap that still counts as optimal


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConstraintsProfile(Profile):
    n_vars: int = 10
    n_cons: int = 8
    n_train: int = 800
    n_test: int = 200
    width: int = 128
    epochs: int = 150
    patience: int = 20
    batch: int = 64
    lr: float = 3e-3
    penalty: float = 1.0  # λ of the soft-penalty arm
    timing: bool = True  # report solve_ms (wall time: not repeatable run to run, so off in smoke)


PROFILES = {
    "smoke": ConstraintsProfile("smoke", knob=(0.0, 0.5), seeds=3, n_vars=5, n_cons=4, n_train=120, n_test=40,
                                width=16, epochs=3, patience=2, timing=False),
    "quick": ConstraintsProfile("quick", knob=(0.0, 0.1, 0.3, 0.6), seeds=5),
    "paper": ConstraintsProfile("paper", knob=(0.0, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8), seeds=10, n_vars=100,
                                n_cons=50, n_train=10_000, n_test=1000, width=256, epochs=500, patience=50),
}


# --- the solver -----------------------------------------------------------------------------------
class PackingLP:
    """maximise cᵀx s.t. Ax ≤ b, 0 ≤ x ≤ 1 with HiGHS; one model, the right-hand side changes per solve."""

    def __init__(self, A: np.ndarray, c: np.ndarray) -> None:
        import highspy

        A, c = np.asarray(A, float), np.asarray(c, float)
        if A.ndim != 2 or A.size == 0 or c.shape != (A.shape[1],):
            raise ValueError(f"an LP needs A [m, d] and c [d]; got A {A.shape}, c {c.shape}")
        if not (np.isfinite(A).all() and np.isfinite(c).all()):
            raise ValueError("an LP's A and c must be finite")
        self.A, self.c, self._hs = A, c, highspy
        m, d = A.shape
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("threads", 1)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = d, m
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = -c, np.zeros(d), np.ones(d)
        lp.row_lower_, lp.row_upper_ = np.full(m, -highspy.kHighsInf), A.sum(1)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.arange(0, m * d + 1, d, dtype=np.int32)
        lp.a_matrix_.index_ = np.tile(np.arange(d, dtype=np.int32), m)
        lp.a_matrix_.value_ = A.ravel()
        self.h.passModel(lp)
        self.rows = np.arange(m, dtype=np.int32)

    def solve(self, b: np.ndarray) -> np.ndarray:
        """The optimal x for right-hand side b; a clear error where the LP is infeasible."""
        b = np.asarray(b, float)
        if b.shape != (self.A.shape[0],) or not np.isfinite(b).all():
            raise ValueError(f"b must be {self.A.shape[0]} finite numbers, got shape {b.shape}")
        self.h.changeRowsBounds(len(self.rows), self.rows, np.full(len(b), -self._hs.kHighsInf), b)
        self.h.run()
        status = self.h.getModelStatus()
        if status == self._hs.HighsModelStatus.kInfeasible:
            raise ValueError(f"infeasible LP: no x in [0, 1]^d satisfies Ax <= b (min b_i = {b.min():.3g})")
        if status != self._hs.HighsModelStatus.kOptimal:
            raise ValueError(f"HiGHS did not solve the LP: {self.h.modelStatusToString(status)}")
        return np.clip(np.array(self.h.getSolution().col_value), 0.0, 1.0)


def project_l1(A: np.ndarray, b: np.ndarray, x_hat: np.ndarray) -> np.ndarray:
    """The feasible point nearest x_hat in the L1 norm: min Σ s s.t. −s ≤ x − x_hat ≤ s, Ax ≤ b, 0 ≤ x ≤ 1."""
    from scipy.optimize import linprog

    m, d = A.shape
    eye = np.eye(d)
    a_ub = np.block([[A, np.zeros((m, d))], [eye, -eye], [-eye, -eye]])
    b_ub = np.concatenate([b, x_hat, -x_hat])
    cost = np.concatenate([np.zeros(d), np.ones(d)])
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=[(0, 1)] * d + [(0, None)] * d, method="highs")
    if res.status != 0:
        raise ValueError(f"projection failed: {res.message}")
    return res.x[:d]


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LPPublic:
    A: np.ndarray  # [m, d]
    c: np.ndarray  # [d]
    b_train: np.ndarray  # [n_train, m]
    x_train: np.ndarray  # [n_train, d] HiGHS optima of the training instances
    b_test: np.ndarray  # [n_test, m]


@lru_cache(maxsize=64)
def _instances(t: float, key: int, profile: ConstraintsProfile) -> Task:
    # cached: the runner builds a trial's task once to run it and once to score it
    rng = np.random.default_rng(key)
    m, d = profile.n_cons, profile.n_vars
    A, c = rng.uniform(0, 1, (m, d)), rng.uniform(0.5, 1.5, d)
    u = rng.uniform(0, 1, (profile.n_train + profile.n_test, m))
    b = (1 - t * u) * A.sum(1)
    lp = PackingLP(A, c)
    x = np.stack([lp.solve(row) for row in b])
    n = profile.n_train
    return Task(LPPublic(A, c, b[:n], x[:n], b[n:]), x[n:])


def make_task(t: float, rng: np.random.Generator, profile: ConstraintsProfile) -> Task:
    return _instances(float(t), int(rng.integers(2**62)), profile)


def violations(A: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Largest violation per instance of Ax ≤ b and 0 ≤ x ≤ 1: x [N, d], b [N, m] -> [N]."""
    rows = x @ A.T - b
    return np.maximum.reduce([rows.max(1), (-x).max(1), (x - 1).max(1), np.zeros(len(x))])


def solved(A: np.ndarray, b: np.ndarray, c: np.ndarray, x: np.ndarray, x_opt: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per instance: feasible (≤ TOL), relative optimality gap, and solved (feasible and gap ≤ GAP)."""
    viol = violations(A, b, x)
    best = x_opt @ c
    gap = (best - x @ c) / np.maximum(np.abs(best), 1e-12)
    feasible = viol <= TOL
    return feasible, gap, feasible & (gap <= GAP)


def score(task: Task, output: np.ndarray, ctx: Context) -> dict[str, float]:
    """output: (x [n_test, d], seconds per instance)."""
    pub: LPPublic = task.public
    x, seconds = output
    x = np.asarray(x, float)
    if x.shape != task.hidden.shape or not np.isfinite(x).all():
        raise ValueError(f"a contender must return finite x of shape {task.hidden.shape}, got {x.shape}")
    feasible, gap, ok = solved(pub.A, pub.b_test, pub.c, x, task.hidden)
    viol = violations(pub.A, pub.b_test, x)
    out = {"solved_rate": float(ok.mean()), "feasible_rate": float(feasible.mean()),
           "max_violation": float(viol.max()), "optimality_gap": float(gap.mean())}
    if ctx.profile.timing:
        out["solve_ms"] = 1e3 * float(seconds)
    return out


# --- deep contenders ------------------------------------------------------------------------------
class BoxMLP(nn.Module):
    """Normalised right-hand side -> x in (0, 1)^d (a sigmoid keeps the box; only Ax ≤ b can break)."""

    def __init__(self, m: int, d: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(m, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, d))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z))


def train_mlp(publics: list[LPPublic], ctxs: list[Context], penalty: float
              ) -> tuple[list[np.ndarray], list[float], list[np.ndarray]]:
    """Train one MLP per seed (all at once); returns test predictions, seconds per test instance and
    training-set predictions."""
    prof: ConstraintsProfile = ctxs[0].profile
    torch.set_num_threads(1)
    m, d = publics[0].A.shape
    A = torch.as_tensor(np.stack([p.A for p in publics]), dtype=torch.float32)  # [E, m, d]
    scale = A.sum(-1)  # [E, m]: inputs are b / A·1 (1 at t = 0)
    b = torch.as_tensor(np.stack([p.b_train for p in publics]), dtype=torch.float32)
    x = torch.as_tensor(np.stack([p.x_train for p in publics]), dtype=torch.float32)
    z = b / scale[:, None]
    y = torch.cat([x, b], -1)  # targets carry b for the penalty

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x_opt, rhs = target[..., :d], target[..., d:d + m]
        mse = ((out - x_opt) ** 2).mean((1, 2))
        excess = torch.relu(torch.einsum("ebd,emd->ebm", out, A) - rhs).sum(-1).mean(-1)
        return mse + penalty * excess

    def neg_mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -((out - target[..., :d]) ** 2).mean((1, 2))

    n_fit = int(0.8 * z.shape[1])
    ens = Ensemble([seeded(lambda: BoxMLP(m, d, prof.width), c.rng_seed) for c in ctxs])
    train_epochs(ens, z[:, :n_fit], y[:, :n_fit], loss, prof.epochs, prof.batch, prof.lr, "adam",
                 x_val=z[:, n_fit:], y_val=y[:, n_fit:], score=neg_mse, patience=prof.patience)
    z_test = torch.as_tensor(np.stack([p.b_test for p in publics]), dtype=torch.float32) / scale[:, None]
    start = time.perf_counter()
    x_test = predict(ens, z_test).double().numpy()
    seconds = (time.perf_counter() - start) / z_test.shape[1]
    x_fit = predict(ens, z).double().numpy()
    return list(x_test), [seconds] * len(publics), list(x_fit)


def _answers(publics: list[LPPublic], x_test: list, seconds: list, x_fit: list) -> list[Answer]:
    out = []
    for p, xt, s, xf in zip(publics, x_test, seconds, x_fit):
        fit = float(solved(p.A, p.b_train, p.c, xf, p.x_train)[2].mean())
        out.append(Answer((xt, s), {"train_solved_rate": fit}))
    return out


def mlp_mse(publics: list[LPPublic], ctxs: list[Context]) -> list[Answer]:
    return _answers(publics, *train_mlp(publics, ctxs, penalty=0.0))


def mlp_penalty(publics: list[LPPublic], ctxs: list[Context]) -> list[Answer]:
    return _answers(publics, *train_mlp(publics, ctxs, penalty=ctxs[0].profile.penalty))


def mlp_projected(publics: list[LPPublic], ctxs: list[Context]) -> list[Answer]:
    # the MSE arm's points sit nearer the optimal vertex than the penalty arm's (pushed inside), so they
    # project to better objectives
    x_test, seconds, x_fit = train_mlp(publics, ctxs, penalty=0.0)
    projected, times = [], []
    for p, xt, s in zip(publics, x_test, seconds):
        start = time.perf_counter()
        projected.append(np.stack([project_l1(p.A, b, x) for b, x in zip(p.b_test, xt)]))
        times.append(s + (time.perf_counter() - start) / len(xt))
    return _answers(publics, projected, times, x_fit)


# --- alternative ----------------------------------------------------------------------------------
def highs(public: LPPublic, ctx: Context) -> Answer:
    lp = PackingLP(public.A, public.c)
    start = time.perf_counter()
    x = np.stack([lp.solve(b) for b in public.b_test])
    return Answer((x, (time.perf_counter() - start) / len(x)), {"train_solved_rate": 1.0})


# --- the probe ------------------------------------------------------------------------------
TUNING_MSE = ("picked at t = 0.1 (the easy end where constraints bind; at t = 0 every target is x = 1) on the "
              "held-out 20 % of the training instances, 3 seeds, quick budget: width {64, 128} × Adam lr "
              "{1e-3, 3e-3}; held-out MSE 1.04e-2 / 9.7e-3 / 1.03e-2 / 7.9e-3: pick width 128, lr 3e-3")
TUNING_PEN = ("same split, width 128, lr 3e-3, λ {1, 10, 100}: held-out solved rate 0.000 for all three "
              "(feasible 0.91 / 0.90 / 0.99), tie broken by held-out MSE (1.10e-2 / 1.15e-2 / 1.18e-2): pick λ 1")

PROBE = Probe(
    id="constraints",
    family="reasoning",
    claim="A network trained to predict a linear program's optimal solution returns points that violate a "
          "constraint or miss the optimum once constraints bind, where an LP solver is feasible and optimal.",
    sources=("seeds/003_f388986fd4a90ec9.txt",
             "Donti, Rolnick & Kolter 2021, DC3: A learning method for optimization with hard constraints"),
    version=1,
    knob=Knob("tightness", "t in b = (1 − t·u)·A·1: 0 = no constraint binds, larger = more bind",
              validate=lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1),
    metrics=(
        Metric("solved_rate", f"share of test instances feasible (violation ≤ {TOL:g}) and within {GAP:.0%} of "
               "the optimum", chance=0.0, lo=0.0, hi=1.0),
        Metric("feasible_rate", f"share of test points with every violation ≤ {TOL:g}", lo=0.0, hi=1.0),
        Metric("max_violation", "largest constraint violation over the test set", direction="lower", lo=0.0),
        Metric("optimality_gap", "mean (optimum − objective) / |optimum| (negative: infeasible points that "
               "beat the optimum)", direction="lower"),
        Metric("solve_ms", "milliseconds per test instance", direction="lower", lo=0.0, unit="ms", log_scale=True),
        Metric("train_solved_rate", "solved rate on the training instances", lo=0.0, hi=1.0, diagnostic=True),
    ),
    rule=Threshold("solved_rate", success=0.9),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("mlp_mse", "deep", mlp_mse, "MLP from b to x, MSE on the solver's optima", batched=True,
                  tuning=TUNING_MSE),
        Contender("mlp_penalty", "deep", mlp_penalty, "MLP, MSE + λ·constraint-violation penalty (DC3's NN "
                  "baseline)", batched=True, tuning=TUNING_PEN),
        Contender("mlp_projected", "remedy", mlp_projected, "the MSE MLP's output projected onto the "
                  "feasible set (L1 projection, an LP solved by HiGHS)", batched=True),
        Contender("highs", "alternative", highs, "HiGHS dual simplex (highspy), warm-started across instances"),
    ),
    references=(
        Reference("Donti, Rolnick & Kolter 2021, DC3, authors' results_summary (QP 100/50/50, Table 1 row)",
                  "MLP + soft penalty vs DC3 vs OSQP/qpth",
                  "NN max equality violation 0.349, objective −12.57 (optimum −15.05); DC3 −13.46, ineq. "
                  "violation ≤ 2.1e-4; solvers exact",
                  "verbatim (references/rl_reasoning_training.md §4)"),
    ),
    budget=lambda p: (f"{p.n_vars} variables, {p.n_cons} constraints, {p.n_train} solved instances, MLP 2×{p.width}, "
                      f"≤ {p.epochs} epochs × batch {p.batch}, Adam lr {p.lr:g}, early stopping "
                      f"(patience {p.patience}), λ {p.penalty:g}"),
    budget_fields=("epochs", "patience"),  # early stopping binds first unless patience grows too
    requires=("highspy",),
    extra="logic",
)
