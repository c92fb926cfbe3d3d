"""Shortcut: a net trained by ERM latches onto a spurious cue (the Clever-Hans tag) and fails when it flips.

Claim: when a spurious cue agrees with the label more often than the real content does, a network
    trained by empirical risk minimisation bases its decisions on the cue; accuracy collapses below
    chance once the cue's relation to the label is reversed, attribution maps put their mass on the
    cue, while training that makes cue and label independent (group balancing, IRM) or removes the
    cue keeps the content-based accuracy.
Source: seeds/004_4ead15eadcdcceb2.txt (the horse photos' copyright tag); Lapuschkin et al. 2019,
    "Unmasking Clever Hans predictors", Nat. Commun.; Arjovsky, Bottou, Gulrajani & Lopez-Paz 2019,
    "Invariant risk minimization" (Colored MNIST).
Setup: Colored-MNIST recipe on scikit-learn's 8×8 digits with a tag instead of colour: each digit is
    placed in a 10×10 canvas (top-right), the binary label is digit < 5, flipped with probability
    0.25 (content predicts 75 %); the cue is a 2×2 white tag in the empty bottom-left corner,
    present iff c = 1, where c equals the (noisy) label with probability p_e. Two training
    environments have p_e = p ± δ (δ = min(0.05, 1 − p); Arjovsky's 0.9 / 0.8 is p = 0.85); the test
    environment has p_e = 0.1 (cue mostly reversed, as Arjovsky's test colour flip 0.9). Knob: p,
    harder = increasing; p = 0.5 makes the cue useless (the positive control end).
Deep contender: an MLP 100-128-128-2 (Arjovsky used an MLP; a vmapped CNN costs ~5x more on CPU),
    Adam with weight decay, minibatches drawn equally from both environments, plain ERM.
Remedy (three contenders): group_balanced — per-sample weights that give the four (label, cue) groups equal mass, so
    cue and label are independent in the weighted training set; irm — IRMv1 (Arjovsky's penalty:
    squared gradient of each environment's risk w.r.t. a dummy logit scale, weight 1e4 switched on
    after a third of the steps, loss divided by it then; settings fixed in advance, not selected on
    the test environment as the IRM paper did); oracle — the tag pixels zeroed in training and test.
Metric: test accuracy on the reversed-cue environment (chance 0.5; success ≥ 0.5, Arjovsky's line:
    ERM 17 % vs optimal invariant 75 %). Diagnostics: training accuracy; tag flip rate (share of
    test images whose prediction changes when the tag is pasted vs removed — Lapuschkin's pasted
    tag); attribution share on the 4 tag pixels (area share 0.04) of tagged test images for the
    predicted class, by captum's IntegratedGradients (zero baseline) and captum's LRP (epsilon rule;
    zennit is not used because it needs torchvision).
Reference figure: Arjovsky et al. 2019 Colored MNIST train / test accuracy: ERM 87.4 / 17.1,
    IRM 70.8 / 66.9, grayscale oracle 73.5 / 73.0, optimum 75 / 75.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deeplimits.datasets import digits
from deeplimits.ensemble import Ensemble, seeded
from deeplimits.models import ImageMLP
from deeplimits.probe import Contender, Context, Knob, Metric, Probe, Profile, Reference, Threshold

SIDE = 10  # canvas side
TAG = (slice(SIDE - 2, SIDE), slice(0, 2))  # bottom-left 2x2, never touched by the digit
TAG_AREA = 4 / SIDE**2


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShortcutProfile(Profile):
    n_test: int = 400
    label_noise: float = 0.25
    test_agreement: float = 0.1  # P(cue = label) in the test environment
    width: int = 128
    steps: int = 400
    batch: int = 128  # half from each training environment
    lr: float = 1e-3
    weight_decay: float = 1e-3
    irm_weight: float = 1e4
    irm_anneal: float = 1 / 3  # share of the steps before the IRM penalty switches on
    n_attr: int = 100  # tagged test images for the attribution shares
    ig_steps: int = 32


PROFILES = {
    "smoke": ShortcutProfile("smoke", knob=(0.5, 0.9), seeds=2, steps=150, n_attr=20, ig_steps=16, n_test=200),
    "quick": ShortcutProfile("quick", knob=(0.5, 0.8, 0.9, 0.95, 0.99), seeds=5),
    "paper": ShortcutProfile("paper", knob=(0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99), seeds=10, steps=2000,
                             width=390, n_attr=300, ig_steps=64),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShortcutTask:
    p: float
    x_train: np.ndarray  # [n, 1, 10, 10], tag already stamped where cue = 1
    y_train: np.ndarray  # noisy binary labels
    env_train: np.ndarray  # 0 or 1
    cue_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    cue_test: np.ndarray
    stream_seed: int


def canvas(images: np.ndarray) -> np.ndarray:
    """8x8 digits into the top-right of a 10x10 canvas, leaving the bottom-left 2x2 empty."""
    out = np.zeros((len(images), 1, SIDE, SIDE), np.float32)
    out[:, 0, :8, 2:] = images
    return out


def with_tag(x: np.ndarray, on: np.ndarray | bool) -> np.ndarray:
    x = x.copy()
    x[:, 0, TAG[0], TAG[1]] = np.asarray(on, np.float32).reshape(-1, 1, 1)
    return x


def environment(images: np.ndarray, digit: np.ndarray, agreement: float, noise: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = (digit < 5).astype(np.int64)
    y = np.where(rng.random(len(y)) < noise, 1 - y, y)
    cue = np.where(rng.random(len(y)) < agreement, y, 1 - y)
    return with_tag(canvas(images), cue), y, cue


def make_task(p: float, rng: np.random.Generator, profile: ShortcutProfile) -> ShortcutTask:
    x, d = digits()
    idx = rng.permutation(len(x))
    test, train = idx[: profile.n_test], idx[profile.n_test:]
    halves = np.array_split(train, 2)
    delta = min(0.05, 1.0 - p)
    agreements = (p + delta, p - delta)
    parts = [environment(x[h], d[h], a, profile.label_noise, rng) for h, a in zip(halves, agreements, strict=True)]
    x_te, y_te, c_te = environment(x[test], d[test], profile.test_agreement, profile.label_noise, rng)
    return ShortcutTask(float(p), np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts]),
                        np.concatenate([np.full(len(h), e) for e, h in enumerate(halves)]),
                        np.concatenate([q[2] for q in parts]), x_te, y_te, c_te, int(rng.integers(2**62)))


# --- the network and a batched training loop with sample weights and the IRM penalty --------------
def group_weights(y: np.ndarray, cue: np.ndarray) -> np.ndarray:
    """Weights giving each (label, cue) group the same total mass (mean weight 1)."""
    group = 2 * y + cue
    counts = np.bincount(group, minlength=4).astype(np.float64)
    present = (counts > 0).sum()
    return (len(y) / (present * counts[group])).astype(np.float32)


def fit(tasks: list[ShortcutTask], ctxs: list[Context], mode: str) -> list[nn.Module]:
    """mode: erm | group_balanced | irm | oracle. Each step draws batch/2 samples from each environment."""
    prof: ShortcutProfile = ctxs[0].profile
    ens = Ensemble([seeded(lambda: ImageMLP(SIDE * SIDE, prof.width, 2), c.rng_seed) for c in ctxs])
    opt = torch.optim.Adam(list(ens.parameters()), lr=prof.lr, weight_decay=prof.weight_decay, foreach=True)
    data = []
    for t in tasks:
        x = with_tag(t.x_train, False) if mode == "oracle" else t.x_train
        w = group_weights(t.y_train, t.cue_train) if mode == "group_balanced" else np.ones(len(t.y_train), np.float32)
        envs = [np.flatnonzero(t.env_train == e) for e in (0, 1)]
        data.append((torch.as_tensor(x), torch.as_tensor(t.y_train), torch.as_tensor(w), envs,
                     np.random.default_rng(t.stream_seed)))
    half = prof.batch // 2
    for step in range(prof.steps):
        picks = [[rng.choice(e, half) for e in envs] for (_, _, _, envs, rng) in data]
        xb, yb, wb = (torch.stack([torch.cat([d[k][i] for i in p]) for d, p in zip(data, picks, strict=True)])
                      for k in range(3))  # [E, B, ...]
        scale = torch.ones(len(tasks), 1, 1, requires_grad=True)
        out = ens(xb) * scale
        ce = nn.functional.cross_entropy(out.flatten(0, 1), yb.flatten(), reduction="none").view(yb.shape) * wb
        loss = ce.mean(-1)
        if mode == "irm" and step >= prof.irm_anneal * prof.steps:
            penalty = sum(torch.autograd.grad(ce[:, e * half:(e + 1) * half].mean(-1).sum(), scale,
                                              create_graph=True)[0].pow(2).flatten() for e in (0, 1))
            loss = (loss + prof.irm_weight * penalty) / prof.irm_weight
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    return [ens.member(i).eval() for i in range(len(tasks))]


# --- measurement: accuracy, tag flip rate, attribution shares (captum) ------------------------------
def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(x)).argmax(-1).numpy()


def tag_share(attr: torch.Tensor) -> float:
    mass = attr.abs().reshape(len(attr), SIDE, SIDE)
    return float((mass[:, TAG[0], TAG[1]].sum((1, 2)) / mass.sum((1, 2)).clamp_min(1e-12)).mean())


def attribution_shares(model: nn.Module, x: np.ndarray, prof: ShortcutProfile) -> tuple[float, float]:
    """Mean share of |attribution| on the tag pixels for the predicted class: captum IG and LRP."""
    from captum.attr import LRP, IntegratedGradients

    xt = torch.as_tensor(x[: prof.n_attr])
    target = model(xt).argmax(-1)
    ig = IntegratedGradients(model).attribute(xt, baselines=torch.zeros_like(xt), target=target,
                                              n_steps=prof.ig_steps)
    lrp = LRP(model).attribute(xt.clone().requires_grad_(True), target=target)
    return tag_share(ig.detach()), tag_share(lrp.detach())


def measure(model: nn.Module, task: ShortcutTask, prof: ShortcutProfile, oracle: bool = False) -> dict[str, float]:
    strip = (lambda x: with_tag(x, False)) if oracle else (lambda x: x)
    tagged = task.x_test[task.cue_test == 1]
    ig_share, lrp_share = attribution_shares(model, strip(tagged), prof)
    on, off = predict(model, strip(with_tag(task.x_test, True))), predict(model, strip(with_tag(task.x_test, False)))
    return {
        "test_accuracy": float((predict(model, strip(task.x_test)) == task.y_test).mean()),
        "train_accuracy": float((predict(model, strip(task.x_train)) == task.y_train).mean()),
        "tag_flip_rate": float((on != off).mean()),
        "ig_cue_share": ig_share,
        "lrp_cue_share": lrp_share,
    }


def contender(mode: str):
    def fn(tasks: list[ShortcutTask], ctxs: list[Context]) -> list[dict[str, float]]:
        models = fit(tasks, ctxs, mode)
        return [measure(m, t, ctxs[0].profile, oracle=mode == "oracle") for m, t in zip(models, tasks, strict=True)]

    fn.__name__ = mode
    return fn


# --- the probe ------------------------------------------------------------------------------
PROBE = Probe(
    id="shortcut",
    family="perception",
    claim="A net trained by ERM learns a spurious cue (a corner tag) that agrees with the label more often "
          "than the content does, falls below chance when the cue flips, and attribution exposes it.",
    sources=("seeds/004_4ead15eadcdcceb2.txt",
             "Lapuschkin et al. 2019, Unmasking Clever Hans predictors, Nat. Commun. 10:1096",
             "Arjovsky, Bottou, Gulrajani & Lopez-Paz 2019, Invariant risk minimization (Colored MNIST)"),
    version=1,
    knob=Knob("p", "probability that the tag agrees with the label in training (test: 0.1)",
              validate=lambda v: 0.5 <= float(v) <= 1.0),
    metrics=(
        Metric("test_accuracy", "accuracy on the test environment, where the tag mostly disagrees with the label "
               "(labels 25 % noisy: 0.75 is the best invariant score)", chance=0.5, lo=0.0, hi=1.0),
        Metric("train_accuracy", "accuracy on the training environments", chance=0.5, lo=0.0, hi=1.0),
        Metric("tag_flip_rate", "share of test images whose prediction changes when the tag is pasted vs removed",
               direction="lower", lo=0.0, hi=1.0),
        Metric("ig_cue_share", f"share of |Integrated Gradients| on the tag pixels (area share {TAG_AREA:.2f})",
               direction="lower", lo=0.0, hi=1.0),
        Metric("lrp_cue_share", f"share of |LRP relevance| (captum, epsilon rule) on the tag pixels "
               f"(area share {TAG_AREA:.2f})", direction="lower", lo=0.0, hi=1.0),
    ),
    rule=Threshold("test_accuracy", success=0.5),
    profiles=PROFILES,
    make_task=make_task,
    contenders=(
        Contender("erm", "deep", contender("erm"), "MLP 100-128-128-2, Adam + weight decay, ERM", batched=True),
        Contender("group_balanced", "remedy", contender("group_balanced"),
                  "the same MLP, (label, tag) groups reweighted to equal mass", batched=True),
        Contender("irm", "remedy", contender("irm"), "the same MLP with the IRMv1 penalty (weight 1e4)",
                  batched=True),
        Contender("oracle", "remedy", contender("oracle"), "the same MLP with the tag pixels zeroed", batched=True),
    ),
    references=(
        Reference("Arjovsky et al. 2019, Colored MNIST (test environment)",
                  "MNIST 2×14×14, label digit<5 with 25 % noise, colour agreement 0.9 / 0.8 in training, 0.1 at test; "
                  "MLP, 501 full-batch Adam steps",
                  "test accuracy ERM 17.1 ± 0.6 %, IRM 66.9 ± 2.5 %, grayscale oracle 73.0 ± 0.4 %, optimum 75 %",
                  "secondary quotations (two agree)", points=((0.85, 0.171), (0.85, 0.669), (0.85, 0.73)),
                  metric="test_accuracy"),
        Reference("Arjovsky et al. 2019, Colored MNIST (training environments)", "as above",
                  "train accuracy ERM 87.4 %, IRM 70.8 %, oracle 73.5 %", "secondary quotations (two agree)",
                  points=((0.85, 0.874), (0.85, 0.708), (0.85, 0.735)), metric="train_accuracy"),
        Reference("Lapuschkin et al. 2019 (PASCAL VOC horse class)",
                  "Fisher-vector classifier, LRP heatmaps",
                  "a source tag in about one fifth of horse images; relevance concentrates on the tag; pasting it "
                  "onto a car image flips the label to horse", "secondary quotations (two agree)"),
    ),
    requires=("captum",),
    extra="perception",
    budget=lambda p: f"MLP {p.width}-{p.width}, {p.steps} Adam steps × batch {p.batch}",
)
