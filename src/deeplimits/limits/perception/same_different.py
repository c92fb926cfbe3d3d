"""Same-different: CNNs learn spatial relations from few images but not "are these two the same?".

Claim: a convolutional network trained on a few hundred to a few thousand images learns a spatial
    relation (are two items side by side or one above the other?) but not the same-different
    relation (are the two items identical?) on the very same images; same-different needs far more
    data, while an explicit segment-and-compare procedure solves it outright.
Source: seeds/000_aa28131255717d31.txt, seeds/004_4ead15eadcdcceb2.txt; Kim, Ricci & Serre 2018
    ("Not-so-CLEVR", PSVRT); Funke et al. 2021 (J. Vision, SVRT case study: ResNet-50 at 100 / 1k /
    28k training images); Fleuret et al. 2011 (SVRT).
Setup: PSVRT-style images (Kim et al.): two m×m patterns of random ±1 bits on a zero n×n canvas,
    placed so that they do not touch. Every image carries two labels drawn independently: SD =
    the two patterns are identical (a "different" pair is re-drawn until it differs), SR = the
    centres are offset more vertically than horizontally. Knob: the number of training images
    (the fewer, the harder); 1,000 fresh test images.
Deep contender: a small CNN (2 conv + max-pool layers, 1 hidden FC layer), two copies per seed
    trained on the same images with the same batches and budget: one on the SD labels, one on the
    SR labels (Adam, fixed number of steps whatever the training-set size).
Alternative: segmentation (scipy.ndimage.label, 8-connected) + explicit comparison: the two
    components' crops are compared for equality (SD) and their centroids for the offset (SR).
Metric: test accuracy on SD and SR (chance 0.5). Verdict kind gap: SR accuracy − SD accuracy of
    the same CNN at the same budget, margin 0.15 (Funke: 26.6 points at 1k images, Kim: 32.7 points).
    Positive control: the SR net reaches 0.9 at the largest training set.
Reference figure: Funke et al. 2021, ResNet-50 from scratch, class means: SD / SR = 50.7 / 79.6 % at
    100 images, 68.8 / 95.4 % at 1k, 92.8 / 98.2 % at 28k; Kim et al. 2018 CNNs: SD 63.2 %, SR 95.9 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deeplimits.ensemble import Ensemble, seeded, train
from deeplimits.probe import Contender, Context, Control, Gap, Knob, Metric, Probe, Profile, Reference


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SameDifferentProfile(Profile):
    image: int = 16  # canvas side n (PSVRT default 60)
    item: int = 3  # pattern side m (PSVRT default 4)
    n_test: int = 1000
    steps: int = 1000
    batch: int = 32
    lr: float = 1e-3
    channels: tuple[int, int] = (8, 16)
    hidden: int = 32
    n_train_eval: int = 1000  # training images scored for the memorisation diagnostic


PROFILES = {
    "smoke": SameDifferentProfile("smoke", knob=(200, 2000), seeds=2, steps=150, n_test=400, n_train_eval=200),
    "quick": SameDifferentProfile("quick", knob=(100, 400, 1600, 6400), seeds=5, steps=1000),
    "paper": SameDifferentProfile("paper", knob=(100, 1000, 10_000, 28_000, 100_000), seeds=10, image=60, item=4,
                                  steps=100_000, batch=50, lr=1e-4, channels=(32, 64), hidden=256, n_test=10_000),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SameDifferentTask:
    x_train: np.ndarray  # float32 [N, 1, n, n], values in {-1, 0, 1}
    sd_train: np.ndarray  # float32 [N]: 1 = the two patterns are identical
    sr_train: np.ndarray  # float32 [N]: 1 = arranged vertically
    x_test: np.ndarray
    sd_test: np.ndarray
    sr_test: np.ndarray


def _place(n: int, m: int, rng: np.random.Generator) -> tuple[tuple[int, int], tuple[int, int]]:
    """Top-left corners of two m×m items that keep a 1-px gap and are not on a diagonal (SR defined)."""
    while True:
        (r1, c1), (r2, c2) = rng.integers(0, n - m + 1, size=(2, 2))
        dr, dc = abs(r1 - r2), abs(c1 - c2)
        if (dr > m or dc > m) and dr != dc:
            return (int(r1), int(c1)), (int(r2), int(c2))


def draw_images(count: int, n: int, m: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PSVRT images with two independent labels: same (SD) and vertical arrangement (SR)."""
    x = np.zeros((count, 1, n, n), np.float32)
    sd = rng.integers(0, 2, count).astype(np.float32)
    sr = np.zeros(count, np.float32)
    for i in range(count):
        a = rng.choice(np.array([-1.0, 1.0], np.float32), size=(m, m))
        b = a.copy()
        while not sd[i] and np.array_equal(a, b):  # "different" is re-drawn until it differs
            b = rng.choice(np.array([-1.0, 1.0], np.float32), size=(m, m))
        (r1, c1), (r2, c2) = _place(n, m, rng)
        x[i, 0, r1:r1 + m, c1:c1 + m] = a
        x[i, 0, r2:r2 + m, c2:c2 + m] = b
        sr[i] = float(abs(r1 - r2) > abs(c1 - c2))
    return x, sd, sr


def make_task(n_train: int, rng: np.random.Generator, profile: SameDifferentProfile) -> SameDifferentTask:
    x, sd, sr = draw_images(n_train, profile.image, profile.item, rng)
    xt, sdt, srt = draw_images(profile.n_test, profile.image, profile.item, rng)
    return SameDifferentTask(x, sd, sr, xt, sdt, srt)


# --- deep contender: one CNN per label, same images, same batches, same budget ------------------
def make_cnn(n: int, channels: tuple[int, int], hidden: int) -> nn.Module:
    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * (n // 4) ** 2, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Flatten(0),
    )


def _bce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(out, y, reduction="none").mean(-1)


def _accuracy(ens: Ensemble, x: torch.Tensor, y: torch.Tensor, chunk: int = 500) -> np.ndarray:
    """Per-member accuracy; x [E, N, ...], y [E, N]."""
    with torch.no_grad():
        out = torch.cat([ens(x[:, i:i + chunk]) for i in range(0, x.shape[1], chunk)], 1)
    return ((out > 0).float() == y).float().mean(-1).cpu().numpy()


def cnn_two_heads(tasks: list[SameDifferentTask], ctxs: list[Context]) -> list[dict[str, float]]:
    """Batched over seeds; members [2i, 2i+1] are seed i's SD and SR nets."""
    prof: SameDifferentProfile = ctxs[0].profile
    device = ctxs[0].device
    members = [seeded(lambda: make_cnn(prof.image, prof.channels, prof.hidden), c.rng_seed + head)
               for c in ctxs for head in (0, 1)]
    ens = Ensemble(members).to(device)
    idx = [c.rng().integers(0, len(t.x_train), size=(prof.steps, prof.batch)) for t, c in zip(tasks, ctxs, strict=True)]
    x_tr = [torch.as_tensor(t.x_train) for t in tasks]
    y_tr = [(torch.as_tensor(t.sd_train), torch.as_tensor(t.sr_train)) for t in tasks]

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for i in range(len(tasks)):
            j = torch.as_tensor(idx[i][step])
            xs += [x_tr[i][j]] * 2
            ys += [y_tr[i][0][j], y_tr[i][1][j]]
        return torch.stack(xs).to(device), torch.stack(ys).to(device)

    train(ens, batches, _bce, prof.steps, prof.lr, "adam")

    def pairs(x: list[np.ndarray], sd: list[np.ndarray], sr: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        xx = torch.as_tensor(np.stack([a for a in x for _ in (0, 1)]), device=device)
        yy = torch.as_tensor(np.stack([b for a, c in zip(sd, sr, strict=True) for b in (a, c)]), device=device)
        return xx, yy

    k = prof.n_train_eval
    test = _accuracy(ens, *pairs([t.x_test for t in tasks], [t.sd_test for t in tasks], [t.sr_test for t in tasks]))
    fit = _accuracy(ens, *pairs([t.x_train[:k] for t in tasks], [t.sd_train[:k] for t in tasks],
                                [t.sr_train[:k] for t in tasks]))
    return [{"sd_accuracy": float(test[2 * i]), "sr_accuracy": float(test[2 * i + 1]),
             "sd_train_accuracy": float(fit[2 * i]), "sr_train_accuracy": float(fit[2 * i + 1])}
            for i in range(len(tasks))]


# --- alternative: segment the two items, then compare them explicitly ---------------------------
def segment_compare(task: SameDifferentTask, ctx: Context) -> dict[str, float]:
    from scipy import ndimage

    sd_pred = np.zeros(len(task.x_test), np.float32)
    sr_pred = np.zeros(len(task.x_test), np.float32)
    for i, img in enumerate(task.x_test[:, 0]):
        labels, count = ndimage.label(img != 0, structure=np.ones((3, 3)))
        if count != 2:  # cannot happen with the 1-px gap; guess "different, horizontal"
            continue
        boxes = ndimage.find_objects(labels)
        a, b = (img[s] * (labels[s] == k + 1) for k, s in enumerate(boxes))
        sd_pred[i] = float(a.shape == b.shape and np.array_equal(a, b))
        (r1, c1), (r2, c2) = ndimage.center_of_mass(img != 0, labels, [1, 2])
        sr_pred[i] = float(abs(r1 - r2) > abs(c1 - c2))
    return {"sd_accuracy": float((sd_pred == task.sd_test).mean()),
            "sr_accuracy": float((sr_pred == task.sr_test).mean())}


# --- the probe ------------------------------------------------------------------------------
PROBE = Probe(
    id="same_different",
    family="perception",
    claim="A CNN learns a spatial relation between two items from few images but not whether the two "
          "items are the same; same-different needs far more data on the very same images.",
    sources=("seeds/000_aa28131255717d31.txt", "seeds/004_4ead15eadcdcceb2.txt",
             "Kim, Ricci & Serre 2018, Not-so-CLEVR (PSVRT), Interface Focus 8:20180011",
             "Funke et al. 2021, Five points to check when comparing visual perception in humans and "
             "machines, J. Vision (SVRT case study)",
             "Fleuret et al. 2011, Comparing machines and humans on a visual categorization test, PNAS"),
    version=1,
    knob=Knob("n_train", "training images (the same images carry the SD and the SR labels)", unit="images",
              harder="decreasing", validate=lambda v: isinstance(v, int) and 10 <= v <= 1_000_000, log_scale=True),
    metrics=(
        Metric("sd_accuracy", "same-different test accuracy", chance=0.5, lo=0.0, hi=1.0),
        Metric("sr_accuracy", "spatial-relation (vertical vs horizontal) test accuracy, same images",
               chance=0.5, lo=0.0, hi=1.0),
        Metric("sd_train_accuracy", "SD accuracy on (up to 1,000) training images: memorisation", lo=0.0, hi=1.0),
        Metric("sr_train_accuracy", "SR accuracy on (up to 1,000) training images", lo=0.0, hi=1.0),
    ),
    rule=Gap("sd_accuracy", margin=0.15, baseline_metric="sr_accuracy"),
    control=Control(metric="sr_accuracy", success=0.9,
                    description="the same CNN learns the spatial relation (SR) on the same images, largest set"),
    profiles=PROFILES,
    make_task=make_task,
    contenders=(
        Contender("cnn", "deep", cnn_two_heads,
                  "2 conv + max-pool layers, FC head; one net for SD and one for SR on the same batches",
                  batched=True),
        Contender("segment_compare", "alternative", segment_compare,
                  "connected components (scipy.ndimage.label) + explicit crop equality / centroid offset"),
    ),
    references=(
        Reference("Funke et al. 2021 (SVRT, ResNet-50 from scratch, mean of 9 SD problems)",
                  "SVRT 128×128, best of 3 learning rates; test accuracy",
                  "SD 50.7 % (100 images), 68.8 % (1k), 92.8 % (28k)", "verbatim",
                  points=((100, 0.507), (1000, 0.688), (28_000, 0.928)), metric="sd_accuracy"),
        Reference("Funke et al. 2021 (SVRT, ResNet-50 from scratch, mean of 13 SR problems)",
                  "same runs as above", "SR 79.6 % (100 images), 95.4 % (1k), 98.2 % (28k)", "verbatim",
                  points=((100, 0.796), (1000, 0.954), (28_000, 0.982)), metric="sr_accuracy"),
        Reference("Kim, Ricci & Serre 2018 (SVRT, ~1M training images, 2-6 layer CNNs)",
                  "per-problem accuracies digitised by Funke et al.", "SD mean 63.2 %, SR mean 95.9 %",
                  "read off a plot"),
    ),
    budget=lambda p: (f"CNN conv {p.channels[0]}-{p.channels[1]} + FC {p.hidden}, Adam lr {p.lr}, "
                      f"{p.steps:,} steps × batch {p.batch}, {p.image}×{p.image} canvas, {p.item}×{p.item} items"),
)
