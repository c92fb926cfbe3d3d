"""Small transforms: is an image classifier broken by shifting its input a few pixels?

Claim: image classifiers trained without augmentation are brittle to small, meaning-preserving
    translations: moving a digit by a pixel or two changes the prediction, although nothing about
    the digit changed; shift augmentation repairs what it covers. Measured fairly (a CNN ending in
    global pooling, digits already jittered in training), the claim does not hold for the
    convolutional arm: that is a finding. Measured here (quick, v2): the MLP and the classical
    learners break (MLP 0.89 → 0.69 / 0.40 at 1 / 2 px), the global-pooling CNN does not (0.94 clean,
    ≥ 0.93 shifted), though a 1-px shift flips 7.7 % of its predictions and a 2-px shift only 1 %:
    its stride-2 pooling aliases odd shifts (Azulay & Weiss's explanation; Zhang 2019).
Source: seeds/003_f388986fd4a90ec9.txt, seeds/004_4ead15eadcdcceb2.txt; Azulay & Weiss 2019
    (JMLR 20(184), "Why do deep convolutional networks generalize so poorly to small image
    transformations?"); Engstrom et al. 2019 (ICML, spatial robustness); Zhang 2019 (ICML,
    anti-aliased CNNs); Hosseini et al. 2017 (negative images).
Setup: scikit-learn's 8×8 digits in [0, 1] (zoomed ×`zoom` in the paper profile), pasted into a
    zero canvas (quick 16×16) at the centre plus a random jitter of up to ±`jitter` px per axis,
    for training and test alike (objects are never all at one offset). 1,200 training digits
    (200 of them a validation split for early stopping), the other 597 for testing. Knob: shift k
    in px; every test digit is moved by k px along one axis (up, down, left or right, drawn per
    image), so no pixel leaves the canvas. Relative to the object: k px is k/8 = 12.5 % of a digit's
    width per px in quick (6.25 % in paper, zoom 2). Azulay & Weiss shift 1 px on 224-px ImageNet
    images, well under 1 % of an object's width: our 1-px shift is a much larger transformation
    than theirs, so flip rates are not comparable number for number (fairness rule 9).
Deep contender: two standard arms for images, trained on the jittered digits with no augmentation,
    epochs with early stopping on the validation split (deeplimits.ensemble, seeds batched):
    an MLP (2 hidden ReLU layers) and a CNN ending in global max pooling (conv 3×3, 2×2 max-pool,
    conv 3×3, global max pool, FC 64, linear).
Remedy: the MLP trained with shift augmentation (every training digit also at `aug_copies` random
    axis-aligned shifts of 1 to `aug_shift` px; quick: 1 copy, up to 3 px).
Alternative (contrast): 1-nearest neighbour, RBF SVM and a random forest on the raw canvas pixels:
    classical learners with no built-in invariance.
Metric: accuracy on the shifted test digits (chance 0.1, success 0.9); flip_rate = fraction of test
    digits whose predicted label changes under the shift (Azulay & Weiss's P(top-1 change), here
    between 0 and k px). Secondary, knob-independent: clean accuracy, accuracy on digits rotated by
    the profile's angle (15°) and on negatives (1 − x). Diagnostic: training accuracy.
Reference figure: Azulay & Weiss 2019 Table 1: P(top-1 change) for a 1-px shift, ImageNet, embedded
    in a black canvas ("Black"): VGG16 0.18, ResNet50 0.20, DenseNet121 0.19 (0.06-0.07 when
    shifting the crop window). Engstrom et al. 2019: ResNet-18 71.3 % natural → 20.9 % under the
    worst rotation + translation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from deeplimits import datasets
from deeplimits.models import ImageMLP, fit_members, predict_labels
from deeplimits.probe import (
    Answer,
    Contender,
    Context,
    Fit,
    Knob,
    Metric,
    Probe,
    Profile,
    Reference,
    Task,
    Threshold,
    UsageError,
)

AXES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # axis-aligned shifts only (no √2-px diagonals)
DIGIT = 8  # sklearn digits are 8×8 px


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransformsProfile(Profile):
    canvas: int = 16
    zoom: int = 1  # digits upscaled ×zoom before pasting (paper: 2, objects twice as large)
    jitter: int = 1  # random placement of every digit, ± px per axis (training and test)
    n_train: int = 1200
    n_val: int = 200  # of the training digits, held out for early stopping
    n_test: int = 597  # test digits (at most the 1,797 - n_train left over)
    epochs: int = 60
    patience: int = 8
    batch: int = 64
    lr_mlp: float = 3e-3
    lr_cnn: float = 3e-3
    width: int = 256  # MLP hidden units
    channels: tuple[int, int] = (8, 32)  # CNN widths
    hidden: int = 64  # the CNN's FC head after global pooling
    pool: str = "max"  # the CNN's global pooling: max or mean
    aug_shift: int = 3  # the remedy's random shifts, px
    aug_copies: int = 1  # shifted copies of every training digit for the remedy
    trees: int = 50
    angle: float = 15.0  # degrees, for the rotation metric


PROFILES = {
    "smoke": TransformsProfile("smoke", knob=(0, 3), seeds=3, n_train=300, n_val=60, n_test=200, epochs=3,
                               patience=2,
                               width=32, channels=(4, 8), hidden=16, trees=10),
    "quick": TransformsProfile("quick", knob=(0, 1, 2), seeds=5),
    "paper": TransformsProfile("paper", knob=(0, 1, 2, 3, 4, 6), seeds=10, canvas=32, zoom=2, jitter=2,
                               epochs=200, patience=20, width=512, channels=(32, 64), hidden=128, aug_shift=6,
                               aug_copies=8, trees=500),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransformsData:
    """What a learner sees: jittered training digits and four views of the same test digits."""

    x_train: np.ndarray  # float32 [N, C, C]
    y_train: np.ndarray
    x_test: np.ndarray  # jittered test digits, not shifted
    x_shifted: np.ndarray  # the same digits moved by k px along one axis
    x_rotated: np.ndarray
    x_negated: np.ndarray


def max_shift(profile: TransformsProfile) -> int:
    """The largest shift that moves no digit pixel off the canvas."""
    return (profile.canvas - DIGIT * profile.zoom) // 2 - profile.jitter


def paste(x: np.ndarray, canvas: int, jitter: int, rng: np.random.Generator) -> np.ndarray:
    """Each s×s image into the centre of a zero canvas, moved by a random (dr, dc) in [-jitter, jitter]²."""
    n, s, _ = x.shape
    out = np.zeros((n, canvas, canvas), np.float32)
    corner = (canvas - s) // 2 + rng.integers(-jitter, jitter + 1, size=(n, 2))
    for i, (r, c) in enumerate(corner):
        out[i, r:r + s, c:c + s] = x[i]
    return out


def shift(x: np.ndarray, dr: np.ndarray, dc: np.ndarray) -> np.ndarray:
    """Move each image [N, H, W] by (dr[i], dc[i]) px; wrap-around only ever moves zero border pixels."""
    n, h, w = x.shape
    rows = (np.arange(h)[None, :] - dr[:, None]) % h
    cols = (np.arange(w)[None, :] - dc[:, None]) % w
    return x[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def axis_shift(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Every image moved by k px in one of the four axis directions (drawn per image)."""
    d = AXES[rng.integers(0, len(AXES), len(x))] * k
    return shift(x, d[:, 0], d[:, 1])


def make_task(k: int, rng: np.random.Generator, profile: TransformsProfile) -> Task:
    from scipy import ndimage

    if k > max_shift(profile):
        raise UsageError(f"shift {k} px would move digits off the {profile.canvas}-px canvas "
                         f"(at most {max_shift(profile)} px in the {profile.name} profile)")
    x, y = datasets.digits()
    if profile.zoom > 1:
        x = ndimage.zoom(x, (1, profile.zoom, profile.zoom), order=1).clip(0, 1).astype(np.float32)
    x_tr, y_tr, x_te, y_te = datasets.split(x, y, profile.n_train, profile.n_test, rng)
    x_tr = paste(x_tr, profile.canvas, profile.jitter, rng)
    x_te = paste(x_te, profile.canvas, profile.jitter, rng)
    rotated = ndimage.rotate(x_te, profile.angle, axes=(1, 2), reshape=False, order=1).clip(0, 1)
    public = TransformsData(x_tr, y_tr, x_te, axis_shift(x_te, k, rng), rotated.astype(np.float32), 1.0 - x_te)
    return Task(public, hidden=y_te)


VIEWS = ("x_test", "x_shifted", "x_rotated", "x_negated")


def score(task: Task, output: dict[str, np.ndarray], ctx: Context) -> dict[str, float]:
    """Accuracies of the predicted labels per view, and how often the shift changed the prediction."""
    y = task.hidden
    return {"accuracy": float((output["x_shifted"] == y).mean()),
            "flip_rate": float((output["x_shifted"] != output["x_test"]).mean()),
            "clean_accuracy": float((output["x_test"] == y).mean()),
            "rot_accuracy": float((output["x_rotated"] == y).mean()),
            "neg_accuracy": float((output["x_negated"] == y).mean())}


# --- deep arms and remedy: trained on jittered digits, all seeds at once --------------------------
class GlobalPoolCNN(nn.Module):
    """conv-maxpool-conv, global pooling, a small FC head: the standard image arm of fairness rule 1."""

    def __init__(self, channels: tuple[int, int], hidden: int, pool: str = "max") -> None:
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU())
        self.pool = pool
        self.head = nn.Sequential(nn.Linear(c2, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        h = self.features(x[:, None])
        return self.head(h.amax((2, 3)) if self.pool == "max" else h.mean((2, 3)))


def _split(public: TransformsData, ctx: Context) -> tuple[np.ndarray, ...]:
    """The contender's own validation split of the training digits (early stopping only)."""
    n_val = ctx.profile.n_val
    idx = ctx.rng().permutation(len(public.x_train))
    return (public.x_train[idx[n_val:]], public.y_train[idx[n_val:]],
            public.x_train[idx[:n_val]], public.y_train[idx[:n_val]])


def _augment(x: np.ndarray, y: np.ndarray, prof: TransformsProfile, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
    """The originals plus `aug_copies` copies, each digit moved by a random axis shift of 1..aug_shift px."""
    copies = [x] + [
        shift(x, *(AXES[rng.integers(0, 4, len(x))] * rng.integers(1, prof.aug_shift + 1, (len(x), 1))).T)
        for _ in range(prof.aug_copies)]
    return np.concatenate(copies), np.tile(y, len(copies))


def _train(publics: list[TransformsData], ctxs: list[Context], arm: str, augment: bool = False) -> list[Answer]:
    prof: TransformsProfile = ctxs[0].profile
    parts = [_split(p, c) for p, c in zip(publics, ctxs, strict=True)]
    if augment:
        parts = [(*_augment(x, y, prof, c.rng()), xv, yv) for (x, y, xv, yv), c in zip(parts, ctxs, strict=True)]
    x, y, xv, yv = (np.stack(a) for a in zip(*parts))
    if arm == "mlp":
        factory, lr = (lambda: ImageMLP(prof.canvas ** 2, prof.width)), prof.lr_mlp
    else:
        factory, lr = (lambda: GlobalPoolCNN(prof.channels, prof.hidden, prof.pool)), prof.lr_cnn
    ens, stats = fit_members(factory, [c.rng_seed for c in ctxs], x, y, xv, yv, epochs=prof.epochs,
                             batch=prof.batch, lr=lr, patience=prof.patience, device=ctxs[0].device)
    preds = {v: predict_labels(ens, np.stack([getattr(p, v) for p in publics]), ctxs[0].device) for v in VIEWS}
    return [Answer({v: preds[v][i] for v in VIEWS}, {"train_accuracy": float(stats["train"][i])})
            for i in range(len(publics))]


def mlp(publics: list[TransformsData], ctxs: list[Context]) -> list[Answer]:
    return _train(publics, ctxs, "mlp")


def cnn(publics: list[TransformsData], ctxs: list[Context]) -> list[Answer]:
    return _train(publics, ctxs, "cnn")


def mlp_augmented(publics: list[TransformsData], ctxs: list[Context]) -> list[Answer]:
    return _train(publics, ctxs, "mlp", augment=True)


# --- alternatives (contrast): classical learners on raw pixels ------------------------------------
def _classical(make_model):
    def fn(public: TransformsData, ctx: Context) -> dict[str, np.ndarray]:
        model = make_model(ctx).fit(public.x_train.reshape(len(public.x_train), -1), public.y_train)
        return {v: model.predict(getattr(public, v).reshape(len(public.x_test), -1)) for v in VIEWS}

    return fn


def _knn(ctx: Context):
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=1)


def _svm(ctx: Context):
    from sklearn.svm import SVC

    return SVC(C=10.0, gamma="scale")


def _forest(ctx: Context):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(ctx.profile.trees, random_state=ctx.rng_seed % 2**31, n_jobs=1)


# --- the probe ------------------------------------------------------------------------------
TUNING = ("grid at shift 0 (the easy end) on the 200-digit validation split, quick profile, 3 seeds: "
          "{grid}; picked {pick}")

PROBE = Probe(
    id="small_transforms",
    family="perception",
    claim="An image classifier trained without augmentation misclassifies digits shifted by a few pixels "
          "(and rotated or negated); shift augmentation repairs the shifts it covers.",
    sources=("seeds/003_f388986fd4a90ec9.txt", "seeds/004_4ead15eadcdcceb2.txt",
             "Azulay & Weiss 2019, Why do deep convolutional networks generalize so poorly to small image "
             "transformations?, JMLR 20(184)",
             "Engstrom et al. 2019, Exploring the landscape of spatial robustness, ICML",
             "Zhang 2019, Making convolutional networks shift-invariant again, ICML",
             "Hosseini et al. 2017, On the limitation of CNNs in recognizing negative images, ICMLA"),
    version=2,
    knob=Knob("shift", "test-time translation of every test digit along one axis (quick: 1 px = 12.5 % of "
              "the 8-px digit's width; paper, zoom 2: 6.25 %)", unit="px",
              validate=lambda v: isinstance(v, int) and 0 <= v <= 8),
    metrics=(
        Metric("accuracy", "test accuracy on the shifted digits", chance=0.1, lo=0.0, hi=1.0),
        Metric("flip_rate", "fraction of test digits whose predicted label changes under the shift",
               direction="lower", lo=0.0, hi=1.0),
        Metric("clean_accuracy", "test accuracy on the unshifted (jittered) digits", chance=0.1, lo=0.0, hi=1.0),
        Metric("rot_accuracy", "test accuracy on digits rotated by the profile's angle (15°)",
               chance=0.1, lo=0.0, hi=1.0),
        Metric("neg_accuracy", "test accuracy on negated digits (1 − x on the whole canvas)",
               chance=0.1, lo=0.0, hi=1.0),
        Metric("train_accuracy", "accuracy on the arm's own training digits", lo=0.0, hi=1.0, diagnostic=True),
    ),
    rule=Threshold("accuracy", success=0.9),
    fit=Fit("train_accuracy", 0.95),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("mlp", "deep", mlp, "MLP 2×256 ReLU, Adam, epochs with early stopping, no augmentation",
                  batched=True, tuning=TUNING.format(grid="lr {3e-4, 1e-3, 3e-3} × width {128, 256} (patience 5)",
                                                     pick="lr 3e-3, width 256 (val 0.90)")),
        Contender("cnn", "deep", cnn, "CNN conv 8-maxpool-conv 32, global max pool, FC 64; Adam, "
                  "epochs with early stopping, no augmentation", batched=True,
                  tuning=TUNING.format(grid="(a) channels (8, 16), linear head, patience 5: lr {1e-3, 3e-3, 1e-2} × "
                                       "global pool {max, mean} -> max, lr 1e-2 (val 0.933; mean pool ≤ 0.84); (b) "
                                       "patience 8: (8, 16) linear head lr 1e-2 (val 0.953) vs (8, 32) + FC 64 lr 3e-3",
                                       pick="(8, 32) + FC 64, lr 3e-3, global max pool (val 0.972); wider "
                                       "convolutions cost more than the CPU budget allows")),
        Contender("mlp_augmented", "remedy", mlp_augmented,
                  "the MLP trained with random axis shifts of 1..aug_shift px (quick 3, paper 6)", batched=True),
        Contender("knn", "alternative", _classical(_knn), "1-nearest neighbour on raw pixels (no invariance)"),
        Contender("svm", "alternative", _classical(_svm), "RBF SVM on raw pixels, C = 10, gamma 'scale'"),
        Contender("random_forest", "alternative", _classical(_forest), "random forest on raw pixels"),
    ),
    references=(
        Reference("Azulay & Weiss 2019, Table 1 (ImageNet, 1-px shift inside a black canvas)",
                  "P(top-1 change) between consecutive 1-px shifts; VGG16 / ResNet50 / DenseNet121; a 1-px "
                  "shift there is < 1 % of an object's width, here 12.5 % (quick)",
                  "0.18 / 0.20 / 0.19 (crop-window shifts: 0.062 / 0.061 / 0.068)", "verbatim",
                  points=((1, 0.20),), metric="flip_rate"),
        Reference("Engstrom et al. 2019 (ResNet-18, ImageNet; MadryLab/spatial-pytorch)",
                  "worst case over rotations ≤ 30° and translations ≤ 24 px (grid)",
                  "71.3 % natural → 20.9 % (grid); augmentation 68.9 → 38.1 %", "verbatim"),
    ),
    budget=lambda p: (f"MLP 2×{p.width} / CNN {p.channels[0]}-{p.channels[1]} global max pool + FC {p.hidden}, "
                      f"Adam, ≤ {p.epochs} epochs (patience {p.patience}), {p.n_train - p.n_val} training digits "
                      f"jittered ±{p.jitter} px on a {p.canvas}-px canvas"),
    budget_fields=("epochs", "patience"),  # early stopping binds first unless patience grows too
)
