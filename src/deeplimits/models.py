"""Small networks several probes share (a probe's own architecture stays in its file)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .ensemble import Ensemble, accuracy, cross_entropy, predict, seeded, train_epochs


class ImageMLP(nn.Module):
    """Flatten, two hidden ReLU layers, linear output. Each ReLU is its own module so captum's LRP
    can hook every layer; the layer names fix the init order, so a seed gives the same weights."""

    def __init__(self, inputs: int, width: int = 128, classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(inputs, width)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(width, width)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x.reshape(x.shape[0], -1))))))


class PooledCNN(nn.Module):
    """Small CNN ending in global average pooling (fairness rule 1's image arm): conv-maxpool-conv-conv,
    global average pool, linear. Every ReLU and pool is its own module so captum's LRP can hook it."""

    def __init__(self, channels: int = 1, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.relu3 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu2(self.conv2(self.pool(self.relu1(self.conv1(x)))))
        return self.fc(self.gap(self.relu3(self.conv3(h))).flatten(1))


def fit_members(factory: Callable[[], nn.Module], seeds: Sequence[int], x: np.ndarray, y: np.ndarray,
                x_val: np.ndarray, y_val: np.ndarray, *, epochs: int, batch: int, lr: float, patience: int,
                device: str = "cpu", loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy,
                score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = accuracy, track_fit: bool = False,
                **options: Any) -> tuple[Ensemble, dict[str, np.ndarray]]:
    """One member per seed, member e trained on x[e] (x [E, N, ...], y [E, N]) in epochs with early
    stopping on its own validation split (fairness rule 2, via `train_epochs`); each member ends at
    its best validation epoch. Returns the ensemble and per-member `train` and `val` scores; with
    `track_fit`, also `fit`: the highest training accuracy a member reached in any epoch (can it fit
    its data at this budget? early stopping may restore an earlier, less fitted epoch for testing;
    costs one forward pass over the training data per epoch)."""
    ens = Ensemble([seeded(factory, s) for s in seeds]).to(device)
    n_val = x_val.shape[1]
    fit = torch.zeros(len(seeds))

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=device)

    def tracked(out: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Early-stopping score on the validation rows; training rows ride along to track the fit."""
        if out.shape[1] > n_val:
            fit.copy_(torch.maximum(fit, accuracy(out[:, n_val:], labels[:, n_val:]).cpu()))
        return score(out[:, :n_val], labels[:, :n_val])

    if not track_fit:
        stats = train_epochs(ens, t(x), t(y), loss, epochs, batch, lr, "adam", t(x_val), t(y_val), score,
                             patience, **options)
        return ens, {k: v.detach().cpu().numpy() for k, v in stats.items()}
    both_x, both_y = torch.cat([t(x_val), t(x)], 1), torch.cat([t(y_val), t(y)], 1)
    stats = train_epochs(ens, t(x), t(y), loss, epochs, batch, lr, "adam", both_x, both_y, tracked,
                         patience, **options)
    out = {k: v.detach().cpu().numpy() for k, v in stats.items()}
    out["train"] = accuracy(predict(ens, t(x)), t(y)).cpu().numpy()
    out["fit"] = np.maximum(fit.numpy(), out["train"])
    return ens, out


def predict_labels(ens: Ensemble, x: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Class predictions [E, N] of every member on its own inputs x [E, N, ...] (argmax of the logits)."""
    return predict(ens, torch.as_tensor(x, device=device)).argmax(-1).cpu().numpy()


class SeqLSTM(nn.Module):
    """One-layer LSTM (batch first) written with nn.Linear so that `Ensemble` can vmap it: torch's
    fused LSTM kernel has no vmap batching rule. Same gates and equations as nn.LSTM."""

    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.ih = nn.Linear(inputs, 4 * hidden)
        self.hh = nn.Linear(hidden, 4 * hidden, bias=False)

    def step(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: x [B, inputs], state (h, c) [B, hidden] -> the new (h, c)."""
        h, c = state
        i, f, g, o = (self.ih(x) + self.hh(h)).chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x [B, T, inputs] -> outputs [B, T, hidden] and the last (h, c)."""
        if state is None:
            zero = x.new_zeros(x.shape[0], self.hidden)
            state = (zero, zero)
        outs = []
        for t in range(x.shape[1]):
            state = self.step(x[:, t], state)
            outs.append(state[0])
        return torch.stack(outs, 1), state
