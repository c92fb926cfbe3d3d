"""Compression: what a deep net's compute buys, and how much of it can be removed.

Claim: deep nets are compute-hungry: on a small image task a trained MLP or CNN spends tens to
    hundreds of times the multiply-accumulates of a classical model for a few points of accuracy, and
    once compressed far enough (pruning, distillation) it falls below the classical model.
Source: seeds/004_4ead15eadcdcceb2.txt (computational power and energy; quantisation; pruning);
    Han, Mao & Dally 2016, "Deep Compression: Compressing Deep Neural Networks with Pruning, Trained
    Quantization and Huffman Coding" (ICLR); Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in
    a Neural Network".
Setup: scikit-learn's bundled 8×8 digits, 30 % stratified test split per seed (the learner sees
    the training split; test images and labels stay with the probe, which runs each returned model on
    them). Knob r = compression ratio of the deep nets: the fraction of nonzero weights is 1/r.
    Every deep arm first trains its full-size net (Adam, epochs with early stopping on a 20 %
    validation split, all seeds batched), then compresses it r×.
Deep contender: (a) MLP 64-128-128-10, (b) CNN (two 3×3 conv layers of 16 and 32 channels, global
    average pooling, linear), both pruned by global magnitude pruning (`torch.nn.utils.prune`,
    L1 unstructured over all weight tensors) in log2(r) rounds, each followed by fine-tuning (Han et al.'s
    iterative prune-and-retrain), and (c) an MLP student with about 1/r of the teacher MLP's
    parameters, trained by distillation (Hinton et al.: temperature 4, weight 0.7 on the soft loss).
    The pruned MLP is also run after int8 dynamic quantisation
    (`torch.ao.quantization.quantize_dynamic`: a further 4× in weight storage).
Alternative: logistic regression (lbfgs, scikit-learn defaults) and a random forest (100 trees),
    at their own cost.
Metric: test accuracy (chance 0.1); verdict kind gap: holds where the best compressed deep arm is
    clearly (95 % CI) below a classical model's accuracy, the breaking point being the compression
    ratio where that first happens. Also reported: nonzero parameters, multiply-accumulates per
    prediction (a tree: comparisons along its decision paths), weight bytes, int8 accuracy, and, in
    the quick and paper profiles, measured CPU milliseconds per 1,000 predictions (median of 5
    repeats; noisy under load, and a pruned net stored dense runs no faster: it is a diagnostic,
    left out of the smoke profile whose runs must repeat exactly).
Reference figure: Han et al. 2016: AlexNet 35× (240 MB → 6.9 MB) and VGG-16 49× (552 MB → 11.3 MB)
    smaller without loss of accuracy on ImageNet (pruning + trained quantisation + Huffman coding);
    pruning alone: 9× and 13× fewer weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from deeplimits import datasets
from deeplimits.ensemble import Ensemble, cross_entropy, predict, seeded, train_epochs
from deeplimits.probe import Answer, Contender, Context, Control, Gap, Knob, Metric, Probe, Profile, Reference, Task

LR = 1e-2  # picked at r = 1 from {1e-3, 3e-3, 1e-2} (see TUNING)


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompressionProfile(Profile):
    width: int = 128
    channels: tuple[int, int] = (16, 32)
    epochs: int = 60
    finetune_epochs: int = 8
    patience: int = 8
    batch: int = 64
    lr: float = LR
    temperature: float = 4.0
    soft_weight: float = 0.7
    trees: int = 100
    latency: bool = True  # measured CPU time per 1,000 predictions (not repeatable run to run)
    train_size: int = 0  # 0: the whole 70 % training split; smoke trains on a subsample (machinery only)


PROFILES = {
    "smoke": CompressionProfile("smoke", knob=(1, 4), seeds=3, width=32, channels=(2, 4), epochs=2,
                                finetune_epochs=1, patience=2, trees=10, latency=False, train_size=300),
    # (1, 2, 4, 8, 16, 32) × 5 seeds took 304 CPU-s; 3 seeds left the control (0.95 at r = 1) undecided
    "quick": CompressionProfile("quick", knob=(1, 8, 16, 32), seeds=5),
    "paper": CompressionProfile("paper", knob=(1, 2, 4, 8, 16, 32, 64), seeds=20, epochs=200, finetune_epochs=30,
                                patience=20),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Images:
    """The learner's view: training images [N, 8, 8] in [0, 1] and labels."""

    x: np.ndarray
    y: np.ndarray


@lru_cache(maxsize=64)
def split(seed: int, train_size: int) -> tuple[Images, tuple[np.ndarray, np.ndarray]]:
    """The split of one seed, cached: make_task is called for every contender and again for scoring."""
    from sklearn.model_selection import train_test_split

    x, y = datasets.digits()
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    if train_size:  # the split is shuffled: its first rows are a random subsample
        x_tr, y_tr = x_tr[:train_size], y_tr[:train_size]
    return Images(x_tr, y_tr), (x_te, y_te)


def make_task(r: int, rng: np.random.Generator, profile: CompressionProfile) -> Task:
    images, hidden = split(int(rng.integers(2**31)), profile.train_size)
    return Task(images, hidden)


@dataclass(frozen=True)
class Deployed:
    """A trained model as the probe runs it, with its own account of its size."""

    predict: Callable[[np.ndarray], np.ndarray]  # images [N, 8, 8] -> labels [N]
    params: float  # nonzero parameters
    macs: float  # multiply-accumulates (or comparisons) per prediction
    bytes: float  # weight storage
    predict_int8: Callable[[np.ndarray], np.ndarray] | None = None
    bytes_int8: float | None = None


def latency_ms(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, repeats: int = 5) -> float:
    """Median wall milliseconds for 1,000 predictions (one call on 1,000 inputs)."""
    batch = np.resize(x, (1000, *x.shape[1:]))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def score(task: Task, model: Deployed, ctx: Context) -> dict[str, float]:
    x, y = task.hidden
    out = {"test_accuracy": float((model.predict(x) == y).mean()), "params": float(model.params),
           "macs": float(model.macs), "bytes": float(model.bytes)}
    if model.predict_int8 is not None:
        out["test_accuracy_int8"] = float((model.predict_int8(x) == y).mean())
        out["bytes_int8"] = float(model.bytes_int8)
    if ctx.profile.latency:
        out["latency_ms"] = latency_ms(model.predict, x)
    return out


# --- deep arms ------------------------------------------------------------------------------
def make_mlp(width: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10))


def make_cnn(channels: tuple[int, int]) -> nn.Module:
    a, b = channels
    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, a, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(b, 10))


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]


def count(model: nn.Module) -> tuple[float, float]:
    """(nonzero parameters, multiply-accumulates per prediction) of a possibly pruned net on 8×8 inputs."""
    params = sum(float((p != 0).sum()) for p in model.parameters())
    macs = 0.0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            macs += float((m.weight != 0).sum())
        elif isinstance(m, nn.Conv2d):
            macs += 64.0 * float((m.weight != 0).sum())  # padded 3×3 convs keep the 8×8 grid
    return params, macs


def torch_predict(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def fn(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.as_tensor(x, dtype=torch.float32).flatten(1)).argmax(-1).numpy()

    return fn


def split_data(publics: list[Images], ctxs: list[Context]) -> tuple[torch.Tensor, ...]:
    """Stacked (x_fit, y_fit, x_val, y_val): 20 % of each seed's training data for early stopping."""
    from sklearn.model_selection import train_test_split

    parts = [train_test_split(p.x, p.y, test_size=0.2, stratify=p.y, random_state=c.rng_seed % 2**31)
             for p, c in zip(publics, ctxs)]
    x_fit, x_val, y_fit, y_val = (torch.as_tensor(np.stack(a)) for a in zip(*parts))
    return x_fit.flatten(2), y_fit, x_val.flatten(2), y_val


def fit(ens: Ensemble, data: tuple[torch.Tensor, ...], epochs: int, prof: CompressionProfile, seed: int,
        loss=cross_entropy) -> dict[str, torch.Tensor]:
    x_fit, y_fit, x_val, y_val = data
    return train_epochs(ens, x_fit, y_fit, loss, epochs, prof.batch, prof.lr, "adam", x_val, y_val,
                        patience=prof.patience)


def magnitude_masks(ens: Ensemble, keep: float) -> dict[str, torch.Tensor]:
    """Per member: global L1 magnitude pruning of all weight tensors to a `keep` fraction
    (torch.nn.utils.prune decides; the masks are stacked back to the ensemble's layout)."""
    from torch.nn.utils import prune

    masks: dict[str, list[torch.Tensor]] = {}
    for i in range(ens.size):
        member = ens.member(i)
        params = prunable(member)
        total = sum(m.weight.numel() for m, _ in params)
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=total - math.ceil(keep * total))
        for name, buf in member.named_buffers():
            if name.endswith("weight_mask"):
                masks.setdefault(name.replace("weight_mask", "weight").replace(".", "__"), []).append(buf)
    return {k: torch.stack(v) for k, v in masks.items()}


def pruned(publics: list[Images], ctxs: list[Context], factory: Callable[[], nn.Module], int8: bool
           ) -> list[Answer]:
    prof: CompressionProfile = ctxs[0].profile
    r = ctxs[0].knob
    data = split_data(publics, ctxs)
    ens = Ensemble([seeded(factory, c.rng_seed) for c in ctxs])
    stats = fit(ens, data, prof.epochs, prof, ctxs[0].rng_seed)
    rounds = max(1, round(math.log2(r))) if r > 1 else 0
    hooks = []
    for k in range(1, rounds + 1):  # iterative pruning: keep r^(-k/rounds), then fine-tune
        masks = magnitude_masks(ens, r ** (-k / rounds))
        for h in hooks:
            h.remove()
        with torch.no_grad():
            for name, mask in masks.items():
                ens.params[name].mul_(mask)
        hooks = [ens.params[name].register_hook(lambda g, m=mask: g * m) for name, mask in masks.items()]
        stats = fit(ens, data, prof.finetune_epochs, prof, ctxs[0].rng_seed + k)
    for h in hooks:
        h.remove()
    out = []
    for i in range(ens.size):
        model = ens.member(i).eval()
        params, macs = count(model)
        extra = {}
        if int8:
            quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
            biases = sum(float(m.bias.numel()) for m in model.modules() if isinstance(m, nn.Linear))
            extra = {"predict_int8": torch_predict(quantized), "bytes_int8": (params - biases) + 4 * biases}
        deployed = Deployed(torch_predict(model), params, macs, 4 * params, **extra)
        out.append(Answer(deployed, {"train_accuracy": float(stats["train"][i])}))
    return out


def mlp_pruned(publics: list[Images], ctxs: list[Context]) -> list[Answer]:
    prof: CompressionProfile = ctxs[0].profile
    return pruned(publics, ctxs, lambda: make_mlp(prof.width), int8=True)


def cnn_pruned(publics: list[Images], ctxs: list[Context]) -> list[Answer]:
    prof: CompressionProfile = ctxs[0].profile
    return pruned(publics, ctxs, lambda: make_cnn(prof.channels), int8=False)


def student_width(width: int, r: float) -> int:
    """Hidden width h of a 64-h-h-10 MLP with about 1/r of the 64-width-width-10 MLP's parameters."""
    target = (width * width + 76 * width + 10) / r
    return max(1, int((-76 + math.sqrt(76**2 + 4 * (target - 10))) / 2))


def mlp_distilled(publics: list[Images], ctxs: list[Context]) -> list[Answer]:
    prof: CompressionProfile = ctxs[0].profile
    data = split_data(publics, ctxs)
    teacher = Ensemble([seeded(lambda: make_mlp(prof.width), c.rng_seed) for c in ctxs])
    fit(teacher, data, prof.epochs, prof, ctxs[0].rng_seed)
    h = student_width(prof.width, ctxs[0].knob)
    student = Ensemble([seeded(lambda: make_mlp(h), c.rng_seed + 1) for c in ctxs])
    # the loss sees (outputs, labels); the teacher's logits ride along as extra label columns
    x_fit, y_fit, x_val, y_val = data
    soft = predict(teacher, x_fit)
    t, a = prof.temperature, prof.soft_weight

    def distill(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, y = target[..., :10], target[..., 10].long()
        kl = nn.functional.kl_div(nn.functional.log_softmax(out / t, -1), nn.functional.softmax(logits / t, -1),
                                  reduction="none").sum(-1).mean(-1)
        return a * t * t * kl + (1 - a) * cross_entropy(out, y)

    packed = torch.cat([soft, y_fit[..., None].float()], -1)
    stats = train_epochs(student, x_fit, packed, distill, prof.epochs, prof.batch, prof.lr, "adam", x_val, y_val,
                         patience=prof.patience,
                         score=lambda out, target: (out.argmax(-1) == target[..., -1].long() if target.dim() == 3
                                                    else out.argmax(-1) == target).float().mean(-1))
    out = []
    for i in range(student.size):
        model = student.member(i).eval()
        params, macs = count(model)
        out.append(Answer(Deployed(torch_predict(model), params, macs, 4 * params),
                          {"train_accuracy": float(stats["train"][i])}))
    return out


# --- alternatives: classical models at their own cost ---------------------------------------------
def logistic_regression(public: Images, ctx: Context) -> Answer:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000).fit(public.x.reshape(len(public.x), -1), public.y)
    size = float(model.coef_.size + model.intercept_.size)
    deployed = Deployed(lambda x: model.predict(x.reshape(len(x), -1)), size, float(model.coef_.size), 4 * size)
    return Answer(deployed, {"train_accuracy": float(model.score(public.x.reshape(len(public.x), -1), public.y))})


def random_forest(public: Images, ctx: Context) -> Answer:
    from sklearn.ensemble import RandomForestClassifier

    x = public.x.reshape(len(public.x), -1)
    model = RandomForestClassifier(ctx.profile.trees, random_state=ctx.rng_seed % 2**31, n_jobs=1).fit(x, public.y)
    nodes = float(sum(t.tree_.node_count for t in model.estimators_))
    depth = float(model.decision_path(x)[0].sum()) / len(x)  # comparisons along the paths, all trees
    deployed = Deployed(lambda z: model.predict(z.reshape(len(z), -1)), 2 * nodes, depth, 8 * nodes)
    return Answer(deployed, {"train_accuracy": float(model.score(x, public.y))})


# --- the probe ------------------------------------------------------------------------------
TUNING = ("lr picked at r = 1 (easy end) from {1e-3, 3e-3, 1e-2} by validation accuracy of the full-size nets "
          "(20 % of the training data, 3 seeds, ≤ 60 epochs, patience 8): MLP 0.964, 0.975, 0.980; CNN 0.816, "
          f"0.929, 0.971 -> {LR:g} for both (the grid's edge: the CNN may gain from more)")

PROBE = Probe(
    id="compression",
    family="cost",
    claim="Deep nets are compute-hungry: an MLP or CNN spends tens to hundreds of times a classical model's "
          "multiply-accumulates for a few points of accuracy, and compressed far enough it falls below it.",
    sources=("seeds/004_4ead15eadcdcceb2.txt",
             "Han, Mao & Dally 2016, Deep Compression, ICLR",
             "Hinton, Vinyals & Dean 2015, Distilling the Knowledge in a Neural Network"),
    version=1,
    knob=Knob("r", "compression ratio of the deep nets (nonzero weights ÷ r)", unit="×", log_scale=True,
              validate=lambda v: isinstance(v, int) and 1 <= v <= 1024),
    metrics=(
        Metric("test_accuracy", "test accuracy (scored by the probe)", chance=0.1, lo=0.0, hi=1.0),
        Metric("test_accuracy_int8", "test accuracy after int8 dynamic quantisation", chance=0.1, lo=0.0, hi=1.0),
        Metric("params", "nonzero parameters (a tree: 2 per node)", direction="lower", lo=0.0, log_scale=True),
        Metric("macs", "multiply-accumulates per prediction (a tree: comparisons)", direction="lower", lo=0.0,
               log_scale=True),
        Metric("bytes", "weight storage, float32 (sparse index overhead not counted)", direction="lower", lo=0.0,
               unit="B", log_scale=True),
        Metric("bytes_int8", "weight storage after int8 quantisation", direction="lower", lo=0.0, unit="B",
               log_scale=True),
        Metric("latency_ms", "CPU ms per 1,000 predictions, median of 5 (load-dependent; quick/paper only)",
               direction="lower", lo=0.0, unit="ms", log_scale=True),
        Metric("train_accuracy", "accuracy on the method's own training data", lo=0.0, hi=1.0, diagnostic=True),
    ),
    rule=Gap("test_accuracy", margin=0.0),
    control=Control(success=0.95, description="the best full-size deep net reaches 0.95 test accuracy at r = 1"),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("mlp_pruned", "deep", mlp_pruned, "MLP 64-128-128-10, magnitude-pruned r× with fine-tuning; "
                  "also int8", batched=True, tuning=TUNING),
        Contender("cnn_pruned", "deep", cnn_pruned, "CNN 16-32 channels, global pooling, magnitude-pruned r× with "
                  "fine-tuning", batched=True, tuning=TUNING),
        Contender("mlp_distilled", "deep", mlp_distilled, "MLP student with ≈ 1/r of the teacher's parameters, "
                  "distilled from the full MLP", batched=True, tuning=TUNING + "; temperature 4 and soft weight 0.7 "
                  "from Hinton et al., not searched"),
        Contender("logistic_regression", "alternative", logistic_regression, "multinomial logistic regression"),
        Contender("random_forest", "alternative", random_forest, "random forest, 100 trees"),
    ),
    references=(
        Reference("Han, Mao & Dally 2016, Deep Compression (ImageNet)", "pruning + trained quantisation + Huffman",
                  "AlexNet 35× (240 MB → 6.9 MB), VGG-16 49× (552 MB → 11.3 MB) without accuracy loss; pruning "
                  "alone 9× and 13× fewer weights", "verbatim (abstract)"),
    ),
    budget=lambda p: (f"MLP 64-{p.width}-{p.width}-10 and CNN {p.channels[0]}-{p.channels[1]}, Adam lr {p.lr:g}, "
                      f"≤ {p.epochs} epochs (patience {p.patience}) + {p.finetune_epochs} fine-tuning epochs per "
                      "pruning round"),
    budget_fields=("epochs", "finetune_epochs", "patience"),
    fit=None,  # a compressed net that cannot fit its data is the claim's own failure mode
)
