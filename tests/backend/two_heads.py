"""Small models for backend tests: two outputs of different shapes (an output-order mix-up cannot pass), and the
mono3d lift's gather → scatter-add form."""

from __future__ import annotations

import torch
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


class RowsScatter(nn.Module):
    """The mono3d lift's `rows` form in small: gather weighted rows of a feature table and scatter-add them into
    cells (ONNX Gather → Mul → ScatterND add), some cells never reached."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)  # as mono3d's BEV head: the scattered cells feed a convolution
        generator = torch.Generator().manual_seed(0)
        self.register_buffer("rows", torch.randint(0, 64, (90,), generator=generator))
        self.register_buffer("cells", torch.randint(0, 40, (90,), generator=generator))
        self.register_buffer("weights", torch.rand(90, 1, generator=generator))

    def forward(self, x):
        features = self.conv(x)
        batch, channels = features.shape[:2]
        table = features.flatten(2).permute(2, 0, 1).reshape(64, batch * channels)  # (64 rows, N·C), as mono3d
        picked = table.index_select(0, self.rows) * self.weights
        cells = table.new_zeros(48, batch * channels).index_add(0, self.cells, picked)  # cells 40..47 stay zero
        return self.head(cells.reshape(6, 8, batch, channels).permute(2, 3, 0, 1))
