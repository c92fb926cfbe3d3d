"""Small networks several probes share (a probe's own architecture stays in its file)."""

from __future__ import annotations

import torch
from torch import nn


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
