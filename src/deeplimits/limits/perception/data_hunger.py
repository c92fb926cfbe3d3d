"""Data hunger: does a neural net need more training samples than classical learners?

Claim: deep networks are data-hungry: to reach a given test accuracy they need more labelled
    samples than classical learners (nearest neighbours, kernel SVM, random forests, logistic
    regression), which win at small training sets. Measured with the standard deep arm for the
    data (a CNN beside the MLP) and budgets that follow the data, the claim may not hold: that is
    a finding. Known counter-example: on scikit-learn's 8×8 digits a scaled MLP is not hungrier than
    RF or kNN (deeplimits references, rl_reasoning_training.md §10).
Source: seeds/004_4ead15eadcdcceb2.txt; Perlich, Provost & Simonoff 2003 (JMLR 4:211, learning
    curves cross); Fernández-Delgado et al. 2014 (JMLR 15:3133); Greydanus 2020 (mnist1d).
Setup: knob = dataset: "digits" (sklearn's 8×8 digits, 64 pixels, the images left out of the
    largest training set for testing) and "mnist1d" (built locally, 40-sample signals, its own 1,000
    test samples). Each trial draws one nested sequence of training subsets (a random permutation's
    prefixes) and sweeps the profile's sizes; every contender of a seed sees the same subsets and
    test inputs and returns its predicted test labels at every size; the probe scores them.
    Features standardised on each training subset. The knob is categorical: its order (digits,
    then mnist1d) carries no meaning; the verdict is read per dataset.
Deep contender: two standard arms for images and signals, every (seed, size) its own member
    (deeplimits.ensemble), trained in epochs with early stopping on a validation split of its own
    training subset (20 %, at least 2 samples) on validation loss, Adam: an MLP (2 hidden ReLU
    layers) and a CNN (digits: 2-D, 8×8 images; mnist1d: 1-D over the 40-sample signal; both three
    conv layers, global max pooling, linear).
Alternative: kNN (k = 5, distance-weighted), RBF SVM (C = 10), random forest, logistic regression
    (≤ 500 lbfgs iterations) — scikit-learn defaults otherwise, fitted on the whole subset.
Metric: samples_to_target = training samples needed to reach the dataset's target test accuracy
    (declared before measuring: digits 0.90, from the reference learning curves; mnist1d 0.60, about
    90 % of Greydanus's MLP at 4,000 samples), log-linearly interpolated between swept sizes. A curve
    that never reaches the target reports the largest size, a lower bound, and target_censored = 1
    (fairness rule 7: a ratio on a bound decides only the way the bound allows). Verdict kind ratio:
    deep ÷ classical, factor 2 (the claim: "needs clearly more data"), judged on the best deep arm.
    Positive control: on digits the best deep arm reaches the target at the largest size
    (accuracy_at_max ≥ 0.90).
Reference figure: deeplimits references (rl_reasoning_training.md §10, CPU learning curves on digits,
    mean of 5 subsamples): MLP 0.684 / 0.893 / 0.961 at 30 / 120 / 500 samples vs kNN 0.517 / 0.850 /
    0.937, RF 0.606 / 0.885 / 0.957, LogReg 0.707 / 0.897 / 0.952. Greydanus 2020 (mnist1d, 4,000
    samples): logistic regression 32 %, MLP 68 %, CNN 94 % (recalled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deeplimits import datasets
from deeplimits.ensemble import cross_entropy
from deeplimits.models import fit_members, predict_labels
from deeplimits.probe import (
    Answer,
    Contender,
    Context,
    Control,
    Fit,
    Knob,
    Metric,
    Probe,
    Profile,
    Ratio,
    Reference,
    Task,
)

DATASETS = ("digits", "mnist1d")


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataHungerProfile(Profile):
    sizes_digits: tuple[int, ...] = (25, 50, 100, 200, 400, 800)
    sizes_mnist1d: tuple[int, ...] = (100, 200, 400, 800, 1600, 3200)
    targets: tuple[tuple[str, float], ...] = (("digits", 0.90), ("mnist1d", 0.60))
    val_fraction: float = 0.2  # of each training subset, for the deep arms' early stopping
    epochs: int = 100
    patience: int = 10
    batch: int = 64
    width: int = 128  # MLP hidden units
    channels: int = 16  # CNN filters per layer
    lr_mlp: float = 3e-3
    lr_cnn: float = 3e-3
    trees: int = 100

    def sizes(self, dataset: str) -> tuple[int, ...]:
        return self.sizes_digits if dataset == "digits" else self.sizes_mnist1d

    def target(self, dataset: str) -> float:
        return dict(self.targets)[dataset]


PROFILES = {
    # smoke skips mnist1d: building it locally takes several seconds on its own
    "smoke": DataHungerProfile("smoke", knob=("digits",), seeds=3, sizes_digits=(30, 120, 480),
                               sizes_mnist1d=(100, 400, 1600), epochs=8, patience=3, width=32, channels=8,
                               trees=20),
    "quick": DataHungerProfile("quick", knob=DATASETS, seeds=5),
    "paper": DataHungerProfile("paper", knob=DATASETS, seeds=20, sizes_digits=(10, 20, 40, 80, 160, 320, 640, 1280),
                               sizes_mnist1d=(25, 50, 100, 200, 400, 800, 1600, 3200, 4000), epochs=1000,
                               patience=50, width=256, channels=64, trees=500),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CurveData:
    """What a learner sees: a pool whose prefixes are the training subsets, and the test inputs."""

    dataset: str
    x_pool: np.ndarray  # float32 [N, F]
    y_pool: np.ndarray
    x_test: np.ndarray
    sizes: tuple[int, ...]

    def subset(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x_train, y_train, x_test), standardised with the training subset's statistics."""
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(self.x_pool[:n])
        xs = scaler.transform(self.x_pool[:n]).astype(np.float32)
        return xs, self.y_pool[:n], scaler.transform(self.x_test).astype(np.float32)


def make_task(dataset: str, rng: np.random.Generator, profile: DataHungerProfile) -> Task:
    sizes = profile.sizes(dataset)
    if dataset == "digits":
        x, y = datasets.digits()
        x = x.reshape(len(x), -1)
        x_pool, y_pool, x_test, y_test = datasets.split(x, y, max(sizes), len(x) - max(sizes), rng)
    else:
        x_tr, y_tr, x_test, y_test = datasets.mnist1d()
        idx = rng.permutation(len(x_tr))[:max(sizes)]
        x_pool, y_pool = x_tr[idx], y_tr[idx]
    return Task(CurveData(dataset, x_pool, y_pool, x_test, sizes), hidden=(y_test, profile.target(dataset)))


def samples_to_target(sizes: tuple[int, ...], accs: list[float], target: float) -> tuple[float, bool]:
    """Samples to reach `target` (log-linear interpolation) and whether it was never reached, in which
    case the largest size is returned: a lower bound (fairness rule 7)."""
    logs, a = np.log(np.array(sizes, float)), np.array(accs)
    hit = np.nonzero(a >= target)[0]
    if len(hit) == 0:
        return float(sizes[-1]), True
    i = hit[0]
    if i == 0:
        return float(sizes[0]), False
    frac = (target - a[i - 1]) / (a[i] - a[i - 1])
    return float(np.exp(logs[i - 1] + frac * (logs[i] - logs[i - 1]))), False


def score(task: Task, output: dict[int, np.ndarray], ctx: Context) -> dict[str, float]:
    """Test accuracy at every size from the predicted labels, then samples to the target."""
    y_test, target = task.hidden
    sizes = task.public.sizes
    accs = [float((np.asarray(output[n]) == y_test).mean()) for n in sizes]
    n, censored = samples_to_target(sizes, accs, target)
    return {"samples_to_target": n, "target_censored": float(censored), "accuracy_at_max": accs[-1],
            "accuracy_at_min": accs[0], "target_margin": accs[-1] - target}


# --- deep arms: MLP and CNN, every (seed, size) one member, early stopping on validation loss -----
def make_mlp(features: int, width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(features, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10))


class SignalCNN(nn.Module):
    """Three conv layers (2-D on the 8×8 digits, 1-D on mnist1d's 40-sample signals), global max pooling,
    linear."""

    def __init__(self, shape: tuple[int, ...], channels: int) -> None:
        super().__init__()
        conv = nn.Conv2d if len(shape) == 2 else nn.Conv1d
        self.shape = (1, *shape)
        c = channels
        self.features = nn.Sequential(conv(1, c, 3, padding=1), nn.ReLU(), conv(c, c, 3, padding=1, stride=2),
                                      nn.ReLU(), conv(c, c, 3, padding=1, stride=2), nn.ReLU())
        self.head = nn.Linear(c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.reshape(x.shape[0], *self.shape))
        return self.head(h.flatten(2).amax(-1))


SHAPES = {"digits": (8, 8), "mnist1d": (40,)}


def _neg_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Early-stopping score per member: minus the validation cross-entropy (smoother than accuracy on
    validation sets of a few samples)."""
    return -cross_entropy(out, y)


def _member_data(public: CurveData, n: int, val_fraction: float, rng: np.random.Generator
                 ) -> tuple[np.ndarray, ...]:
    x, y, xt = public.subset(n)
    n_val = max(2, int(round(val_fraction * n)))
    idx = rng.permutation(n)
    return x[idx[n_val:]], y[idx[n_val:]], x[idx[:n_val]], y[idx[:n_val]], xt


def _train(publics: list[CurveData], ctxs: list[Context], arm: str) -> list[Answer]:
    """One ensemble per training size (its members: the seeds), so each size trains for its own epochs."""
    prof: DataHungerProfile = ctxs[0].profile
    device = ctxs[0].device
    features = publics[0].x_pool.shape[1]
    preds: list[dict[int, np.ndarray]] = [{} for _ in publics]
    fit = np.zeros(len(publics))
    for j, n in enumerate(publics[0].sizes):
        parts = [_member_data(p, n, prof.val_fraction, np.random.default_rng(c.rng_seed + j))
                 for p, c in zip(publics, ctxs, strict=True)]
        x, y, xv, yv, xt = (np.stack(a) for a in zip(*parts))
        if arm == "mlp":
            factory, lr = (lambda: make_mlp(features, prof.width)), prof.lr_mlp
        else:
            factory, lr = (lambda: SignalCNN(SHAPES[publics[0].dataset], prof.channels)), prof.lr_cnn
        ens, _ = fit_members(factory, [c.rng_seed + j for c in ctxs], x, y, xv, yv, epochs=prof.epochs,
                             batch=prof.batch, lr=lr, patience=prof.patience, device=device, score=_neg_loss)
        pred = predict_labels(ens, xt, device)
        for i in range(len(publics)):
            preds[i][n] = pred[i]
        if n == publics[0].sizes[-1]:  # fit at the largest size, the hardest to fit
            fit = (predict_labels(ens, x, device) == y).mean(1)
    return [Answer(preds[i], {"train_accuracy": float(fit[i])}) for i in range(len(publics))]


def mlp(publics: list[CurveData], ctxs: list[Context]) -> list[Answer]:
    return _train(publics, ctxs, "mlp")


def cnn(publics: list[CurveData], ctxs: list[Context]) -> list[Answer]:
    return _train(publics, ctxs, "cnn")


# --- alternatives: scikit-learn's classical learners on the same subsets --------------------------
def _classical(make_model):
    def fn(public: CurveData, ctx: Context) -> dict[int, np.ndarray]:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        out = {}
        for n in public.sizes:
            x, y, xt = public.subset(n)
            with warnings.catch_warnings():  # lbfgs on mnist1d stops at max_iter; the curve is what counts
                warnings.simplefilter("ignore", ConvergenceWarning)
                out[n] = make_model(ctx).fit(x, y).predict(xt)
        return out

    return fn


def _knn(ctx: Context):
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=5, weights="distance")


def _svm(ctx: Context):
    from sklearn.svm import SVC

    return SVC(C=10.0, gamma="scale")


def _forest(ctx: Context):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(ctx.profile.trees, random_state=ctx.rng_seed % 2**31, n_jobs=1)


def _logreg(ctx: Context):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=500)


# --- the probe ------------------------------------------------------------------------------
TUNING = ("grid at the easy end (the largest quick size of each dataset) on a 20 % validation split, "
          "3 seeds, validation accuracy: {grid}; picked {pick}")

PROBE = Probe(
    id="data_hunger",
    family="perception",
    claim="A neural net needs more training samples than classical learners (kNN, SVM, random forest, "
          "logistic regression) to reach the same test accuracy.",
    sources=("seeds/004_4ead15eadcdcceb2.txt",
             "Perlich, Provost & Simonoff 2003, Tree induction vs. logistic regression: a learning-curve "
             "analysis, JMLR 4:211",
             "Fernández-Delgado et al. 2014, Do we need hundreds of classifiers?, JMLR 15:3133",
             "Greydanus 2020, Scaling down deep learning (mnist1d)"),
    version=2,
    knob=Knob("dataset", "which data set the learning curves are measured on (categorical: digits, mnist1d; "
              "the order carries no meaning)", validate=lambda v: v in DATASETS),
    metrics=(
        Metric("samples_to_target", "training samples needed to reach the dataset's target test accuracy "
               "(the largest size, a lower bound, where never reached)", direction="lower", lo=0.0,
               unit="samples", log_scale=True, censored_by="target_censored"),
        Metric("target_censored", "1 where the target was never reached within the swept sizes", lo=0.0, hi=1.0),
        Metric("accuracy_at_max", "test accuracy at the largest training size", chance=0.1, lo=0.0, hi=1.0),
        Metric("accuracy_at_min", "test accuracy at the smallest training size", chance=0.1, lo=0.0, hi=1.0),
        Metric("target_margin", "accuracy at the largest size minus the target", lo=-1.0, hi=1.0),
        Metric("train_accuracy", "a deep arm's accuracy on its own training samples at the largest size",
               lo=0.0, hi=1.0, diagnostic=True),
    ),
    rule=Ratio("samples_to_target", factor=2.0),
    control=Control(metric="accuracy_at_max", success=0.9, knob="digits",
                    description="the best deep arm reaches the digits target (0.90) at the largest training size"),
    fit=Fit("train_accuracy", 0.95),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("mlp", "deep", mlp, "MLP 2×128 ReLU, Adam, epochs with early stopping per (seed, size)",
                  batched=True, tuning=TUNING.format(grid="lr {1e-3, 3e-3} × width {128, 256} (patience 15): "
                                                     "digits val 0.969 / 0.965 (128), 0.967 / 0.956 (256); mnist1d "
                                                     "0.559 / 0.572 (128), 0.565 / 0.558 (256)",
                                                     pick="lr 3e-3, width 128 (best on mnist1d, within 0.004 "
                                                     "of the best on digits)")),
        Contender("cnn", "deep", cnn, "CNN 3 conv layers × 16 (2-D on digits, 1-D on mnist1d), global max pool, "
                  "Adam, epochs with early stopping per (seed, size)", batched=True,
                  tuning=TUNING.format(grid="lr {1e-3, 3e-3}, 16 channels (patience 15): digits val 0.948 / "
                                       "0.952; the mnist1d grid did not finish in the CPU time available",
                                       pick="lr 3e-3, 16 channels (32 cost more than the budget allows)")),
        Contender("knn", "alternative", _classical(_knn), "k-nearest neighbours, k = 5, distance-weighted"),
        Contender("svm", "alternative", _classical(_svm), "RBF SVM, C = 10"),
        Contender("random_forest", "alternative", _classical(_forest), "random forest"),
        Contender("logistic_regression", "alternative", _classical(_logreg), "multinomial logistic regression"),
    ),
    references=(
        Reference("deeplimits references, rl_reasoning_training.md §10 (digits, test 40 %, 5 subsamples)",
                  "scaled MLP vs kNN / LogReg / RF, sklearn", "n to 0.90: MLP ≈ 125, LogReg ≈ 120, RF ≈ 140, "
                  "kNN ≈ 250 (interpolated from the table)", "computed",
                  points=(("digits", 125.0),), metric="samples_to_target"),
        Reference("Greydanus 2020, mnist1d README (4,000 training samples)", "default mnist1d",
                  "logistic regression 32 %, MLP 68 %, CNN 94 %", "recalled",
                  points=(("mnist1d", 0.68),), metric="accuracy_at_max"),
    ),
    budget=lambda p: (f"MLP 2×{p.width} / CNN 3×{p.channels}, Adam, ≤ {p.epochs} epochs per size (early stopping, "
                      f"patience {p.patience}); targets {', '.join(f'{d} {a:.2f}' for d, a in p.targets)}"),
    budget_fields=("epochs", "patience"),  # early stopping binds first unless patience grows too
)
