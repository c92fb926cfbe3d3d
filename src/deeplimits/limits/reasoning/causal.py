"""Causal structure: a network trained on observational data leans on an effect, and breaks under intervention.

Claim: an MLP that predicts a variable from all the others learns to lean on its effects (a child and,
    through the child, a spouse) and its error explodes once the child is set by intervention, where a
    regression on the parents that the PC algorithm recovers from the same data keeps its error.
Source: seeds/003_f388986fd4a90ec9.txt (item 6: deep networks cannot extract causal structure; graphical
    models can); seeds/004_4ead15eadcdcceb2.txt (deep learning finds correlation, not causation); Spirtes,
    Glymour & Scheines, "Causation, Prediction, and Search" (the PC algorithm); Chickering 2002 (GES).
Setup: a linear-Gaussian SEM on 8 variables with a chain (A → P1 → Y → C), a collider at the target
    (P1 → Y ← P2), a collider at its child (Y → C ← S) and a fork (P2 ← F → H); unit-variance noises,
    edge weights 1 except P1 → Y and P2 → Y (0.7) and Y → C (the knob s). n_train observational samples
    (20 % held out for early stopping); the test set draws the same system under do(C := c), c ~ N(0,
    sd of C), independent of everything else; an observational test set of the same size beside it.
    Knob s: the weight of Y → C (0 = no shortcut: the positive control). Influencer detection, the seeds'
    other causal example, is its own probe (influencers.py): its data, metric and knob differ.
Deep contender: (a) MLP 2×64 (ReLU) and (b) MLP 3×128 with weight decay, both from the 7 other
    variables to Y, MSE, Adam, up to `epochs` epochs with early stopping on held-out MSE; every seed at once.
Alternative: PC (causal-learn, Fisher-z, α = 0.01) on the training data, then least squares of Y on the
    variables PC orients into Y (on all of Y's neighbours when PC leaves an edge undirected). GES
    (causal-learn, BIC) and a thresholded |correlation| graph are recovered beside it for the SHD metrics.
Metric: interventional error ratio: MSE on the do(C) test set ÷ Y's noise variance (1 is the best any
    predictor can do; predicting the mean gives ≈ 3; success ≤ 1.5); also the same ratio on the
    observational test set, and the skeleton SHD of the PC, GES and correlation graphs vs the truth.
    Diagnostic: the training-set ratio.
Reference figure: Arjovsky et al. 2019 (IRM, Colored MNIST): ERM 87.4 % train, 17.1 % test once the
    spurious colour flips; Reisach et al. 2021: structure learners fail on standardised data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from deeplimits.ensemble import Ensemble, predict, seeded, train_epochs
from deeplimits.probe import Answer, Contender, Context, Knob, Metric, Probe, Profile, Reference, Task, Threshold

NAMES = ("A", "P1", "P2", "F", "H", "Y", "C", "S")
TARGET = NAMES.index("Y")
CHILD = NAMES.index("C")
NOISE = 1.0  # every variable's noise variance (Y's sets the ratio's floor)


def weights(s: float) -> np.ndarray:
    """W[i, j] = weight of edge i -> j (a DAG in the order of NAMES)."""
    w = np.zeros((len(NAMES), len(NAMES)))
    for (a, b), v in {("A", "P1"): 1.0, ("P1", "Y"): 0.7, ("P2", "Y"): 0.7, ("F", "P2"): 1.0, ("F", "H"): 1.0,
                      ("Y", "C"): s, ("S", "C"): 1.0}.items():
        w[NAMES.index(a), NAMES.index(b)] = v
    return w


def skeleton(w: np.ndarray) -> np.ndarray:
    adj = w != 0
    return adj | adj.T


def sample(w: np.ndarray, n: int, rng: np.random.Generator, do_child: bool = False) -> np.ndarray:
    """n draws of the SEM; with do_child, C is set to independent N(0, its observational sd) values."""
    x = np.zeros((n, len(NAMES)))
    noise = rng.normal(0.0, NOISE**0.5, (n, len(NAMES)))
    for j in (0, 3, 1, 2, 4, 5, 7, 6):  # a topological order: A, F, P1, P2, H, Y, S, C
        x[:, j] = x @ w[:, j] + noise[:, j]
    if do_child:
        sd = np.sqrt(np.sum(w[:, CHILD] ** 2 * observational_var(w)) + NOISE)
        x[:, CHILD] = rng.normal(0.0, sd, n)
    return x


def observational_var(w: np.ndarray) -> np.ndarray:
    """Each variable's variance in the SEM: Σ = (I − Wᵀ)⁻¹ D (I − W)⁻¹."""
    inv = np.linalg.inv(np.eye(len(w)) - w.T)
    return np.diag(inv @ (NOISE * np.eye(len(w))) @ inv.T)


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CausalProfile(Profile):
    n_train: int = 2000
    n_test: int = 1000
    epochs: int = 100
    patience: int = 10
    batch: int = 64
    lr: float = 1e-3
    alpha: float = 0.01  # PC's Fisher-z level
    corr_threshold: float = 0.1  # |correlation| above which the correlation graph draws an edge


PROFILES = {
    "smoke": CausalProfile("smoke", knob=(0.0, 3.0), seeds=3, n_train=300, n_test=200, epochs=3, patience=2),
    "quick": CausalProfile("quick", knob=(0.0, 0.5, 1.0, 2.0, 4.0), seeds=5),
    "paper": CausalProfile("paper", knob=(0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0), seeds=10, n_train=20_000,
                           n_test=5000, epochs=300, patience=30),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CausalPublic:
    names: tuple[str, ...]
    target: int
    train: np.ndarray  # [n_train, 8] observational samples, target column included
    x_int: np.ndarray  # [n_test, 7] the other variables under do(C)
    x_obs: np.ndarray  # [n_test, 7] the other variables, observational


@lru_cache(maxsize=64)
def _task(s: float, key: int, profile: CausalProfile) -> Task:
    rng = np.random.default_rng(key)
    w = weights(s)
    train = sample(w, profile.n_train, rng)
    test_int = sample(w, profile.n_test, rng, do_child=True)
    test_obs = sample(w, profile.n_test, rng)
    others = [i for i in range(len(NAMES)) if i != TARGET]
    public = CausalPublic(NAMES, TARGET, train, test_int[:, others], test_obs[:, others])
    return Task(public, {"y_int": test_int[:, TARGET], "y_obs": test_obs[:, TARGET], "skeleton": skeleton(w)})


def make_task(s: float, rng: np.random.Generator, profile: CausalProfile) -> Task:
    return _task(float(s), int(rng.integers(2**62)), profile)


def shd(adj: np.ndarray, truth: np.ndarray) -> float:
    """Skeleton structural Hamming distance: edges added or missing (orientation ignored)."""
    a = np.asarray(adj, bool)
    a = a | a.T
    return float(np.triu(a ^ truth, 1).sum())


def score(task: Task, output: dict, ctx: Context) -> dict[str, float]:
    """output: {"int": predictions under do(C), "obs": observational predictions, optional "graphs"}."""
    hidden = task.hidden
    out = {}
    for key in ("int", "obs"):
        pred = np.asarray(output[key], float)
        if pred.shape != hidden[f"y_{key}"].shape or not np.isfinite(pred).all():
            raise ValueError(f"a contender must return {hidden[f'y_{key}'].shape} finite predictions for {key!r}")
        out[f"{key}_error_ratio"] = float(np.mean((pred - hidden[f"y_{key}"]) ** 2) / NOISE)
    for name, adj in output.get("graphs", {}).items():
        out[f"{name}_shd"] = shd(adj, hidden["skeleton"])
    return out


def check_data(data: np.ndarray) -> np.ndarray:
    """A clear error for data no structure learner can use."""
    data = np.asarray(data, float)
    if data.ndim != 2 or data.shape[0] < 10 or data.shape[1] < 2:
        raise ValueError(f"causal discovery needs samples × variables with ≥ 10 rows and ≥ 2 columns, got {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("causal discovery needs finite data (NaN or inf found)")
    if (data.std(0) == 0).any():
        raise ValueError("a variable is constant: Fisher-z tests need variance in every column")
    return data


# --- deep contenders ------------------------------------------------------------------------------
def mlp(width: int, depth: int) -> nn.Module:
    layers: list[nn.Module] = []
    inputs = len(NAMES) - 1
    for _ in range(depth):
        layers += [nn.Linear(inputs, width), nn.ReLU()]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, 1))


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((out.squeeze(-1) - y) ** 2).mean(-1)


def train_mlp(publics: list[CausalPublic], ctxs: list[Context], width: int, depth: int,
              decay: float) -> list[Answer]:
    prof: CausalProfile = ctxs[0].profile
    torch.set_num_threads(1)
    others = [i for i in range(len(NAMES)) if i != TARGET]
    data = torch.as_tensor(np.stack([p.train for p in publics]), dtype=torch.float32)
    x, y = data[..., others], data[..., TARGET]
    n_fit = int(0.8 * x.shape[1])
    ens = Ensemble([seeded(lambda: mlp(width, depth), c.rng_seed) for c in ctxs])
    train_epochs(ens, x[:, :n_fit], y[:, :n_fit], mse, prof.epochs, prof.batch, prof.lr, "adam",
                 x_val=x[:, n_fit:], y_val=y[:, n_fit:], score=lambda o, t: -mse(o, t), patience=prof.patience,
                 weight_decay=decay)
    x_int = torch.as_tensor(np.stack([p.x_int for p in publics]), dtype=torch.float32)
    x_obs = torch.as_tensor(np.stack([p.x_obs for p in publics]), dtype=torch.float32)
    p_int, p_obs = predict(ens, x_int).squeeze(-1).numpy(), predict(ens, x_obs).squeeze(-1).numpy()
    fit = mse(predict(ens, x[:, :n_fit]), y[:, :n_fit]).numpy() / NOISE
    return [Answer({"int": p_int[e], "obs": p_obs[e]}, {"train_error_ratio": float(fit[e])})
            for e in range(len(publics))]


def mlp_small(publics: list[CausalPublic], ctxs: list[Context]) -> list[Answer]:
    return train_mlp(publics, ctxs, 64, 2, 0.0)


def mlp_wide(publics: list[CausalPublic], ctxs: list[Context]) -> list[Answer]:
    return train_mlp(publics, ctxs, 128, 3, 1e-3)


# --- alternative ----------------------------------------------------------------------------------
def causal_graphs(data: np.ndarray, alpha: float, corr_threshold: float) -> dict[str, np.ndarray]:
    """causal-learn's graphs as adjacency (G[i, j] != 0: an edge mark between i and j) and the PC CPDAG."""
    from causallearn.search.ConstraintBased.PC import pc
    from causallearn.search.ScoreBased.GES import ges

    data = check_data(data)
    cpdag = pc(data, alpha, "fisherz", show_progress=False).G.graph
    ges_graph = ges(data)["G"].graph
    corr = np.abs(np.corrcoef(data, rowvar=False)) > corr_threshold
    np.fill_diagonal(corr, False)
    return {"pc": cpdag, "ges": ges_graph, "corr": corr}


def parents_in(cpdag: np.ndarray, j: int) -> list[int]:
    """Variables PC orients into j (i -> j: G[i, j] = -1, G[j, i] = 1), plus undirected neighbours."""
    into = [i for i in range(len(cpdag)) if i != j and cpdag[i, j] == -1 and cpdag[j, i] == 1]
    undirected = [i for i in range(len(cpdag)) if i != j and cpdag[i, j] == -1 and cpdag[j, i] == -1]
    return into + undirected


def pc_parents(public: CausalPublic, ctx: Context) -> Answer:
    prof: CausalProfile = ctx.profile
    graphs = causal_graphs(public.train, prof.alpha, prof.corr_threshold)
    others = [i for i in range(len(NAMES)) if i != public.target]
    chosen = parents_in(graphs["pc"], public.target)
    cols = [others.index(i) for i in chosen]  # positions among the 7 inputs
    x, y = public.train[:, others][:, cols], public.train[:, public.target]
    design = np.column_stack([x, np.ones(len(x))])
    coef = np.linalg.lstsq(design, y, rcond=None)[0]

    def fit(z: np.ndarray) -> np.ndarray:
        return np.column_stack([z[:, cols], np.ones(len(z))]) @ coef

    adj = {name: (g != 0) for name, g in graphs.items()}
    train_ratio = float(np.mean((fit(public.train[:, others]) - y) ** 2) / NOISE)
    return Answer({"int": fit(public.x_int), "obs": fit(public.x_obs), "graphs": adj},
                  {"train_error_ratio": train_ratio})


# --- the probe ------------------------------------------------------------------------------
TUNING_SMALL = ("picked at s = 0 (easy end) on the held-out 20 % of the training samples, 3 seeds, quick budget: "
                "Adam lr {1e-3, 3e-3, 1e-2}, held-out MSE 0.983 / 1.004 / 1.002: pick lr 1e-3 (width 64, depth 2)")
TUNING_WIDE = ("same split: lr {1e-3, 3e-3} × weight decay {0, 1e-3}, held-out MSE 0.996 / 0.995 / 1.002 / 0.999: "
               "pick lr 1e-3, weight decay 1e-3 (width 128, depth 3)")

PROBE = Probe(
    id="causal",
    family="reasoning",
    claim="A network trained on observational data leans on an effect of its target and fails when that "
          "effect is set by intervention, where a regression on the parents found by the PC algorithm holds.",
    sources=("seeds/003_f388986fd4a90ec9.txt", "seeds/004_4ead15eadcdcceb2.txt",
             "Spirtes, Glymour & Scheines 2000, Causation, Prediction, and Search (PC)",
             "Chickering 2002, Optimal structure identification with greedy search (GES)"),
    version=1,
    knob=Knob("shortcut", "weight of the edge Y → C (how much the child C reveals about Y)",
              validate=lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 100),
    metrics=(
        Metric("int_error_ratio", "MSE under do(C) ÷ Y's noise variance (1 = best possible)", direction="lower",
               chance=3.0, lo=0.0),
        Metric("obs_error_ratio", "MSE on observational test data ÷ Y's noise variance", direction="lower", lo=0.0),
        Metric("pc_shd", "skeleton SHD of PC's graph vs the truth", direction="lower", lo=0.0),
        Metric("ges_shd", "skeleton SHD of GES's graph vs the truth", direction="lower", lo=0.0),
        Metric("corr_shd", "skeleton SHD of the thresholded |correlation| graph vs the truth", direction="lower",
               lo=0.0),
        Metric("train_error_ratio", "training MSE ÷ Y's noise variance", direction="lower", lo=0.0,
               diagnostic=True),
    ),
    rule=Threshold("int_error_ratio", success=1.5),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("mlp", "deep", mlp_small, "MLP 2×64 from the other 7 variables", batched=True,
                  tuning=TUNING_SMALL),
        Contender("mlp_wide", "deep", mlp_wide, "MLP 3×128 with weight decay", batched=True, tuning=TUNING_WIDE),
        Contender("pc_parents", "alternative", pc_parents, "PC (causal-learn, Fisher-z) then least squares on "
                  "the parents it finds"),
    ),
    references=(
        Reference("Arjovsky et al. 2019, Invariant Risk Minimization (authors' log, Colored MNIST)",
                  "colour agrees with the label 80–90 % in training, 10 % at test",
                  "ERM 87.4 % train, 17.1 % test; IRM 70.8 % / 66.9 %; invariant optimum 75 %",
                  "verbatim (references/rl_reasoning_training.md §9)"),
        Reference("Reisach, Seiler & Weichwald 2021, Beware of the Simulated DAG!",
                  "continuous structure learners on simulated linear SEMs",
                  "on standardised data the same algorithms fail to identify the DAG or its equivalence class",
                  "verbatim abstract (references/rl_reasoning_training.md §9)"),
    ),
    budget=lambda p: (f"{p.n_train} observational samples, ≤ {p.epochs} epochs × batch {p.batch}, Adam lr {p.lr:g}, "
                      f"early stopping (patience {p.patience}); PC α = {p.alpha:g}"),
    budget_fields=("epochs", "patience"),  # early stopping binds first unless patience grows too
    requires=("causallearn",),
    extra="logic",
)
