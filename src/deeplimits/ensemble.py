"""Batched training: many small torch models (one per seed) trained at once.

Models here are small, so Python overhead dominates a per-seed loop. `Ensemble` stacks the
members' parameters with `torch.func.stack_module_state` and runs them with `vmap` over
`functional_call`, so one optimizer step updates every member. Members never mix: each has its own
init, its own data stream and its own loss, so a seed's result does not depend on its batch-mates
(up to floating-point summation order). Measured in `benchmarks/batched_vs_loop.py`.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


def seeded(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a model with its own init: the same seed gives the same weights wherever it runs."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return factory()
    finally:
        torch.random.set_rng_state(state)


class Ensemble(nn.Module):
    """E copies of one architecture with stacked parameters; forward takes inputs shaped [E, B, ...]."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        params, buffers = stack_module_state(list(members))
        self.size = len(members)
        self.params = nn.ParameterDict({k.replace(".", "__"): nn.Parameter(v) for k, v in params.items()})
        self._names = {k.replace(".", "__"): k for k in params}
        for k, v in buffers.items():
            self.register_buffer(k.replace(".", "__"), v)
        self._buffer_names = {k.replace(".", "__"): k for k in buffers}
        # only the structure is used; kept out of the module tree so .to(device) leaves it alone
        self.__dict__["base"] = copy.deepcopy(members[0]).to("meta")

        def one(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (p, b), (x,))

        self._forward = vmap(one)

    def stacked(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        params = {self._names[k]: v for k, v in self.params.items()}
        buffers = {n: getattr(self, k) for k, n in self._buffer_names.items()}
        return params, buffers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params, buffers = self.stacked()
        return self._forward(params, buffers, x)

    def call_with(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Forward with the given stacked parameters (keyed as in `self.params`): for torch.func.grad."""
        _, buffers = self.stacked()
        return self._forward({self._names[k]: v for k, v in params.items()}, buffers, x)

    def member(self, i: int) -> nn.Module:
        """A plain module holding member i's current weights (for evaluation, attribution...)."""
        params, buffers = self.stacked()
        model = copy.deepcopy(self.base).to_empty(device=next(iter(params.values())).device)
        state = {k: v[i].detach().clone() for k, v in {**params, **buffers}.items()}
        model.load_state_dict(state)
        return model


def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per member: logits [E, B, C], labels [E, B] -> [E] (a loss for `train`)."""
    per_sample = nn.functional.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none")
    return per_sample.view(y.shape).mean(-1)


def make_optimizer(params: Sequence[torch.Tensor], name: str, lr: float, **options: Any) -> torch.optim.Optimizer:
    """SGD and Adam update each element on its own, so stacked members stay independent.
    `options` go to the optimizer (e.g. momentum, betas=(0.9, 0.99), eps=1e-5)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, foreach=True, **options)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, foreach=True, **options)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd or adam")


def train(ensemble: Ensemble, batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
          loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], steps: int, lr: float,
          optimizer: str = "sgd", on_step: Callable[[int], None] | None = None, compile: bool = False,
          **options: Any) -> None:
    """Train every member for `steps` steps.

    `batches(step)` returns (x [E, B, ...], y [E, B, ...]); `loss_fn(out, y)` returns the per-member
    loss [E]. The members' losses are summed, so each member's gradient is its own. `options` go to
    the optimizer. `compile=True` compiles the gradient (`torch.compile` of `torch.func.grad`):
    about 2.5x faster per step on CPU once compiled, but each new shape costs seconds to compile
    and needs a C++ compiler, so it pays only for long runs (see benchmarks/batched_vs_loop.py).
    """
    params = list(ensemble.parameters())
    opt = make_optimizer(params, optimizer, lr, **options)
    if compile:
        def total(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return loss_fn(ensemble.call_with(p, x), y).sum()

        grad_fn = torch.compile(torch.func.grad(total))
    for step in range(steps):
        x, y = batches(step)
        if compile:
            grads = grad_fn({k: v.detach() for k, v in ensemble.params.items()}, x, y)
            for k, v in ensemble.params.items():
                v.grad = grads[k]
        else:
            loss = loss_fn(ensemble(x), y).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step)


def chunked(makers: Sequence[Callable[[int], tuple[torch.Tensor, torch.Tensor]]], chunk: int = 200
            ) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """Per-member data streams, drawn `chunk` steps at a time.

    `makers[i](n)` returns (x [n, B, ...], y [n, B, ...]) from member i's own generator; drawing in
    chunks costs one call per member per `chunk` steps instead of one per step.
    """
    cache: dict[str, torch.Tensor] = {}

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = step % chunk
        if i == 0 or "x" not in cache:
            xs, ys = zip(*(make(chunk) for make in makers))
            cache["x"], cache["y"] = torch.stack(xs, 1), torch.stack(ys, 1)  # [chunk, E, B, ...]
        return cache["x"][i], cache["y"][i]

    return batches


def accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-member accuracy: logits [E, N, C], labels [E, N] -> [E]."""
    return (out.argmax(-1) == y).float().mean(-1)


def predict(ensemble: Ensemble, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """Outputs [E, N, ...] for inputs [E, N, ...], in slices of `batch` (no grad)."""
    with torch.no_grad():
        return torch.cat([ensemble(x[:, i:i + batch]) for i in range(0, x.shape[1], batch)], 1)


def member_streams(ensemble: Ensemble, x: torch.Tensor) -> list[torch.Generator]:
    """One shuffling generator per member, seeded from its own initial weights and data: a shared
    generator would give a seed different batches depending on how many seeds train beside it."""
    streams = []
    for e in range(ensemble.size):
        h = hashlib.blake2b(digest_size=8)
        for v in ensemble.params.values():
            h.update(v[e].detach().cpu().numpy().tobytes())
        h.update(x[e].detach().cpu().contiguous().numpy().tobytes()[: 1 << 20])
        streams.append(torch.Generator().manual_seed(int.from_bytes(h.digest(), "little") >> 1))
    return streams


def train_epochs(ensemble: Ensemble, x: torch.Tensor, y: torch.Tensor,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], epochs: int, batch: int,
                 lr: float, optimizer: str = "adam", x_val: torch.Tensor | None = None,
                 y_val: torch.Tensor | None = None,
                 score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = accuracy,
                 patience: int | None = None, **options: Any) -> dict[str, torch.Tensor]:
    """Train every member for `epochs` passes over its own data (fairness rule 2: budgets follow
    the data), keeping each member's weights from its best validation epoch (early stopping).

    x [E, N, ...], y [E, N]: member e trains on x[e]; each epoch is a fresh permutation per member,
    drawn from the member's own stream (seeded from its initial weights and its data, so a seed's
    batches never depend on its batch-mates). With a validation split, a member stops counting once
    it has not improved for `patience` epochs, and each member is restored to its best epoch (the
    loop ends when every member has stopped).
    Returns per-member `train` and `val` scores [E]."""
    params = list(ensemble.parameters())
    opt = make_optimizer(params, optimizer, lr, **options)
    members, n = x.shape[0], x.shape[1]
    rows = torch.arange(members, device=x.device)[:, None]
    best_score = torch.full((members,), -float("inf"), device=x.device)
    best = {k: v.detach().clone() for k, v in ensemble.params.items()}
    streams = member_streams(ensemble, x)
    stale = torch.zeros(members, dtype=torch.long, device=x.device)
    active = torch.ones(members, dtype=torch.bool, device=x.device)
    for _ in range(epochs):
        perm = torch.stack([torch.argsort(torch.rand(n, generator=g)) for g in streams]).to(x.device)
        for i in range(0, n, batch):
            idx = perm[:, i:i + batch]
            loss = loss_fn(ensemble(x[rows, idx]), y[rows, idx]).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if x_val is None:
            continue
        val = score(predict(ensemble, x_val), y_val)
        better = (val > best_score) & active  # a stopped member keeps what it had when it stopped
        stale = torch.where(better, 0, stale + 1)
        best_score = torch.where(better, val, best_score)
        for k, v in ensemble.params.items():
            mask = better.view(-1, *[1] * (v.dim() - 1))
            best[k] = torch.where(mask, v.detach(), best[k])
        if patience is not None:
            active &= stale < patience
            if not active.any():
                break
    if x_val is not None:
        with torch.no_grad():
            for k, v in ensemble.params.items():
                v.copy_(best[k])
    out = {"train": score(predict(ensemble, x), y)}
    if x_val is not None:
        out["val"] = best_score
    return out
