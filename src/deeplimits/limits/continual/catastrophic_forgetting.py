"""Catastrophic forgetting: a network fine-tuned on task B loses task A.

Claim: a network trained on a sequence of tasks, each only while it is current, loses the earlier
    ones: in the class-incremental setting (no task identity at test time) its average accuracy over
    all tasks seen falls towards 1/T (only the last task's classes are predicted), far below what
    the same network reaches when the data of all tasks is available together, while a small
    replay buffer recovers much of it; EWC's weight penalty does not help in this setting.
Source: seeds/004_4ead15eadcdcceb2.txt ("if you learn A then B, you forget A"); Kirkpatrick et al.
    2017, "Overcoming catastrophic forgetting in neural networks", PNAS 114:3521; van de Ven & Tolias
    2019, "Three scenarios for continual learning", arXiv:1904.07734.
Setup: split digits — scikit-learn's 8×8 digits (130 training and 40 test images per class, a
    stratified split per seed) as 5 tasks of 2 classes, (0,1), (2,3), …, (8,9), learned in that order.
    Knob: T, the number of tasks learned in sequence (T = 1 is the positive control). The same run is
    scored in three settings, each with its own network: class-incremental (class-IL: one 10-way
    head, training on the classes seen so far as active outputs, tested among all classes seen);
    task-incremental (task-IL: the task identity is given, each task has its own 2 outputs);
    permuted digits (T fixed random pixel permutations of all 10 classes, 40 training / 40 test
    images per class and task, the first is the identity; one shared head, no task identity:
    Kirkpatrick's setup). The contender sees each task's training data and test inputs; test labels
    stay hidden.
Deep contender: MLP 64-100-100-10 (ReLU) fine-tuned task after task for a fixed number of epochs per
    task, batch 32, with (a) plain SGD and (b) Adam (van de Ven's optimiser); learning rates picked by
    a small search on a validation split of the 10-class problem trained jointly (see `tuning`).
Remedy: the same MLP and Adam with (1) EWC (Kirkpatrick eq. 3: loss + Σ_t λ/2 Σ_i F_t,i (θ_i − θ*_t,i)²,
    F_t the diagonal Fisher at the end of task t, with the model's own predicted label), λ per
    setting picked over orders of magnitude on a validation split; (2) experience replay with a
    class-balanced buffer of 200 images in total (20 per class once all 10 split classes are seen;
    each step mixes a current batch with a replayed batch of the same size); (3) joint training, the
    upper bound: at each stage the network continues on all data seen so far. Written here in a few
    lines each because avalanche-lib (0.6.0) would pull torchvision (a CUDA build) and wandb.
Metric: average test accuracy over all tasks seen after learning the T-th (class-IL, the rule; success
    0.8, chance 1/(2T), drawn at 0.1); backward transfer BWT = mean_j<T (R_T,j − R_j,j) with R_i,j the
    accuracy on task j after learning task i (negative = forgetting); task-IL and permuted accuracy and
    BWT; task 1's accuracy after task T. Diagnostic: training accuracy on the last task just after it
    was learned (each task is learned: forgetting, not failing to learn).
Reference figure: van de Ven & Tolias 2019, split MNIST, MLP 2×400, Adam, average accuracy after 5
    tasks, Task-IL / Class-IL: fine-tuning 87.2 / 19.9, EWC 98.6 / 20.0, joint 99.7 / 97.9, DGR
    (generative replay) 99.5 / 90.8; experience replay ≈ 0.89–0.90 class-IL (van de Ven, Tuytelaars
    & Tolias 2022 figure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from deeplimits.datasets import digits
from deeplimits.ensemble import Ensemble, make_optimizer, predict, seeded
from deeplimits.models import ImageMLP
from deeplimits.probe import Answer, Contender, Context, Fit, Knob, Metric, Probe, Profile, Reference, Task, Threshold

CLASSES = 10
SETTINGS = ("class_il", "task_il", "permuted")
SGD_LR = 0.3  # picked from {0.01, 0.03, 0.1, 0.3} (see TUNING_SGD)
ADAM_LR = 3e-3  # picked from {3e-4, 1e-3, 3e-3} (see TUNING_ADAM)


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ForgettingProfile(Profile):
    epochs: int = 10  # passes over each task's training data
    batch: int = 32
    width: int = 100
    n_train: int = 130  # split digits: training images per class
    n_test: int = 40  # test images per class
    n_perm_train: int = 40  # permuted digits: training images per class and task
    sgd_lr: float = SGD_LR
    adam_lr: float = ADAM_LR
    # EWC λ from {1e1, ..., 1e5} at T = 5 on validation splits (seeds 100-102, 100 / 30 images per class):
    # class-IL 0.191 for λ ≤ 1e3 (= fine-tuning), 0.178, 0.162; task-IL 0.950, 0.950, 0.962, 0.973, 0.972;
    # permuted 0.538, 0.646, 0.558, 0.423, 0.425 (fine-tuning: 0.191 / 0.952 / 0.424)
    ewc_lambda_class_il: float = 1e3
    ewc_lambda_task_il: float = 1e4
    ewc_lambda_permuted: float = 1e2
    buffer: int = 200  # replay memory, images in total, class-balanced


PROFILES = {
    "smoke": ForgettingProfile("smoke", knob=(1, 2), seeds=3, epochs=2, n_train=20, n_test=10,
                               n_perm_train=10, buffer=40),
    "quick": ForgettingProfile("quick", knob=(1, 2, 3, 5), seeds=5),
    "paper": ForgettingProfile("paper", knob=(1, 2, 3, 4, 5), seeds=20, epochs=40, width=400),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """One task of a sequence: its training data, test inputs, and the classes it uses."""

    x_train: np.ndarray  # [n, 64]
    y_train: np.ndarray
    x_test: np.ndarray
    classes: tuple[int, ...]


@dataclass(frozen=True)
class Sequence_:
    split: tuple[Stage, ...]  # the split-digits tasks, in order (class-IL and task-IL)
    permuted: tuple[Stage, ...]  # the permuted-digits tasks, in order
    stream_seed: int


def stratified(y: np.ndarray, per_class: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of `per_class[0]` training and `per_class[1]` test images of every class."""
    tr, te = [], []
    for c in range(CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))
        tr.append(idx[:per_class[0]])
        te.append(idx[per_class[0]:per_class[0] + per_class[1]])
    return rng.permutation(np.concatenate(tr)), rng.permutation(np.concatenate(te))


def make_task(n_tasks: int, rng: np.random.Generator, profile: ForgettingProfile) -> Task:
    images, labels = digits()
    x = images.reshape(len(images), -1)
    tr, te = stratified(labels, (profile.n_train, profile.n_test), rng)
    split, split_labels = [], []
    for t in range(n_tasks):
        pair = (2 * t, 2 * t + 1)
        a, b = tr[np.isin(labels[tr], pair)], te[np.isin(labels[te], pair)]
        split.append(Stage(x[a], labels[a], x[b], pair))
        split_labels.append(labels[b])
    permuted, perm_labels = [], []
    for t in range(n_tasks):
        perm = np.arange(x.shape[1]) if t == 0 else rng.permutation(x.shape[1])
        a, b = stratified(labels, (profile.n_perm_train, profile.n_test), rng)
        permuted.append(Stage(x[a][:, perm], labels[a], x[b][:, perm], tuple(range(CLASSES))))
        perm_labels.append(labels[b])
    public = Sequence_(tuple(split), tuple(permuted), int(rng.integers(2**62)))
    return Task(public, {"split": split_labels, "permuted": perm_labels})


# --- training -------------------------------------------------------------------------------
def allowed(setting: str, stages: tuple[Stage, ...], upto: int, task_of: torch.Tensor) -> torch.Tensor:
    """Which outputs may answer each sample [.., N] -> [.., N, 10]: class-IL the classes seen so far,
    task-IL the sample's own task's pair (multi-head), permuted all ten."""
    if setting == "task_il":
        table = torch.zeros(len(stages), CLASSES, dtype=torch.bool)
        for t, s in enumerate(stages):
            table[t, list(s.classes)] = True
        return table[task_of]
    seen = torch.zeros(CLASSES, dtype=torch.bool)
    for s in stages[:upto + 1]:
        seen[list(s.classes)] = True
    return seen.expand(*task_of.shape, CLASSES)


def masked_ce(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the allowed outputs only: [E, B, C] -> [E]."""
    out = out.masked_fill(~mask, -1e9)
    return nn.functional.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(-1)


def fisher(ens: Ensemble, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Diagonal Fisher per member (Kirkpatrick et al. 2017): mean squared gradient of log p(ŷ|x), ŷ the
    model's own prediction, from per-sample gradients (torch.func)."""
    per_member = []
    for e in range(ens.size):
        model = ens.member(e)
        params = {k: v.detach() for k, v in model.named_parameters()}

        def logp(p: dict[str, torch.Tensor], xi: torch.Tensor, mi: torch.Tensor) -> torch.Tensor:
            logits = functional_call(model, p, (xi[None],))[0].masked_fill(~mi, -1e9)
            return torch.log_softmax(logits, -1).max()

        grads = vmap(grad(logp), in_dims=(None, 0, 0))(params, x[e], mask[e])
        per_member.append({k: (g ** 2).mean(0) for k, g in grads.items()})
    return {k: torch.stack([m[ens._names[k]] for m in per_member]) for k in ens.params}


@dataclass
class Learner:
    """One method's state across the sequence (for E members at once)."""

    method: str  # finetune | ewc | replay | joint
    setting: str
    ens: Ensemble
    opt: torch.optim.Optimizer
    gen: torch.Generator
    lam: float = 0.0
    anchors: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] | None = None
    memory: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # x [E, M, 64], y, task id


def stack(stages: list[Stage], attr: str) -> torch.Tensor:
    return torch.as_tensor(np.stack([getattr(s, attr) for s in stages]))


def learn_stage(lr_: Learner, stages_e: list[tuple[Stage, ...]], t: int, prof: ForgettingProfile) -> float:
    """Train every member on task t of its own sequence; return nothing but the members' mean fit."""
    x = stack([s[t] for s in stages_e], "x_train").float()
    y = stack([s[t] for s in stages_e], "y_train")
    task = torch.full(y.shape, t)
    if lr_.method == "joint":  # all data seen so far, together
        x = torch.cat([stack([s[j] for s in stages_e], "x_train").float() for j in range(t + 1)], 1)
        y = torch.cat([stack([s[j] for s in stages_e], "y_train") for j in range(t + 1)], 1)
        task = torch.cat([torch.full((len(stages_e), len(stages_e[0][j].y_train)), j) for j in range(t + 1)], 1)
    stages = stages_e[0]
    members, n = y.shape
    rows = torch.arange(members)[:, None]
    for _ in range(prof.epochs):
        perm = torch.argsort(torch.rand(members, n, generator=lr_.gen), dim=1)
        for i in range(0, n, prof.batch):
            idx = perm[:, i:i + prof.batch]
            xb, yb, tb = x[rows, idx], y[rows, idx], task[rows, idx]
            if lr_.memory is not None:  # replay: a batch of the same size from the buffer
                mx, my, mt = lr_.memory
                pick = torch.randint(mx.shape[1], (members, idx.shape[1]), generator=lr_.gen)
                xb, yb, tb = (torch.cat([xb, mx[rows, pick]], 1), torch.cat([yb, my[rows, pick]], 1),
                              torch.cat([tb, mt[rows, pick]], 1))
            loss = masked_ce(lr_.ens(xb), yb, allowed(lr_.setting, stages, t, tb))
            for f, anchor in lr_.anchors or []:  # EWC, Kirkpatrick eq. 3, one term per earlier task
                for k, v in lr_.ens.params.items():
                    loss = loss + lr_.lam / 2 * (f[k] * (v - anchor[k]) ** 2).flatten(1).sum(1)
            lr_.opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            lr_.opt.step()
    cur_x = stack([s[t] for s in stages_e], "x_train").float()
    cur_y = stack([s[t] for s in stages_e], "y_train")
    mask = allowed(lr_.setting, stages, t, torch.full(cur_y.shape, t))
    fit = (predict(lr_.ens, cur_x).masked_fill(~mask, -1e9).argmax(-1) == cur_y).float().mean()
    if lr_.method == "ewc":
        f = fisher(lr_.ens, cur_x, mask)
        anchor = {k: v.detach().clone() for k, v in lr_.ens.params.items()}
        lr_.anchors = [*(lr_.anchors or []), (f, anchor)]
    if lr_.method == "replay":
        lr_.memory = fill_memory(stages_e, t, prof.buffer, lr_.gen)
    return float(fit)


def fill_memory(stages_e: list[tuple[Stage, ...]], t: int, size: int, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A class-balanced buffer of `size` images over every (task, class) seen up to task t, drawn at
    random from each member's own training data (rebuilt after each task at the same total size)."""
    units = [(j, c) for j in range(t + 1) for c in stages_e[0][j].classes]
    per = max(1, size // len(units))
    xs, ys, ts = [], [], []
    for seq in stages_e:
        bx, by, bt = [], [], []
        for j, c in units:
            idx = np.flatnonzero(seq[j].y_train == c)
            pick = idx[torch.randperm(len(idx), generator=gen)[:per].numpy()]
            bx.append(seq[j].x_train[pick])
            by.append(seq[j].y_train[pick])
            bt.append(np.full(len(pick), j))
        xs.append(np.concatenate(bx))
        ys.append(np.concatenate(by))
        ts.append(np.concatenate(bt))
    return torch.as_tensor(np.stack(xs)).float(), torch.as_tensor(np.stack(ys)), torch.as_tensor(np.stack(ts))


def run_setting(method: str, optimizer: str, setting: str, publics: list[Sequence_], ctxs: list[Context]
                ) -> tuple[list[list[list[np.ndarray]]], float]:
    """R[member][i][j]: predicted labels on test task j after learning task i (j ≤ i); and the mean fit."""
    prof: ForgettingProfile = ctxs[0].profile
    key = "split" if setting != "permuted" else "permuted"
    stages_e = [getattr(p, key) for p in publics]
    ens = Ensemble([seeded(lambda: ImageMLP(64, prof.width, CLASSES), c.rng_seed + SETTINGS.index(setting))
                    for c in ctxs])
    opt = make_optimizer(list(ens.parameters()), optimizer, prof.sgd_lr if optimizer == "sgd" else prof.adam_lr)
    gen = torch.Generator().manual_seed(publics[0].stream_seed % 2**31 + SETTINGS.index(setting))
    learner = Learner(method, setting, ens, opt, gen, lam=getattr(prof, f"ewc_lambda_{setting}"))
    results: list[list[list[np.ndarray]]] = [[] for _ in publics]
    fit = 0.0
    for t in range(len(stages_e[0])):
        fit = learn_stage(learner, stages_e, t, prof)
        for j in range(t + 1):
            xt = stack([s[j] for s in stages_e], "x_test").float()
            mask = allowed(setting, stages_e[0], t, torch.full(xt.shape[:2], j))
            pred = predict(ens, xt).masked_fill(~mask, -1e9).argmax(-1).numpy()
            for e in range(len(publics)):
                if j == 0:
                    results[e].append([])
                results[e][t].append(pred[e])
    return results, fit


def contender(method: str, optimizer: str = "adam"):
    def fn(publics: list[Sequence_], ctxs: list[Context]) -> list[Answer]:
        torch.set_num_threads(1)
        runs = {s: run_setting(method, optimizer, s, publics, ctxs) for s in SETTINGS}
        return [Answer({s: runs[s][0][e] for s in SETTINGS}, {"last_task_fit": runs["class_il"][1]})
                for e in range(len(publics))]

    fn.__name__ = f"{method}_{optimizer}"
    return fn


# --- scoring --------------------------------------------------------------------------------
def summary(r: list[list[np.ndarray]], labels: list[np.ndarray]) -> tuple[float, float, float]:
    """Average accuracy after the last task, backward transfer, and task 1's final accuracy."""
    acc = [[float((p == labels[j]).mean()) for j, p in enumerate(row)] for row in r]
    last = len(acc) - 1
    bwt = float(np.mean([acc[last][j] - acc[j][j] for j in range(last)])) if last else 0.0
    return float(np.mean(acc[last])), bwt, acc[last][0]


def score(task: Task, output: dict[str, Any], ctx: Context) -> dict[str, float]:
    n = len(task.public.split)
    for s in SETTINGS:
        r = output.get(s) if isinstance(output, dict) else None
        if r is None or len(r) != n or any(len(row) != i + 1 for i, row in enumerate(r)):
            raise ValueError(f"output[{s!r}] must hold predictions after each of the {n} tasks on every task seen")
    acc, bwt, first = summary(output["class_il"], task.hidden["split"])
    t_acc, t_bwt, _ = summary(output["task_il"], task.hidden["split"])
    p_acc, p_bwt, _ = summary(output["permuted"], task.hidden["permuted"])
    return {"accuracy": acc, "bwt": bwt, "first_task_accuracy": first, "task_il_accuracy": t_acc,
            "task_il_bwt": t_bwt, "permuted_accuracy": p_acc, "permuted_bwt": p_bwt}


# --- the probe ------------------------------------------------------------------------------
TUNING_SGD = ("lr from {0.01, 0.03, 0.1, 0.3} (plain SGD, batch 32, 10 epochs) by validation accuracy of the "
              "10-class problem trained jointly (no sequence: the easy end), 20 % of the training images held out, "
              "3 seeds: 0.38, 0.76, 0.92, 0.95; picked 0.3")
TUNING_ADAM = ("lr from {3e-4, 1e-3, 3e-3} (Adam, batch 32, 10 epochs) by validation accuracy of the 10-class "
               "problem trained jointly (the easy end), 20 % of the training images held out, 3 seeds: 0.894, 0.946, "
               "0.951; picked 3e-3")

PROBE = Probe(
    id="catastrophic_forgetting",
    family="continual",
    claim="A network trained on tasks in sequence forgets the earlier ones: learned class-incrementally its "
          "average accuracy over the tasks seen falls towards 1/T, while replay of a small buffer keeps much of it.",
    sources=("seeds/004_4ead15eadcdcceb2.txt",
             "Kirkpatrick et al. 2017, Overcoming catastrophic forgetting in neural networks, PNAS 114:3521",
             "van de Ven & Tolias 2019, Three scenarios for continual learning, arXiv:1904.07734"),
    version=1,
    knob=Knob("T", "tasks learned in sequence (split digits: 2 classes each; permuted digits: one permutation each)",
              unit="tasks", validate=lambda v: isinstance(v, int) and 1 <= v <= 5),
    metrics=(
        Metric("accuracy", "class-IL: average test accuracy over all tasks seen after learning the T-th "
               "(chance 1/(2T); the line is drawn at 1/10)", chance=0.1, lo=0.0, hi=1.0),
        Metric("bwt", "class-IL backward transfer: mean change of each earlier task's accuracy since it was "
               "learned (negative = forgetting)", lo=-1.0, hi=1.0),
        Metric("first_task_accuracy", "class-IL: accuracy on task 1 (digits 0, 1) after learning T tasks",
               lo=0.0, hi=1.0),
        Metric("task_il_accuracy", "task-IL (task identity given, 2 outputs per task): average accuracy",
               chance=0.5, lo=0.0, hi=1.0),
        Metric("task_il_bwt", "task-IL backward transfer", lo=-1.0, hi=1.0),
        Metric("permuted_accuracy", "permuted digits (shared 10-way head): average accuracy over the T "
               "permutations", chance=0.1, lo=0.0, hi=1.0),
        Metric("permuted_bwt", "permuted digits backward transfer", lo=-1.0, hi=1.0),
        Metric("last_task_fit", "class-IL training accuracy on the last task just after learning it",
               lo=0.0, hi=1.0, diagnostic=True),
    ),
    rule=Threshold("accuracy", success=0.8),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("finetune_sgd", "deep", contender("finetune", "sgd"),
                  "MLP 64-100-100-10, plain SGD, fine-tuned task after task", batched=True, tuning=TUNING_SGD),
        Contender("finetune_adam", "deep", contender("finetune", "adam"),
                  "MLP 64-100-100-10, Adam, fine-tuned task after task", batched=True, tuning=TUNING_ADAM),
        Contender("ewc", "remedy", contender("ewc"), "the Adam MLP with EWC (Kirkpatrick eq. 3, λ per setting)",
                  batched=True),
        Contender("replay", "remedy", contender("replay"),
                  "the Adam MLP with experience replay from a class-balanced buffer of 200 images", batched=True),
        Contender("joint", "remedy", contender("joint"),
                  "the Adam MLP trained on all tasks seen so far together (the upper bound, not continual)",
                  batched=True),
    ),
    references=(
        Reference("van de Ven & Tolias 2019, split MNIST, Class-IL",
                  "MLP 2×400, Adam lr 1e-3, 2,000 iterations per task, batch 128, 20 seeds; 5 tasks",
                  "fine-tuning 19.9 %, EWC 20.0 %, joint 97.9 %, generative replay 90.8 %",
                  "secondary quotation, two sources agree", points=((5, 0.199),), metric="accuracy"),
        Reference("van de Ven & Tolias 2019, split MNIST, Task-IL", "the same",
                  "fine-tuning 87.2 %, EWC 98.6 %, joint 99.7 %", "secondary quotation, two sources agree",
                  points=((5, 0.872),), metric="task_il_accuracy"),
        Reference("van de Ven, Tuytelaars & Tolias 2022 (tutorial figure), split MNIST Class-IL",
                  "MLP, 20 seeds, 5 contexts", "experience replay ≈ 0.89–0.90, EWC ≈ 0.20–0.23",
                  "read off a plot", points=((5, 0.895),), metric="accuracy"),
        Reference("Kirkpatrick et al. 2017, Fig. 2A, permuted MNIST",
                  "fully connected net, plain SGD", "task A's accuracy collapses as B, C are learned; EWC keeps it",
                  "recalled (qualitative)"),
    ),
    budget=lambda p: (f"MLP 64-{p.width}-{p.width}-10, {p.epochs} epochs per task, batch {p.batch}, "
                      f"SGD lr {p.sgd_lr:g} / Adam lr {p.adam_lr:g}, replay buffer {p.buffer}"),
    budget_fields=("epochs",),
    fit=Fit("last_task_fit", 0.95),  # forgetting, not failing to learn: each task is fitted when it is current
)
