"""Shortcut: a net trained by ERM latches onto a spurious cue (the Clever-Hans tag) and fails when it flips.

Claim: when a spurious cue agrees with the label more often than the real content does, a network
    trained by empirical risk minimisation bases its decisions on the cue; its accuracy falls
    towards or below chance once the cue's relation to the label is reversed and attribution maps
    put their mass on the cue, while training that makes cue and label independent keeps the
    content-based accuracy.
Source: seeds/004_4ead15eadcdcceb2.txt (the horse photos' copyright tag); Lapuschkin et al. 2019,
    "Unmasking Clever Hans predictors", Nat. Commun.; Arjovsky, Bottou, Gulrajani & Lopez-Paz 2019,
    "Invariant risk minimization" (Colored MNIST); Sagawa, Koh, Hashimoto & Liang 2020 (group
    annotations, "Distributionally robust neural networks").
Setup: Colored-MNIST recipe on scikit-learn's 8×8 digits with a tag instead of colour: each digit is
    placed in a 10×10 canvas (top-right), the binary label is digit < 5, flipped with probability
    0.25 (content predicts 75 %); the cue is a 2×2 white tag in the empty bottom-left corner,
    present iff c = 1, where c equals the (noisy) label with probability p_e. Two training
    environments have p_e = p ± δ (δ = min(0.05, 1 − p); Arjovsky's 0.9 / 0.8 is p = 0.85); 20 % of
    the training pool is a validation split from the same environments (early stopping, tuning);
    the test environment has p_e = 0.1 (cue mostly reversed, as Arjovsky's test colour flip). Knob:
    the spurious correlation strength p; p = 0.5 makes the cue useless (the control end). The
    training data carry each image's environment and its group annotation (the cue bit, as
    Waterbirds/CelebA carry group labels in Sagawa et al.); test images come without either.
    The contender returns its trained model (a torch module mapping [N, 1, 10, 10] to 2 logits);
    the probe measures it.
Deep contender: two arms trained by plain ERM (Adam, epochs with per-member early stopping on the
    validation split, several seeds at once with deeplimits.ensemble): an MLP 100-128-128-2 and a
    CNN ending in global average pooling (conv - maxpool - conv - conv - GAP - linear);
    hyperparameters from a small search at p = 0.5 on the validation split (see `tuning`).
Remedy: group_balanced — the MLP with per-sample weights giving the four (label, cue) groups equal
    mass (so cue and label are independent in the weighted training set; uses the group annotation),
    early stopping on the group-balanced validation accuracy. irm — the MLP with the IRMv1 penalty
    (squared gradient of each environment's risk w.r.t. a dummy logit scale, switched on after
    `irm_anneal` of the epochs, loss divided by the weight then; Arjovsky's recipe; uses the
    environment labels), its weight picked at p = 0.5 on the validation split (see `IRM_TUNING`);
    the IRM paper instead selected on the test environment, which is not done here. Tuned this way
    (the penalty costs validation accuracy where there is no shortcut) IRM stays near ERM-with-noise
    and fails (test ≈ 0.45 at p = 0.8 and 0.95 in the quick profile).
Metric: test accuracy on the reversed-cue environment (chance 0.5; success ≥ 0.625, halfway between
    chance and the 0.75 of the best invariant classifier here; Arjovsky's IRM reached 0.67). Diagnostics:
    training accuracy; tag flip rate (share of test images whose prediction changes when the tag is
    pasted vs removed — Lapuschkin's pasted tag); the attribution audit: share of |attribution| on
    the 4 tag pixels (area share 0.04) of tagged test images for the predicted class, by captum's
    IntegratedGradients (zero baseline) and captum's LRP (epsilon rule; zennit needs torchvision).
Reference figure: Arjovsky et al. 2019 Colored MNIST train / test accuracy: ERM 87.4 / 17.1,
    IRM 70.8 / 66.9, grayscale oracle 73.5 / 73.0, optimum 75 / 75.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deeplimits.datasets import digits
from deeplimits.ensemble import Ensemble, predict, seeded
from deeplimits.models import ImageMLP, PooledCNN, fit_members
from deeplimits.probe import Answer, Contender, Context, Knob, Metric, Probe, Profile, Reference, Task, Threshold

SIDE = 10  # canvas side
TAG = (slice(SIDE - 2, SIDE), slice(0, 2))  # bottom-left 2x2, never touched by the digit
TAG_AREA = 4 / SIDE**2


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShortcutProfile(Profile):
    n_test: int = 400
    val_share: float = 0.2
    label_noise: float = 0.25
    test_agreement: float = 0.1  # P(cue = label) in the test environment
    epochs: int = 40  # early stopping on the validation split
    patience: int = 8  # noisy labels: the validation curve can sit flat for a few epochs before it rises
    batch: int = 64
    mlp_width: int = 128
    mlp_lr: float = 1e-2
    cnn_width: int = 16
    cnn_lr: float = 3e-3
    weight_decay: float = 1e-3
    irm_weight: float = 1e2
    irm_anneal: float = 1 / 3  # share of the epochs before the IRM penalty switches on
    n_attr: int = 100  # tagged test images for the attribution shares
    ig_steps: int = 32


PROFILES = {
    "smoke": ShortcutProfile("smoke", knob=(0.5, 0.9), seeds=3, epochs=3, n_attr=10, ig_steps=8, n_test=100,
                             cnn_width=4),
    "quick": ShortcutProfile("quick", knob=(0.5, 0.8, 0.95), seeds=5),
    "paper": ShortcutProfile("paper", knob=(0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99), seeds=10, epochs=100,
                             patience=10, n_attr=300, ig_steps=64),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaggedDigits:
    """What a learner sees: training/validation images with labels, environments and group annotations."""

    p: float
    x_train: np.ndarray  # [n, 1, 10, 10], tag already stamped where cue = 1
    y_train: np.ndarray  # noisy binary labels
    env_train: np.ndarray  # 0 or 1
    cue_train: np.ndarray  # the group annotation
    x_val: np.ndarray
    y_val: np.ndarray
    env_val: np.ndarray
    cue_val: np.ndarray
    x_test: np.ndarray
    stream_seed: int


@dataclass(frozen=True)
class Hidden:
    y_test: np.ndarray
    cue_test: np.ndarray


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


def make_task(p: float, rng: np.random.Generator, profile: ShortcutProfile) -> Task:
    x, d = digits()
    idx = rng.permutation(len(x))
    test, pool = idx[: profile.n_test], idx[profile.n_test:]
    halves = np.array_split(pool, 2)
    delta = min(0.05, 1.0 - p)
    parts = [environment(x[h], d[h], a, profile.label_noise, rng) for h, a in zip(halves, (p + delta, p - delta),
                                                                                   strict=True)]
    xs, ys, cues = (np.concatenate([q[k] for q in parts]) for k in range(3))
    envs = np.concatenate([np.full(len(h), e) for e, h in enumerate(halves)])
    val = np.zeros(len(ys), bool)
    val[rng.permutation(len(ys))[: int(len(ys) * profile.val_share)]] = True  # same size for every seed
    x_te, y_te, c_te = environment(x[test], d[test], profile.test_agreement, profile.label_noise, rng)
    public = TaggedDigits(float(p), xs[~val], ys[~val], envs[~val], cues[~val], xs[val], ys[val], envs[val],
                          cues[val], x_te, int(rng.integers(2**62)))
    return Task(public, Hidden(y_te, c_te))


# --- training ---------------------------------------------------------------------------------
def stack(tasks: list[TaggedDigits], field: str) -> np.ndarray:
    return np.stack([getattr(t, field) for t in tasks])


def group_weights(y: np.ndarray, cue: np.ndarray) -> np.ndarray:
    """Weights giving each (label, cue) group the same total mass (mean weight 1)."""
    group = 2 * y + cue
    counts = np.bincount(group, minlength=4).astype(np.float64)
    present = (counts > 0).sum()
    return (len(y) / (present * np.maximum(counts[group], 1))).astype(np.float32)


def weighted_ce(out: torch.Tensor, yw: torch.Tensor) -> torch.Tensor:
    """Per-member weighted cross-entropy; yw [E, B, 2] packs (label, weight) so train_epochs can index it."""
    y, w = yw[..., 0].long(), yw[..., 1]
    ce = nn.functional.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
    return (ce * w).sum(-1) / w.sum(-1)


def weighted_accuracy(out: torch.Tensor, yw: torch.Tensor) -> torch.Tensor:
    y, w = yw[..., 0].long(), yw[..., 1]
    return ((out.argmax(-1) == y).float() * w).sum(-1) / w.sum(-1)


def packed(tasks: list[TaggedDigits], split: str, balanced: bool) -> np.ndarray:
    y, cue = stack(tasks, f"y_{split}"), stack(tasks, f"cue_{split}")
    w = np.stack([group_weights(a, c) for a, c in zip(y, cue, strict=True)]) if balanced else np.ones_like(y)
    return np.stack([y, w], -1).astype(np.float32)


def factory(arch: str, prof: ShortcutProfile):
    if arch == "mlp":
        return lambda: ImageMLP(SIDE * SIDE, prof.mlp_width, 2)
    return lambda: PooledCNN(1, prof.cnn_width, 2)


def erm(tasks: list[TaggedDigits], ctxs: list[Context], arch: str, balanced: bool = False,
        lr: float | None = None) -> list[Answer]:
    """(Weighted) ERM with early stopping on the (equally weighted) validation split."""
    prof: ShortcutProfile = ctxs[0].profile
    lr = lr if lr is not None else getattr(prof, f"{arch}_lr")
    ens, stats = fit_members(factory(arch, prof), [c.rng_seed for c in ctxs], stack(tasks, "x_train"),
                             packed(tasks, "train", balanced), stack(tasks, "x_val"), packed(tasks, "val", balanced),
                             epochs=prof.epochs, batch=prof.batch, lr=lr, patience=prof.patience, loss=weighted_ce,
                             score=weighted_accuracy, weight_decay=prof.weight_decay)
    with torch.no_grad():
        train_acc = (predict(ens, torch.as_tensor(stack(tasks, "x_train"))).argmax(-1).numpy()
                     == stack(tasks, "y_train")).mean(-1)
    return [Answer(ens.member(i).eval(), {"train_accuracy": float(train_acc[i])}) for i in range(len(tasks))]


def irm_train(tasks: list[TaggedDigits], ctxs: list[Context], weight: float) -> list[Answer]:
    """IRMv1 (Arjovsky et al.): each step draws half its batch from each training environment; the penalty
    is the squared gradient of each environment's risk w.r.t. a dummy logit scale. Hand-written: no kept
    library implements IRM for these batched ensembles. Fixed epochs, as in the paper (no early stopping:
    validation accuracy on the training distribution would favour the cue the penalty removes)."""
    prof: ShortcutProfile = ctxs[0].profile
    ens = Ensemble([seeded(factory("mlp", prof), c.rng_seed) for c in ctxs])
    opt = torch.optim.Adam(list(ens.parameters()), lr=prof.mlp_lr, weight_decay=prof.weight_decay, foreach=True)
    data = [(torch.as_tensor(t.x_train), torch.as_tensor(t.y_train), [np.flatnonzero(t.env_train == e) for e in (0, 1)],
             np.random.default_rng(t.stream_seed)) for t in tasks]
    half = prof.batch // 2
    steps = prof.epochs * (len(tasks[0].y_train) // prof.batch)
    for step in range(steps):
        picks = [np.concatenate([rng.choice(e, half) for e in envs]) for (_, _, envs, rng) in data]
        xb = torch.stack([d[0][p] for d, p in zip(data, picks, strict=True)])
        yb = torch.stack([d[1][p] for d, p in zip(data, picks, strict=True)])
        scale = torch.ones(len(tasks), 1, 1, requires_grad=True)
        ce = nn.functional.cross_entropy((ens(xb) * scale).flatten(0, 1), yb.flatten(), reduction="none").view(yb.shape)
        loss = ce.mean(-1)
        if step >= prof.irm_anneal * steps:
            penalty = sum(torch.autograd.grad(ce[:, e * half:(e + 1) * half].mean(-1).sum(), scale,
                                              create_graph=True)[0].pow(2).flatten() for e in (0, 1))
            loss = (loss + weight * penalty) / max(weight, 1.0)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        train_acc = (ens(torch.as_tensor(stack(tasks, "x_train"))).argmax(-1).numpy()
                     == stack(tasks, "y_train")).mean(-1)
    return [Answer(ens.member(i).eval(), {"train_accuracy": float(train_acc[i])}) for i in range(len(tasks))]


def deep(arch: str):
    def fn(tasks: list[TaggedDigits], ctxs: list[Context]) -> list[Answer]:
        return erm(tasks, ctxs, arch)

    fn.__name__ = arch
    return fn


def group_balanced(tasks: list[TaggedDigits], ctxs: list[Context]) -> list[Answer]:
    return erm(tasks, ctxs, "mlp", balanced=True)


def irm(tasks: list[TaggedDigits], ctxs: list[Context]) -> list[Answer]:
    return irm_train(tasks, ctxs, ctxs[0].profile.irm_weight)


# --- measurement: accuracy, tag flip rate, attribution shares (captum) ------------------------------
def labels(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(x)).argmax(-1).numpy()


def tag_share(attr: torch.Tensor) -> float:
    mass = attr.abs().reshape(len(attr), SIDE, SIDE)
    return float((mass[:, TAG[0], TAG[1]].sum((1, 2)) / mass.sum((1, 2)).clamp_min(1e-12)).mean())


def attribution_shares(model: nn.Module, x: np.ndarray, prof: ShortcutProfile) -> dict[str, float]:
    """Mean share of |attribution| on the tag pixels for the predicted class: captum IG and LRP.
    LRP needs a model built from layers captum has rules for; other models get IG only."""
    from captum.attr import LRP, IntegratedGradients

    xt = torch.as_tensor(x[: prof.n_attr])
    with torch.no_grad():
        target = model(xt).argmax(-1)
    ig = IntegratedGradients(model).attribute(xt, baselines=torch.zeros_like(xt), target=target,
                                              n_steps=prof.ig_steps)
    out = {"ig_cue_share": tag_share(ig.detach())}
    try:
        lrp = LRP(model).attribute(xt.clone().requires_grad_(True), target=target)
        out["lrp_cue_share"] = tag_share(lrp.detach())
    except TypeError:  # captum has no LRP rule for one of the model's layers
        pass
    return out


def score(task: Task, model: nn.Module, ctx: Context) -> dict[str, float]:
    prof: ShortcutProfile = ctx.profile
    data, hidden = task.public, task.hidden
    model.eval()
    on, off = labels(model, with_tag(data.x_test, True)), labels(model, with_tag(data.x_test, False))
    return {
        "test_accuracy": float((labels(model, data.x_test) == hidden.y_test).mean()),
        "tag_flip_rate": float((on != off).mean()),
        **attribution_shares(model, data.x_test[hidden.cue_test == 1], prof),
    }


# --- the probe ------------------------------------------------------------------------------
TUNING = "searched at p = 0.5 on the validation split (3 seeds, Adam, weight decay 1e-3, batch 64, early stopping): "
IRM_TUNING = ("searched at p = 0.5 on the validation split (3 seeds, the MLP's lr 1e-2): weight ∈ {1e2, 1e3, "
              "1e4}, val accuracy 0.618 / 0.571 / 0.566 (ERM 0.710), picked 1e2")

PROBE = Probe(
    id="shortcut",
    family="perception",
    claim="A net trained by ERM learns a spurious cue (a corner tag) that agrees with the label more often "
          "than the content does, fails when the cue flips, and attribution exposes it.",
    sources=("seeds/004_4ead15eadcdcceb2.txt",
             "Lapuschkin et al. 2019, Unmasking Clever Hans predictors, Nat. Commun. 10:1096",
             "Arjovsky, Bottou, Gulrajani & Lopez-Paz 2019, Invariant risk minimization (Colored MNIST)",
             "Sagawa, Koh, Hashimoto & Liang 2020, Distributionally robust neural networks"),
    version=2,
    knob=Knob("p", "probability that the tag agrees with the label in training (test: 0.1)",
              validate=lambda v: 0.5 <= float(v) <= 1.0),
    metrics=(
        Metric("test_accuracy", "accuracy on the test environment, where the tag mostly disagrees with the label "
               "(labels 25 % noisy: 0.75 is the best invariant score)", chance=0.5, lo=0.0, hi=1.0),
        Metric("tag_flip_rate", "share of test images whose prediction changes when the tag is pasted vs removed",
               direction="lower", lo=0.0, hi=1.0),
        Metric("ig_cue_share", f"share of |Integrated Gradients| on the tag pixels (area share {TAG_AREA:.2f})",
               direction="lower", lo=0.0, hi=1.0),
        Metric("lrp_cue_share", f"share of |LRP relevance| (captum, epsilon rule) on the tag pixels "
               f"(area share {TAG_AREA:.2f})", direction="lower", lo=0.0, hi=1.0),
        Metric("train_accuracy", "accuracy on the arm's own training data (25 % label noise)", chance=0.5, lo=0.0,
               hi=1.0, diagnostic=True),
    ),
    rule=Threshold("test_accuracy", success=0.625),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("mlp", "deep", deep("mlp"), "MLP 100-128-128-2, Adam + weight decay, ERM", batched=True,
                  tuning=TUNING + "lr ∈ {1e-3, 3e-3, 1e-2}: val accuracy 0.701 / 0.708 / 0.710 (within noise of "
                  "the 0.73 ceiling), picked 1e-2"),
        Contender("cnn", "deep", deep("cnn"), "CNN conv16-maxpool-conv32-conv32-GAP-linear, Adam + weight decay, ERM",
                  batched=True, tuning=TUNING + "lr ∈ {1e-3, 3e-3, 1e-2}: val accuracy 0.681 / 0.699 / 0.584, "
                  "picked 3e-3"),
        Contender("group_balanced", "remedy", group_balanced,
                  "the MLP, (label, tag) groups reweighted to equal mass (uses the training group annotation)",
                  batched=True),
        Contender("irm", "remedy", irm, "the MLP with the IRMv1 penalty (uses the environment labels)", batched=True,
                  tuning=IRM_TUNING),
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
    budget_fields=("epochs", "patience"),  # early stopping binds first unless patience grows too
    requires=("captum",),
    extra="perception",
    budget=lambda p: (f"MLP {p.mlp_width}-{p.mlp_width} and CNN {p.cnn_width}-{2 * p.cnn_width}, ≤ {p.epochs} epochs "
                      f"(early stopping), IRM weight {p.irm_weight:g}"),
)
