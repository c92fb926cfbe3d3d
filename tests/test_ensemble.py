"""Batched training keeps seeds apart: a member's result does not depend on its batch-mates."""

from __future__ import annotations

import torch
from torch import nn

from deeplimits.ensemble import Ensemble, cross_entropy, seeded, train_epochs


def _data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(200, 5, generator=g)
    return x, (x[:, 0] + 0.5 * torch.randn(200, generator=g) > 0).long()


def _train(seeds: list[int], patience: int) -> dict[str, torch.Tensor]:
    ens = Ensemble([seeded(lambda: nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2)), s)
                    for s in seeds])
    data = [_data(s) for s in seeds]
    x = torch.stack([d[0] for d in data])
    y = torch.stack([d[1] for d in data])
    return train_epochs(ens, x[:, :150], y[:, :150], cross_entropy, epochs=40, batch=16, lr=0.05,
                        x_val=x[:, 150:], y_val=y[:, 150:], patience=patience)


def test_a_member_trains_the_same_alone_and_beside_others() -> None:
    # patience 2 makes members stop at different epochs: a shared stop or a shared shuffle would show
    alone = _train([3], patience=2)
    beside = _train([7, 3, 11], patience=2)
    assert torch.allclose(alone["val"][0], beside["val"][1], atol=1e-5)
    assert torch.allclose(alone["train"][0], beside["train"][1], atol=1e-5)
    first, second = _train([3, 7], patience=2), _train([7, 3], patience=2)
    assert torch.allclose(first["train"], second["train"].flip(0), atol=1e-5)
