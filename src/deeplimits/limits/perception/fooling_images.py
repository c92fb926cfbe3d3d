"""Fooling images: a trained classifier gives near-certain labels to optimised noise.

Claim: starting from uniform noise, a short optimisation of the input yields, for nearly every class,
    an image that looks like no digit yet is labelled with ≥ 99 % confidence; the classifier's own
    confidence cannot flag it.
Source: seeds/002_c08bf31bab69b760.txt; Nguyen, Yosinski & Clune 2015, "Deep neural networks are
    easily fooled", CVPR (MNIST: < 50 generations to ≥ 99.99 % for every digit; gradient ascent also
    fools); the adaptive-attack rule: Carlini & Wagner 2017, "Adversarial examples are not easily
    detected"; Tramèr, Carlini, Brendel & Mądry 2020, "On adaptive attacks to adversarial example
    defenses".
Setup: scikit-learn's bundled 8×8 digits in [0, 1] (1,297 training images, of which 20 % are a
    held-out split for early stopping and for calibrating reject thresholds; 300 unlabelled test
    digits). Knob: optimisation steps (0 = the uniform-noise start itself; quick: 0, 30, 100; at 10
    steps the deep arms were fooled on 45-67 % of the targets). The contender returns its
    trained model; the PROBE runs the fooling attack against it, reject option included (adaptive,
    white-box). Per class, `restarts` uniform-noise images are optimised by signed gradient ascent
    (step `grad_step`, projected to [0, 1]) on
        log p(target | x) − λ·[reject score(x) − threshold + margin]₊ − λ·[τ_far − d_train(x)]₊,
    once for each λ in `penalties` (λ = 0 is Nguyen's non-adaptive attack); a start counts as fooled
    if any λ fools. Hand-written: no attack library optimises through a model's own reject option.
    An image FOOLS when (1) the model gives its target digit ≥ 0.99 softmax, (2) the model does not
    reject it, and (3) it is unrecognisable: its Euclidean distance to the nearest training digit
    d_train(x) exceeds τ_far, the 95th percentile of that distance over the test digits (a real digit
    is that far from every training digit 5 % of the time; on 8×8 digits nearest-neighbour pixel
    distance is a strong judge: 3-NN classifies ≈ 98 % of test digits correctly).
    A model is a torch module giving logits over ≥ 10 classes (0-9 are the digits; an argmax on any
    further class is a rejection) and may carry a differentiable `reject_score(x)` with a
    `reject_threshold` (score above it: rejected).
Deep contender: two arms, plain softmax classifiers that accept every input, ERM-trained (Adam,
    epochs with early stopping on the held-out split, several seeds at once with deeplimits.ensemble):
    an MLP 64-128-128-10 and a CNN ending in global average pooling (conv 16 - maxpool - conv 32 -
    conv 32 - GAP - linear); hyperparameters from the adversarial probe's search at its clean end
    (same data, same split, same objective).
Remedy: (a) density_reject — the MLP plus a reject option: a Gaussian mixture of the training pixels
    (sklearn, 10 full-covariance components) rejects inputs whose log-likelihood falls below the 5th
    percentile of held-out digits; its log-likelihood is evaluated in torch from the fitted
    parameters so the attacker differentiates through it. (b) noise_class — Nguyen's retraining
    defence in one round: an 11th "noise" class trained on uniform-noise images (one digit class's
    worth) that the model draws itself.
Metric: trust score = the lower of (a) accuracy on test digits, a rejected digit counting as an
    error, and (b) the share of noise starts that do NOT end as fooling images (chance 0.1, success
    ≥ 0.5: a model that rejects everything or never learnt fails (a); one fooled on most targets
    fails (b)). Diagnostics: fooled fraction (adaptive and non-adaptive), clean accuracy, rejection
    rate of test digits, median target confidence of the optimised images, their nearest-training-
    digit distance over the test digits' (median), training accuracy.
Reference figure: Nguyen et al. 2015, MNIST LeNet: every run fools every digit at ≥ 99.99 % within
    < 50 generations (evolution; here the gradient variant); the retraining defence does not stop new
    fooling images on MNIST.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from deeplimits.datasets import digits, split
from deeplimits.models import ImageMLP, PooledCNN, fit_members
from deeplimits.probe import Answer, Contender, Context, Fit, Knob, Metric, Probe, Profile, Reference, Task, Threshold

CONFIDENT = 0.99  # the claim's "near-certain"


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FoolingProfile(Profile):
    n_train: int = 1297  # of which val_share is held out
    val_share: float = 0.2
    n_test: int = 300
    epochs: int = 40  # early stopping on the held-out split
    patience: int = 5
    batch: int = 64
    mlp_width: int = 128
    mlp_lr: float = 1e-2
    cnn_width: int = 16
    cnn_lr: float = 1e-2
    restarts: int = 2  # noise starts per class
    grad_step: float = 0.02  # signed-gradient step on [0, 1] pixels
    penalties: tuple[float, ...] = (0.0, 1.0, 10.0)  # λ of the adaptive attack (0: non-adaptive)
    margin: float = 1.0  # the attacker aims this far inside the reject threshold (nats) and τ_far (pixels/10)
    far_quantile: float = 0.95  # τ_far: this quantile of test digits' nearest-training-digit distance
    gmm_components: int = 10
    reject_quantile: float = 0.05  # share of held-out digits the reject option refuses
    n_noise: int = 260  # uniform-noise training images of the noise class (~ one digit class)


PROFILES = {
    "smoke": FoolingProfile("smoke", knob=(0, 30), seeds=3, n_train=400, n_test=60, epochs=4, cnn_width=4,
                            restarts=1, penalties=(0.0, 10.0), gmm_components=2, n_noise=40),
    "quick": FoolingProfile("quick", knob=(0, 30, 100), seeds=3),
    "paper": FoolingProfile("paper", knob=(0, 1, 3, 10, 30, 100, 300, 1000), seeds=10, n_test=500, epochs=100,
                            patience=10, restarts=10, penalties=(0.0, 0.1, 1.0, 10.0, 100.0)),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Digits:
    """What a learner sees: labelled training and held-out digits, unlabelled test digits."""

    steps: int
    x_train: np.ndarray  # [n, 1, 8, 8] in [0, 1]
    y_train: np.ndarray
    x_val: np.ndarray  # held out: early stopping and reject thresholds
    y_val: np.ndarray
    x_test: np.ndarray


@dataclass(frozen=True)
class Attack:
    """What only the probe has: test labels and the attacker's noise starts."""

    y_test: np.ndarray
    starts: np.ndarray  # [10 * restarts, 1, 8, 8] uniform noise
    targets: np.ndarray  # [10 * restarts]


def make_task(steps: int, rng: np.random.Generator, profile: FoolingProfile) -> Task:
    x, y = digits()
    x_tr, y_tr, x_te, y_te = split(x[:, None], y, profile.n_train, min(profile.n_test, len(x) - profile.n_train),
                                   rng)
    n_val = int(len(x_tr) * profile.val_share)
    starts = rng.random((10 * profile.restarts, 1, 8, 8), dtype=np.float32)
    public = Digits(int(steps), x_tr[n_val:], y_tr[n_val:], x_tr[:n_val], y_tr[:n_val], x_te)
    return Task(public, Attack(y_te, starts, np.repeat(np.arange(10), profile.restarts)))


# --- deep arms: plain softmax classifiers ------------------------------------------------------
def train(factory, lr: float, data: list[tuple[np.ndarray, ...]], seeds: list[int], prof: FoolingProfile
          ) -> tuple[list[nn.Module], np.ndarray]:
    """ERM with early stopping, one member per seed on its (x, y, x_val, y_val); eval-mode modules."""
    x, y, xv, yv = (np.stack(a) for a in zip(*data))
    ens, stats = fit_members(factory, seeds, x, y, xv, yv, epochs=prof.epochs, batch=prof.batch, lr=lr,
                             patience=prof.patience)
    return [ens.member(i).eval() for i in range(len(seeds))], stats["train"]


def plain(arch: str):
    def fn(tasks: list[Digits], ctxs: list[Context]) -> list[Answer]:
        prof: FoolingProfile = ctxs[0].profile
        factory = ((lambda: ImageMLP(64, prof.mlp_width)) if arch == "mlp" else (lambda: PooledCNN(1, prof.cnn_width)))
        lr = prof.mlp_lr if arch == "mlp" else prof.cnn_lr
        models, acc = train(factory, lr, [(t.x_train, t.y_train, t.x_val, t.y_val) for t in tasks],
                            [c.rng_seed for c in ctxs], prof)
        return [Answer(m, {"train_accuracy": float(a)}) for m, a in zip(models, acc, strict=True)]

    fn.__name__ = arch
    return fn


# --- remedy (a): a reject option from a density model of the inputs ----------------------------------
class TorchGMM(nn.Module):
    """log p(x) of a fitted sklearn GaussianMixture (full covariances), in torch so it can be differentiated:
    the same formula as sklearn's score_samples, from its means, weights and precision Cholesky factors."""

    def __init__(self, gmm: Any) -> None:
        super().__init__()
        self.register_buffer("means", torch.as_tensor(gmm.means_, dtype=torch.float32))
        self.register_buffer("chol", torch.as_tensor(gmm.precisions_cholesky_, dtype=torch.float32))
        self.register_buffer("log_w", torch.as_tensor(np.log(gmm.weights_), dtype=torch.float32))
        self.register_buffer("log_det", self.chol.diagonal(dim1=1, dim2=2).log().sum(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        z = torch.einsum("nd,kde->nke", x, self.chol) - torch.einsum("kd,kde->ke", self.means, self.chol)
        dim = x.shape[1]
        log_prob = -0.5 * (dim * np.log(2 * np.pi) + z.pow(2).sum(-1)) + self.log_det
        return torch.logsumexp(log_prob + self.log_w, dim=-1)


class DensityGuard(nn.Module):
    """A classifier with a reject option: reject_score = −log p(x) under the density; above the threshold."""

    def __init__(self, classifier: nn.Module, density: TorchGMM, threshold: float) -> None:
        super().__init__()
        self.classifier, self.density, self.reject_threshold = classifier, density, float(threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)

    def reject_score(self, x: torch.Tensor) -> torch.Tensor:
        return -self.density(x)


def density_reject(tasks: list[Digits], ctxs: list[Context]) -> list[Answer]:
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    prof: FoolingProfile = ctxs[0].profile
    answers = plain("mlp")(tasks, ctxs)
    out = []
    for answer, task, ctx in zip(answers, tasks, ctxs, strict=True):
        with threadpool_limits(1):  # 64x64 covariances: extra BLAS threads only add contention
            gmm = GaussianMixture(prof.gmm_components, covariance_type="full", reg_covar=1e-2,
                                  random_state=ctx.rng_seed % 2**32).fit(task.x_train.reshape(len(task.x_train), -1))
        density = TorchGMM(gmm)
        with torch.no_grad():
            held_out = density(torch.as_tensor(task.x_val)).numpy()
        guard = DensityGuard(answer.output, density, -np.quantile(held_out, prof.reject_quantile)).eval()
        out.append(Answer(guard, answer.diagnostics))
    return out


# --- remedy (b): an extra class trained on noise (Nguyen's retraining defence, one round) ------------
def noise_class(tasks: list[Digits], ctxs: list[Context]) -> list[Answer]:
    prof: FoolingProfile = ctxs[0].profile
    data = []
    for task, ctx in zip(tasks, ctxs, strict=True):
        rng = ctx.rng()
        noise = [rng.random((n, 1, 8, 8), dtype=np.float32) for n in (prof.n_noise, prof.n_noise // 5)]
        data.append((np.concatenate([task.x_train, noise[0]]), np.r_[task.y_train, np.full(prof.n_noise, 10)],
                     np.concatenate([task.x_val, noise[1]]), np.r_[task.y_val, np.full(len(noise[1]), 10)]))
    models, acc = train(lambda: ImageMLP(64, prof.mlp_width, 11), prof.mlp_lr, data, [c.rng_seed for c in ctxs], prof)
    return [Answer(m, {"train_accuracy": float(a)}) for m, a in zip(models, acc, strict=True)]


# --- the probe's attack and measurement ---------------------------------------------------------
def nearest_distance(x: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of each image to its nearest training digit (differentiable)."""
    return torch.cdist(x.reshape(len(x), -1), train.reshape(len(train), -1)).min(-1).values


def has_reject(model: nn.Module) -> bool:
    return callable(getattr(model, "reject_score", None)) and hasattr(model, "reject_threshold")


def verdicts(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, train: torch.Tensor, far: float
             ) -> dict[str, np.ndarray]:
    """Per image: target confidence, accepted by the model, unrecognisable, fooled."""
    with torch.no_grad():
        p = torch.softmax(model(x), -1)
        accepted = p.argmax(-1) < 10
        if has_reject(model):
            accepted &= model.reject_score(x) <= model.reject_threshold
        conf = p[torch.arange(len(x)), targets]
        far_away = nearest_distance(x, train) > far
    fooled = (conf >= CONFIDENT) & accepted & far_away
    return {"confidence": conf.numpy(), "accepted": accepted.numpy(), "far": far_away.numpy(), "fooled": fooled.numpy()}


def fool(model: nn.Module, starts: np.ndarray, targets: np.ndarray, train: torch.Tensor, far: float, steps: int,
         penalty: float, prof: FoolingProfile) -> torch.Tensor:
    """Signed gradient ascent from noise on log p(target) minus hinge penalties for being rejected and for
    coming closer to a training digit than τ_far (white-box through the model's reject option)."""
    x = torch.as_tensor(starts).clone()
    t = torch.as_tensor(targets)
    reject = has_reject(model)
    for _ in range(steps):
        x.requires_grad_(True)
        objective = torch.log_softmax(model(x), -1)[torch.arange(len(x)), t]
        if penalty > 0:
            if reject:
                objective = objective - penalty * torch.relu(model.reject_score(x) - model.reject_threshold
                                                             + prof.margin)
            objective = objective - penalty * torch.relu(far + prof.margin / 10 - nearest_distance(x, train))
        grad, = torch.autograd.grad(objective.sum(), x)
        x = (x.detach() + prof.grad_step * grad.sign()).clamp(0.0, 1.0)
    return x.detach()


def score(task: Task, model: nn.Module, ctx: Context) -> dict[str, float]:
    prof: FoolingProfile = ctx.profile
    data, attack = task.public, task.hidden
    model.eval()
    train = torch.as_tensor(data.x_train)
    test = torch.as_tensor(data.x_test)
    with torch.no_grad():
        far = float(np.quantile(nearest_distance(test, train).numpy(), prof.far_quantile))
    zeros = torch.zeros(len(test), dtype=torch.long)
    clean = verdicts(model, test, zeros, train, far)
    with torch.no_grad():
        correct = (model(test).argmax(-1).numpy() == attack.y_test) & clean["accepted"]
    images = [fool(model, attack.starts, attack.targets, train, far, data.steps, lam, prof) for lam in prof.penalties]
    runs = [verdicts(model, x, torch.as_tensor(attack.targets), train, far) for x in images]
    fooled = np.any([r["fooled"] for r in runs], axis=0)
    best = max(runs, key=lambda r: (r["fooled"].mean(), np.median(r["confidence"])))
    with torch.no_grad():
        d_test = float(np.median(nearest_distance(test, train).numpy()))
        d_fool = float(np.median(nearest_distance(images[0], train).numpy()))
    clean_accuracy = float(correct.mean())
    return {
        "trust_score": min(clean_accuracy, 1.0 - float(fooled.mean())),
        "fooled_fraction": float(fooled.mean()),
        "fooled_fraction_nonadaptive": float(runs[0]["fooled"].mean()),
        "clean_accuracy": clean_accuracy,
        "test_rejection_rate": float(1.0 - clean["accepted"].mean()),
        "median_confidence": float(np.median(best["confidence"])),
        "nn_distance_ratio": d_fool / d_test,
    }


# --- the probe ------------------------------------------------------------------------------
TUNING = ("the adversarial probe's search on the same digits at its clean end (validation split, 3 seeds, Adam, "
          "batch 64, early stopping): ")

PROBE = Probe(
    id="fooling_images",
    family="perception",
    claim="Optimising noise for a few steps yields unrecognisable images that a trained classifier labels "
          "with ≥ 99 % confidence for nearly every class; its own confidence cannot flag them.",
    sources=("seeds/002_c08bf31bab69b760.txt",
             "Nguyen, Yosinski & Clune 2015, Deep neural networks are easily fooled, CVPR",
             "Tramèr, Carlini, Brendel & Mądry 2020, On adaptive attacks to adversarial example defenses"),
    version=2,
    knob=Knob("steps", "signed-gradient steps of the fooling attack from uniform noise",
              validate=lambda v: isinstance(v, int) and 0 <= v <= 100_000),
    metrics=(
        Metric("trust_score", "min(accuracy on test digits with rejections as errors, share of noise starts "
               "that do not end as fooling images)", chance=0.1, lo=0.0, hi=1.0),
        Metric("fooled_fraction", "share of noise starts optimised (adaptively) into accepted, unrecognisable "
               "images with ≥ 0.99 target confidence", direction="lower", lo=0.0, hi=1.0),
        Metric("fooled_fraction_nonadaptive", "the same for the attack that ignores the reject option (λ = 0)",
               direction="lower", lo=0.0, hi=1.0),
        Metric("clean_accuracy", "test digits accepted and correctly classified", chance=0.1, lo=0.0, hi=1.0),
        Metric("test_rejection_rate", "share of test digits the model rejects", direction="lower", lo=0.0, hi=1.0),
        Metric("median_confidence", "median target-class softmax of the optimised images (strongest λ)",
               direction="lower", lo=0.0, hi=1.0),
        Metric("nn_distance_ratio", "median nearest-training-digit distance, non-adaptive optimised images / "
               "test digits", lo=0.0),
        Metric("train_accuracy", "the classifier's accuracy on its own training data", chance=0.1, lo=0.0, hi=1.0,
               diagnostic=True),
    ),
    rule=Threshold("trust_score", success=0.5),
    fit=Fit("train_accuracy", 0.95),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("mlp", "deep", plain("mlp"), "MLP 64-128-128-10 (ERM), accepts every input", batched=True,
                  tuning=TUNING + "lr ∈ {1e-3, 3e-3, 1e-2} × width ∈ {64, 128, 256}, picked lr 1e-2, width 128"),
        Contender("cnn", "deep", plain("cnn"), "CNN conv16-maxpool-conv32-conv32-GAP-linear (ERM), accepts every "
                  "input", batched=True,
                  tuning=TUNING + "lr ∈ {1e-3, 3e-3, 1e-2} × width ∈ {8, 16, 24}, picked lr 1e-2, width 16"),
        Contender("density_reject", "remedy", density_reject,
                  "the MLP + reject when a Gaussian-mixture log-likelihood of the pixels is below the 5th "
                  "percentile of held-out digits (attacked through it)", batched=True),
        Contender("noise_class", "remedy", noise_class, "MLP with an 11th class trained on uniform noise",
                  batched=True),
    ),
    references=(
        Reference("Nguyen, Yosinski & Clune 2015 (MNIST, LeNet)",
                  "direct-encoding evolution from uniform noise, MAP-Elites over the 10 classes",
                  "every digit fooled at ≥ 99.99 % within < 50 generations in every run", "secondary quotation",
                  points=((50, 1.0),), metric="fooled_fraction_nonadaptive"),
        Reference("Nguyen, Yosinski & Clune 2015 (MNIST, retraining defence)",
                  "fooling images added as an 11th class, retrain, evolve again",
                  "new ≥ 99.99 % fooling images keep appearing in every round", "recalled"),
    ),
    budget_fields=("epochs", "patience"),  # early stopping binds first unless patience grows too
    budget=lambda p: (f"MLP {p.mlp_width}-{p.mlp_width} and CNN {p.cnn_width}-{2 * p.cnn_width}, ≤ {p.epochs} "
                      f"epochs (early stopping); {p.restarts} noise start(s) per class × λ ∈ {list(p.penalties)}"),
)
