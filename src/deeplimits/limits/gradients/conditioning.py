"""Conditioning: the architecture and the conditioning of a simple linear map decide whether gradient
training learns it.

Claim: encoding a piecewise-linear curve (recovering its kinks p from its values f = W p) is a convex
    least-squares problem, yet gradient training of a fully connected layer stalls on it once the
    number of points n grows, because the problem's condition number grows like a high power of n; a
    3-tap convolution has the same answer with a smaller (still polynomial) condition number, and the
    convolution on whitened inputs (condition number ≈ 1) is learned in a handful of steps.
Source: seed 001_89d092338235e9e1.txt; Shalev-Shwartz, Shamir & Shammah, "Failures of
    Gradient-Based Deep Learning", ICML 2017, Sec. 4 (Lemma 1, Thm 3, App. A.5-A.6, Fig. 6).
Setup: n points, k = 3 kinks at positions drawn without replacement from {0..n-1} with slopes
    a ~ U[-1, 1] (the paper's distribution); f = W p with W_ij = [i - j + 1]_+, so p = U f where U is
    the convolution with [1, -2, 1] (Lemma 1). The learner sees n_train curves with their kinks and
    the test curves f; the test kinks stay hidden. Weights start at zero as in the paper; float64 so
    that precision is not the bottleneck. Training is full batch on the squared loss (the paper: Adam
    on minibatches of 100 for 50k steps; full batch removes the minibatch noise, which only helps
    the deep arms).
Deep contender: a fully connected linear layer n -> n (the paper's 4.1.1), trained by (a) plain
    gradient descent at step 1/λ_max (Thm 3 is about GD) and (b) Adam (the optimiser of the paper's
    code; its diagonal preconditioning partly masks the conditioning effect, so the break moves to a
    larger n). Step sizes picked at the easy end (n = 5) on a validation split, see `tuning`. Adam's
    tuned lr 1e-2 oscillates at n ≥ 50 (errors above 1); smaller rates do not rescue it (offline, 3
    seeds, 20,000 steps: lr 1e-3 gives 0.31-0.34 at n = 50 and 0.76-1.2 at n = 100, lr 1e-4 gives
    0.31 and 0.62-0.65).
Remedy: (a) a 3-tap convolution (4.1.2) by GD at 1/λ_max; (b) the same convolution on inputs
    [f_{j-2}, f_{j-1}, f_j] whitened by C^{-1/2}, C their second-moment matrix on the training set
    (4.1.3), by GD at 1/λ_max (the classical step, not tuned; the deep GD arm's tuned 1.9/λ_max
    is faster along the small eigenvalues and slower along the top one).
Metric: relative squared test error E||p - p̂||² / E||p||² of the contender's predicted kinks on the
    test curves, scored by the probe (lower is better; 1 = predicting zero, success ≤ 0.01).
    Diagnostics: steps until the training error first reaches 0.01 (steps + 1 if never) and the
    condition number of each architecture's Hessian on the training set.
Reference figure: Fig. 6 (decoded curves after 500 / 10,000 / 50,000 iterations, no error table):
    fully connected inaccurate at the kinks after 50k Adam steps, conv better, conv + conditioning
    "extremely accurate" after 500 steps; condition numbers κ(W)² = Ω(n^3.5) (1.35e8 at n = 100,
    computed) fully connected, Θ(n³) conv (≈ 1.5e6 at n = 100, computed), ≈ 1 conditioned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deeplimits.probe import Answer, Contender, Context, Knob, Metric, Probe, Profile, Reference, Task, Threshold

TARGET = 0.01  # relative squared error that counts as learned (chosen from the claim, before measuring)
NEVER = 1e7  # upper bound of the steps metric (the sentinel is steps + 1 <= this)
GD_STEP = 1.9  # GD step in units of 1/λ_max, picked at n = 5 from {0.5, 1.0, 1.9} (see TUNING_GD)
ADAM_LR = 1e-2  # picked at n = 5 from {1e-4, 1e-3, 1e-2, 1e-1} (see TUNING_ADAM)


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConditioningProfile(Profile):
    steps: int = 5_000
    kinks: int = 3
    n_train: int = 2_000
    n_test: int = 500
    gd_step: float = GD_STEP
    adam_lr: float = ADAM_LR
    remedy_step: float = 1.0  # the remedies' GD step in units of 1/λ_max (optimal for the top direction)


PROFILES = {
    "smoke": ConditioningProfile("smoke", knob=(5, 25), seeds=3, steps=1_000, n_train=500, n_test=200),
    "quick": ConditioningProfile("quick", knob=(5, 10, 25, 100), seeds=4, steps=5_000),
    "paper": ConditioningProfile("paper", knob=(5, 10, 25, 50, 100, 200), seeds=10, steps=50_000,
                                 n_train=10_000, n_test=1_000, adam_lr=1e-4),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CurvePublic:
    n: int
    f_train: np.ndarray  # [N, n] curve values
    p_train: np.ndarray  # [N, n] slope changes at the kinks
    f_test: np.ndarray  # [M, n]


@dataclass(frozen=True)
class CurveHidden:
    p_test: np.ndarray  # [M, n]


def ramp_matrix(n: int) -> np.ndarray:
    """W_ij = [i - j + 1]_+ : f = W p integrates the kinks p twice (Lemma 1)."""
    i = np.arange(n)
    return np.maximum(i[:, None] - i[None, :] + 1, 0).astype(np.float64)


def sample_curves(n: int, count: int, kinks: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    p = np.zeros((count, n))
    pos = np.argsort(rng.random((count, n)), axis=1)[:, :kinks]  # kinks without replacement
    np.put_along_axis(p, pos, rng.uniform(-1.0, 1.0, (count, kinks)), axis=1)
    return p @ ramp_matrix(n).T, p


def make_task(n: int, rng: np.random.Generator, profile: ConditioningProfile) -> Task:
    f_tr, p_tr = sample_curves(n, profile.n_train, profile.kinks, rng)
    f_te, p_te = sample_curves(n, profile.n_test, profile.kinks, rng)
    return Task(CurvePublic(n, f_tr, p_tr, f_te), CurveHidden(p_te))


def score(task: Task, output: np.ndarray, ctx: Context) -> dict[str, float]:
    p = task.hidden.p_test
    p_hat = np.asarray(output, dtype=np.float64).reshape(p.shape)
    err = float(((p - p_hat) ** 2).sum() / (p**2).sum())
    return {"rel_error": err if np.isfinite(err) else 1e12}


# --- architectures as linear least squares: outputs = Θ · features ------------------------------
def conv_features(f: np.ndarray) -> np.ndarray:
    """[N, n] -> [N, n, 3]: the taps (f_{j-2}, f_{j-1}, f_j), zero-padded on the left."""
    padded = np.pad(f, ((0, 0), (2, 0)))
    return np.stack([padded[:, :-2], padded[:, 1:-1], padded[:, 2:]], axis=-1)


def whitener(x: np.ndarray) -> np.ndarray:
    """C^{-1/2} for the second moment C of the rows of x (the paper's conditioning, via eigh)."""
    lam, vec = np.linalg.eigh(x.T @ x / len(x))
    return vec @ np.diag(lam ** -0.5) @ vec.T


@dataclass(frozen=True)
class Design:
    """One architecture's least-squares problem: rows x -> targets y; `predict` maps Θ to test kinks."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    shape: tuple[int, int]  # test kinks [M, n]


def design(public: CurvePublic, arch: str) -> Design:
    """fc maps a whole curve to its kinks; the convolutions map each position's 3 taps to that
    position's kink (one row per position)."""
    shape = public.f_test.shape
    if arch == "fc":
        return Design(public.f_train, public.p_train, public.f_test, shape)
    x, x_te = conv_features(public.f_train).reshape(-1, 3), conv_features(public.f_test).reshape(-1, 3)
    if arch == "conv_whitened":
        w = whitener(x)
        x, x_te = x @ w, x_te @ w
    return Design(x, public.p_train.reshape(-1, 1), x_te, shape)


def descend(designs: list[Design], rows_per_curve: list[float], steps: int, optimizer: str, lr: float
            ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Full-batch training from zero on ½ mean-per-curve ||y - Θx||², all seeds at once.

    Hand-written rather than deeplimits.ensemble: the model is linear, so a full-batch gradient
    needs only the sufficient statistics A = E[x xᵀ], B = E[y xᵀ] (cost independent of n_train);
    seeds are stacked and stepped together with batched matmuls; Adam is torch's, fed these
    gradients. GD steps at lr/λ_max(A) per seed. Returns Θ per seed, the condition numbers and the
    step at which the training error first reached TARGET (steps + 1 if never)."""
    a = torch.as_tensor(np.stack([d.x.T @ d.x / len(d.x) * s for d, s in zip(designs, rows_per_curve)]))
    b = torch.as_tensor(np.stack([d.y.T @ d.x / len(d.x) * s for d, s in zip(designs, rows_per_curve)]))
    syy = torch.as_tensor([float((d.y**2).sum() / len(d.y) * s) for d, s in zip(designs, rows_per_curve)])
    lam = torch.linalg.eigvalsh(a)  # ascending [E, P]
    cond = (lam[:, -1] / lam[:, 0].clamp_min(1e-300)).numpy()
    theta = torch.zeros_like(b, requires_grad=optimizer == "adam")
    opt = torch.optim.Adam([theta], lr=lr) if optimizer == "adam" else None
    step_gd = (lr / lam[:, -1])[:, None, None]
    reached = np.full(len(designs), steps + 1.0)
    for step in range(steps):
        with torch.no_grad():
            grad = theta @ a - b
            # training error of the current weights from the same product: tr(ΘAΘᵀ) - 2 tr(ΘBᵀ) + tr(Σ_yy)
            rel = (((grad - b) * theta).sum((1, 2)) + syy) / syy
            newly = (rel.numpy() <= TARGET) & (reached > steps)
            reached[newly] = step
            if opt is None:
                theta = theta - step_gd * grad
                continue
        theta.grad = grad
        opt.step()
    return [t.detach().numpy() for t in theta], cond, reached


def fit(publics: list[CurvePublic], ctxs: list[Context], arch: str, optimizer: str) -> list[Answer]:
    prof: ConditioningProfile = ctxs[0].profile
    designs = [design(p, arch) for p in publics]
    rows = [len(d.x) / len(p.f_train) for d, p in zip(designs, publics)]  # the loss is per curve
    lr = prof.adam_lr if optimizer == "adam" else prof.remedy_step if arch.startswith("conv") else prof.gd_step
    thetas, cond, reached = descend(designs, rows, prof.steps, optimizer, lr)
    out = []
    for d, th, c, r in zip(designs, thetas, cond, reached):
        pred = (d.x_test @ th.T).reshape(d.shape)
        out.append(Answer(pred, {"steps_to_target": float(r), "cond": float(max(c, 1.0))}))
    return out


def fc_gd(publics: list[CurvePublic], ctxs: list[Context]) -> list[Answer]:
    return fit(publics, ctxs, "fc", "gd")


def fc_adam(publics: list[CurvePublic], ctxs: list[Context]) -> list[Answer]:
    return fit(publics, ctxs, "fc", "adam")


def conv_gd(publics: list[CurvePublic], ctxs: list[Context]) -> list[Answer]:
    return fit(publics, ctxs, "conv", "gd")


def conv_whitened(publics: list[CurvePublic], ctxs: list[Context]) -> list[Answer]:
    return fit(publics, ctxs, "conv_whitened", "gd")


# --- the probe ------------------------------------------------------------------------------
TUNING_GD = ("step picked at n = 5 (easy end) from {0.5, 1.0, 1.9} / λ_max by relative error on a validation "
             "split (400 of the 2,000 training curves held out) after the quick budget (5,000 steps, 3 seeds): "
             f"6e-3 / 1.6e-4 / < 1e-6; picked {GD_STEP:g} / λ_max")
TUNING_ADAM = ("lr picked at n = 5 (easy end) from {1e-4, 1e-3, 1e-2, 1e-1} by relative error on a validation "
               "split (400 of the 2,000 training curves held out) after the quick budget (5,000 steps, 3 seeds): "
               "0.32 / < 1e-6 / < 1e-6 / up to 0.03; 1e-3 and 1e-2 tie, 1e-2 reaches the training target in "
               f"≈360 steps instead of ≈2,700: {ADAM_LR:g}. The paper profile keeps the paper's 1e-4, 50k steps")

PROBE = Probe(
    id="conditioning",
    family="gradients",
    claim="Architecture and conditioning decide whether gradient training learns even a simple linear map: "
          "a fully connected layer faces a condition number growing like n^3.5 or more and stalls, while a "
          "convolution on whitened inputs learns the same map in a few steps.",
    sources=("seeds/001_89d092338235e9e1.txt",
             "Shalev-Shwartz, Shamir & Shammah 2017, Failures of Gradient-Based Deep Learning, Sec. 4"),
    version=2,
    knob=Knob("n", "points per curve (the condition number grows with n)", unit="points",
              validate=lambda v: isinstance(v, int) and 4 <= v <= 1000, log_scale=True),
    metrics=(
        Metric("rel_error", "relative squared test error E||p - p̂||² / E||p||² of the predicted kinks",
               direction="lower", chance=1.0, lo=0.0, hi=np.inf, log_scale=True),
        Metric("steps_to_target", f"steps until the training error first reaches {TARGET} (steps + 1 if never)",
               direction="lower", lo=0.0, hi=NEVER, log_scale=True, diagnostic=True),
        Metric("cond", "condition number λ_max/λ_min of the architecture's Hessian on the training set",
               direction="lower", lo=1.0, hi=np.inf, log_scale=True, diagnostic=True),
    ),
    rule=Threshold("rel_error", success=TARGET),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("fc_gd", "deep", fc_gd, "linear n×n layer, full-batch GD at 1.9/λ_max", batched=True,
                  tuning=TUNING_GD),
        Contender("fc_adam", "deep", fc_adam, "linear n×n layer, full-batch Adam", batched=True,
                  tuning=TUNING_ADAM),
        Contender("conv_gd", "remedy", conv_gd, "3-tap convolution, full-batch GD at 1/λ_max", batched=True),
        Contender("conv_whitened", "remedy", conv_whitened,
                  "3-tap convolution on C^{-1/2}-whitened taps, full-batch GD at 1/λ_max", batched=True),
    ),
    references=(
        Reference("Shalev-Shwartz et al. 2017, Thm 3 (κ(W)² = Ω(n^3.5)); values computed in "
                  "references/gradients.md with numpy",
                  "fully connected: condition number of W Wᵀ (the Hessian up to scale)",
                  "κ(W)² = 5.9e5, 8.7e6, 1.35e8 at n = 25, 50, 100", "computed",
                  points=((25, 5.9e5), (50, 8.7e6), (100, 1.35e8)), metric="cond"),
        Reference("Shalev-Shwartz et al. 2017, App. A.5-A.6 (conv: Θ(n³)); value computed in "
                  "references/gradients.md", "3×3 second moment of the taps, the paper's distribution",
                  "cond ≈ 1.5e6 at n = 100", "computed", points=((100, 1.5e6),), metric="cond"),
        Reference("Shalev-Shwartz et al. 2017, Fig. 6", "n = 100, k = 3; Adam; FC 50k its, conv 50k its, "
                  "conv + conditioning 500 its (batch 10)",
                  "FC inaccurate at the kinks, conv better, conv + conditioning extremely accurate (no numbers)",
                  "verbatim (caption and text)"),
    ),
    budget=lambda p: (f"full batch from zero, {p.steps:,} steps (GD at {p.gd_step:g}/λ_max, Adam lr {p.adam_lr:g}), "
                      f"{p.n_train:,} training curves, k = {p.kinks}"),
    budget_fields=("steps",),
    fit=None,  # an optimisation claim: failing to fit the (convex) training problem is the claim
)
