"""A small model with two outputs of different shapes, for backend tests: an output-order mix-up cannot pass."""

from __future__ import annotations

from torch import nn


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1))
        self.classes = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
        self.boxes = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        features = self.body(x)
        return self.classes(features), self.boxes(features)
