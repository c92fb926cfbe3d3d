"""Fooling images: a trained classifier gives near-certain labels to optimised noise.

Claim: starting from uniform noise, a short optimisation of the input (gradient ascent on a class
    score, or evolution that only reads the scores) yields, for nearly every class, an image that
    looks like no digit yet is labelled with ≥ 99 % confidence; the classifier's own confidence
    cannot flag it, while a model of the input distribution can.
Source: seeds/002_c08bf31bab69b760.txt; Nguyen, Yosinski & Clune 2015, "Deep neural networks are
    easily fooled", CVPR (MNIST: direct encoding, < 50 generations to ≥ 99.99 % for every digit).
Setup: scikit-learn's bundled 8×8 digits in [0, 1] (1,297 train, of which 20 % calibrate the reject
    threshold; 500 test). Knob: optimisation steps — iterations of gradient ascent and generations
    of the evolutionary search alike (0 = the uniform-noise start itself). Per class, `restarts`
    noise images are optimised towards that class. Gradient variant: ART's targeted
    ProjectedGradientDescent with ε = 1 (the whole [0, 1] box, so only clipping) and sign steps of
    `grad_step`. Evolutionary variant: scipy's differential_evolution (direct pixel encoding,
    uniform random start population, score-only), stopped once the target reaches 0.99.
Deep contender: an MLP 64-128-128-10 trained by ERM (Adam), accepting every input (plain softmax);
    several seeds at once (deeplimits.ensemble). (Nguyen used LeNet; a vmapped CNN costs ~5x more
    on CPU here and the claim is architecture-free.)
Remedy: (a) density_reject — the same classifier plus a reject option: a Gaussian mixture of the
    training pixels (sklearn) rejects inputs whose log-likelihood falls below the 5th percentile of
    held-out training digits (5 % false rejections by construction). The fooling images are
    optimised against the classifier only (a non-adaptive attacker; an attacker who also climbs the
    density is not measured). (b) noise_class — Nguyen's retraining defence in one round: an 11th
    "noise" class trained on uniform-noise images; fooling images are then optimised against this
    11-way classifier (white-box), and count only if a digit class gets ≥ 0.99.
Metric: fooled fraction — the share of optimised images labelled as their target digit with
    ≥ 0.99 confidence and not rejected (gradient variant; success ≤ 0.5: at most half the targets
    fooled). Diagnostics: the same for the evolutionary variant, clean accuracy (the positive
    control, ≥ 0.9 at the easy end), median target confidence, detection AUROC of the contender's
    out-of-distribution score (max softmax for the plain classifier, negative GMM log-likelihood for
    the reject option; fooling images vs test digits, sklearn roc_auc_score), and the
    nearest-training-digit distance of fooling images relative to that of test digits.
Reference figure: Nguyen et al. 2015, MNIST LeNet: every run fools every digit at ≥ 99.99 % within
    < 50 generations; the retraining defence does not stop new fooling images on MNIST.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deeplimits.datasets import digits, split
from deeplimits.ensemble import Ensemble, chunked, cross_entropy, seeded, train
from deeplimits.models import ImageMLP
from deeplimits.probe import Contender, Context, Control, Knob, Metric, Probe, Profile, Reference, Threshold

CONFIDENT = 0.99  # the claim's "near-certain"


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FoolingProfile(Profile):
    n_train: int = 1297
    n_test: int = 500
    width: int = 128
    steps_train: int = 600
    batch: int = 64
    lr: float = 2e-3
    restarts: int = 2  # noise starts per class (gradient variant)
    evo_restarts: int = 1  # noise starts per class (evolutionary variant)
    grad_step: float = 0.02  # sign-gradient step on [0, 1] pixels
    popsize: int = 4  # differential evolution population = popsize x 64
    gmm_components: int = 10
    reject_quantile: float = 0.05  # share of held-out digits the reject option refuses
    n_noise: int = 130  # uniform-noise training images of the noise class (~ one digit class)


PROFILES = {
    "smoke": FoolingProfile("smoke", knob=(0, 30), seeds=2, steps_train=200, restarts=1, n_test=100, popsize=2),
    "quick": FoolingProfile("quick", knob=(0, 1, 3, 10, 30, 100), seeds=5),
    "paper": FoolingProfile("paper", knob=(0, 1, 3, 10, 30, 100, 300, 1000), seeds=10, steps_train=3000,
                            restarts=10, evo_restarts=5, width=256, popsize=15),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FoolingTask:
    steps: int
    x_train: np.ndarray  # [n, 1, 8, 8] in [0, 1]
    y_train: np.ndarray
    x_calib: np.ndarray  # held-out digits that set the reject threshold
    x_test: np.ndarray
    y_test: np.ndarray
    starts: np.ndarray  # [10 * restarts, 1, 8, 8] uniform noise (gradient variant)
    targets: np.ndarray  # [10 * restarts]
    noise: np.ndarray  # [n_noise, 1, 8, 8] uniform noise for the noise class
    stream_seed: int
    evo_seed: int


def make_task(steps: int, rng: np.random.Generator, profile: FoolingProfile) -> FoolingTask:
    x, y = digits()
    x_tr, y_tr, x_te, y_te = split(x[:, None], y, profile.n_train, min(profile.n_test, len(x) - profile.n_train),
                                   rng)
    n_cal = len(x_tr) // 5
    starts = rng.random((10 * profile.restarts, 1, 8, 8), dtype=np.float32)
    noise = rng.random((profile.n_noise, 1, 8, 8), dtype=np.float32)
    return FoolingTask(int(steps), x_tr[n_cal:], y_tr[n_cal:], x_tr[:n_cal], x_te, y_te, starts,
                       np.repeat(np.arange(10), profile.restarts), noise, int(rng.integers(2**62)),
                       int(rng.integers(2**31)))


# --- the classifier -----------------------------------------------------------------------------

def train_mlps(data: list[tuple[np.ndarray, np.ndarray, int]], seeds: list[int], prof: FoolingProfile,
               classes: int = 10) -> list[nn.Module]:
    ens = Ensemble([seeded(lambda: ImageMLP(64, prof.width, classes), s) for s in seeds])

    def maker(x: np.ndarray, y: np.ndarray, stream: int):
        gen = torch.Generator().manual_seed(stream % 2**63)
        xt, yt = torch.as_tensor(x), torch.as_tensor(y)

        def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            idx = torch.randint(0, len(xt), (n, prof.batch), generator=gen)
            return xt[idx], yt[idx]

        return make

    train(ens, chunked([maker(*d) for d in data]), cross_entropy, prof.steps_train, prof.lr, "adam")
    return [ens.member(i).eval() for i in range(len(seeds))]


def softmax(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8)), -1).numpy()


# --- the two fooling optimisers ----------------------------------------------------------------
def fool_gradient(model: nn.Module, task: FoolingTask, prof: FoolingProfile, classes: int) -> np.ndarray:
    """Targeted PGD from ART over the whole [0, 1] box (ε = 1): gradient ascent on log p(target)."""
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    if task.steps == 0:
        return task.starts
    clf = PyTorchClassifier(model, nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=classes,
                            clip_values=(0.0, 1.0), device_type="cpu")
    attack = ProjectedGradientDescent(clf, eps=1.0, eps_step=prof.grad_step, max_iter=task.steps, targeted=True,
                                      num_random_init=0, batch_size=1024, verbose=False)
    y = np.eye(classes, dtype=np.float32)[task.targets]
    return attack.generate(task.starts, y=y).astype(np.float32)


def fool_evolution(model: nn.Module, task: FoolingTask, prof: FoolingProfile) -> tuple[np.ndarray, np.ndarray]:
    """Score-only search: scipy's differential evolution on the 64 pixels, one run per (class, restart)."""
    from scipy.optimize import differential_evolution

    images, targets = [], []
    for r in range(prof.evo_restarts):
        for c in range(10):
            def loss(pop: np.ndarray, c: int = c) -> np.ndarray:  # pop [64, S] (vectorized=True)
                return -np.log(softmax(model, pop.T)[:, c] + 1e-12)

            def stop(intermediate_result) -> bool:  # scipy passes an OptimizeResult under this name
                return bool(intermediate_result.fun <= -np.log(CONFIDENT))

            res = differential_evolution(loss, [(0.0, 1.0)] * 64, maxiter=task.steps, popsize=prof.popsize,
                                         init="random", rng=task.evo_seed + 10 * r + c, polish=False, tol=0,
                                         vectorized=True, updating="deferred", callback=stop)
            images.append(res.x.astype(np.float32).reshape(1, 8, 8))
            targets.append(c)
    return np.stack(images), np.array(targets)


# --- shared measurement -------------------------------------------------------------------------
def fooled(model: nn.Module, images: np.ndarray, targets: np.ndarray, accept: np.ndarray) -> np.ndarray:
    """An image fools when its target digit gets ≥ 0.99 and the reject option (if any) lets it through."""
    p = softmax(model, images)
    return (p[np.arange(len(targets)), targets] >= CONFIDENT) & accept


def nn_distance_ratio(images: np.ndarray, task: FoolingTask) -> float:
    """Mean distance of fooling images to their nearest training digit over the same for test digits."""
    from sklearn.neighbors import NearestNeighbors

    nn_ = NearestNeighbors(n_neighbors=1).fit(task.x_train.reshape(len(task.x_train), -1))
    d_fool = nn_.kneighbors(images.reshape(len(images), -1))[0].mean()
    d_test = nn_.kneighbors(task.x_test.reshape(len(task.x_test), -1))[0].mean()
    return float(d_fool / d_test)


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """AUROC of flagging fooling images (positives) from test digits by a score that is high for outliers."""
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    return float(roc_auc_score(labels, np.r_[in_scores, out_scores]))


def measure(model: nn.Module, task: FoolingTask, prof: FoolingProfile, outlier_score, classes: int = 10
            ) -> dict[str, float]:
    """outlier_score(x) -> (score, accepted): high scores are out of distribution."""
    grad = fool_gradient(model, task, prof, classes)
    evo, evo_targets = fool_evolution(model, task, prof)
    p_grad = softmax(model, grad)[np.arange(len(grad)), task.targets]
    s_test, _ = outlier_score(task.x_test)
    s_grad, ok_grad = outlier_score(grad)
    _, ok_evo = outlier_score(evo)
    pred = softmax(model, task.x_test).argmax(-1)
    return {
        "fooled_fraction": float(fooled(model, grad, task.targets, ok_grad).mean()),
        "fooled_fraction_evo": float(fooled(model, evo, evo_targets, ok_evo).mean()),
        "clean_accuracy": float((pred == task.y_test).mean()),
        "median_confidence": float(np.median(p_grad)),
        "detection_auroc": auroc(s_test, s_grad),
        "nn_distance_ratio": nn_distance_ratio(grad, task),
    }


# --- deep contender: the plain softmax classifier ------------------------------------------------
def mlp_softmax(tasks: list[FoolingTask], ctxs: list[Context]) -> list[dict[str, float]]:
    prof: FoolingProfile = ctxs[0].profile
    models = train_mlps([(t.x_train, t.y_train, t.stream_seed) for t in tasks], [c.rng_seed for c in ctxs], prof)
    out = []
    for model, task in zip(models, tasks, strict=True):
        def score(x: np.ndarray, model: nn.Module = model) -> tuple[np.ndarray, np.ndarray]:
            return -softmax(model, x).max(-1), np.ones(len(x), bool)  # accepts everything

        out.append(measure(model, task, prof, score))
    return out


# --- remedy (a): reject option from a density model of the inputs ----------------------------------
def density_reject(tasks: list[FoolingTask], ctxs: list[Context]) -> list[dict[str, float]]:
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    prof: FoolingProfile = ctxs[0].profile
    models = train_mlps([(t.x_train, t.y_train, t.stream_seed) for t in tasks], [c.rng_seed for c in ctxs], prof)
    out = []
    for model, task, ctx in zip(models, tasks, ctxs, strict=True):
        with threadpool_limits(1):  # 64x64 covariances: extra BLAS threads only add contention (10x slower here)
            gmm = GaussianMixture(prof.gmm_components, covariance_type="full", reg_covar=1e-2,
                                  random_state=ctx.rng_seed % 2**32).fit(task.x_train.reshape(len(task.x_train), -1))
            cut = np.quantile(gmm.score_samples(task.x_calib.reshape(len(task.x_calib), -1)), prof.reject_quantile)

        def score(x: np.ndarray, gmm: GaussianMixture = gmm, cut: float = cut) -> tuple[np.ndarray, np.ndarray]:
            with threadpool_limits(1):
                ll = gmm.score_samples(x.reshape(len(x), -1))
            return -ll, ll >= cut

        out.append(measure(model, task, prof, score))
    return out


# --- remedy (b): an extra class trained on noise (Nguyen's retraining defence, one round) ------------
def noise_class(tasks: list[FoolingTask], ctxs: list[Context]) -> list[dict[str, float]]:
    prof: FoolingProfile = ctxs[0].profile
    data = [(np.concatenate([t.x_train, t.noise]), np.r_[t.y_train, np.full(len(t.noise), 10)], t.stream_seed)
            for t in tasks]
    models = train_mlps(data, [c.rng_seed for c in ctxs], prof, classes=11)
    out = []
    for model, task in zip(models, tasks, strict=True):
        def score(x: np.ndarray, model: nn.Module = model) -> tuple[np.ndarray, np.ndarray]:
            return softmax(model, x)[:, 10], np.ones(len(x), bool)  # the noise class is its own reject

        metrics = measure(model, task, prof, score, classes=11)
        metrics.pop("detection_auroc")  # its fooling images are optimised against this very score
        out.append(metrics)
    return out


# --- the probe ------------------------------------------------------------------------------
PROBE = Probe(
    id="fooling_images",
    family="perception",
    claim="Optimising noise for a few steps yields unrecognisable images that a trained classifier labels "
          "with ≥ 99 % confidence for nearly every class; its own confidence cannot flag them.",
    sources=("seeds/002_c08bf31bab69b760.txt",
             "Nguyen, Yosinski & Clune 2015, Deep neural networks are easily fooled, CVPR"),
    version=1,
    knob=Knob("steps", "optimisation steps from uniform noise (gradient iterations = evolution generations)",
              validate=lambda v: isinstance(v, int) and 0 <= v <= 100_000),
    metrics=(
        Metric("fooled_fraction", "share of gradient-optimised noise images labelled as their target digit "
               "with ≥ 0.99 confidence and not rejected", direction="lower", lo=0.0, hi=1.0),
        Metric("fooled_fraction_evo", "the same for differential evolution (score-only)", direction="lower",
               lo=0.0, hi=1.0),
        Metric("clean_accuracy", "test accuracy on digits (positive control)", chance=0.1, lo=0.0, hi=1.0),
        Metric("median_confidence", "median target-class softmax of the gradient fooling images",
               direction="lower", lo=0.0, hi=1.0),
        Metric("detection_auroc", "AUROC of the contender's outlier score, fooling images vs test digits",
               chance=0.5, lo=0.0, hi=1.0),
        Metric("nn_distance_ratio", "nearest-training-digit distance, fooling images / test digits", lo=0.0),
    ),
    rule=Threshold("fooled_fraction", success=0.5),
    control=Control(metric="clean_accuracy", success=0.9,
                    description="the classifier recognises real digits (test accuracy ≥ 0.9) at the easy end"),
    profiles=PROFILES,
    make_task=make_task,
    contenders=(
        Contender("mlp_softmax", "deep", mlp_softmax, "MLP 64-128-128-10 (ERM), accepts every input", batched=True),
        Contender("density_reject", "remedy", density_reject,
                  "the same MLP + reject when a Gaussian-mixture log-likelihood of the pixels is below the "
                  "5th percentile of held-out digits", batched=True),
        Contender("noise_class", "remedy", noise_class, "MLP with an 11th class trained on uniform noise",
                  batched=True),
    ),
    references=(
        Reference("Nguyen, Yosinski & Clune 2015 (MNIST, LeNet)",
                  "direct-encoding evolution from uniform noise, MAP-Elites over the 10 classes",
                  "every digit fooled at ≥ 99.99 % within < 50 generations in every run", "secondary quotation",
                  points=((50, 1.0),), metric="fooled_fraction_evo"),
        Reference("Nguyen, Yosinski & Clune 2015 (MNIST, retraining defence)",
                  "fooling images added as an 11th class, retrain, evolve again",
                  "new ≥ 99.99 % fooling images keep appearing in every round", "recalled"),
    ),
    requires=("art",),
    extra="perception",
    budget=lambda p: (f"MLP {p.width}-{p.width}, {p.steps_train} Adam steps; {p.restarts} gradient and "
                      f"{p.evo_restarts} evolution start(s) per class"),
)
