"""PicoHead (legacy, GFL-style) of PP-PicoDet (papers.md §3.1).

Per level: a tower of `num_convs` depthwise-separable 5×5 layers shared by classification and regression
("share_cls_reg"), then one 1×1 conv giving `num_classes` class logits (sigmoid) and 4·(reg_max+1) box-bin
logits. A learnable scalar per level scales the box logits, as in GFL. Towers are per level, not shared across
levels, as in PicoFeat.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from edgekd.models.picodet.neck import DepthwiseSeparable

PRIOR_PROB = 0.01


class Scale(nn.Module):
    """Multiply by one learnable scalar (initialised to 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class PicoHead(nn.Module):
    """Dense head: `forward(features)` → (class logits per level (N, C, h, w),
    box-bin logits per level (N, 4·(reg_max+1), h, w))."""

    def __init__(self, channels: int, num_classes: int, strides: Sequence[int], reg_max: int = 7,
                 num_convs: int = 4, kernel: int = 5) -> None:
        super().__init__()
        self.num_classes, self.reg_max, self.strides = num_classes, reg_max, tuple(strides)
        self.towers = nn.ModuleList(
            nn.Sequential(*(DepthwiseSeparable(channels, kernel) for _ in range(num_convs))) for _ in strides
        )
        self.predictors = nn.ModuleList(nn.Conv2d(channels, num_classes + 4 * (reg_max + 1), 1) for _ in strides)
        self.scales = nn.ModuleList(Scale() for _ in strides)
        self._init_predictors()

    def _init_predictors(self) -> None:
        # Start every class score at PRIOR_PROB so the many background points do not swamp the first steps.
        bias_cls = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)
        for conv in self.predictors:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
            nn.init.constant_(conv.bias[: self.num_classes], bias_cls)

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if len(features) != len(self.strides):
            raise ValueError(f"PicoHead has {len(self.strides)} levels, got {len(features)} feature maps")
        class_logits, box_logits = [], []
        for tower, predictor, scale, feature in zip(self.towers, self.predictors, self.scales, features):
            out = predictor(tower(feature))
            class_logits.append(out[:, : self.num_classes])
            # Closed slice ends: an open end exports as INT64_MAX, which TensorRT's parser clamps (its lint fails).
            box_logits.append(scale(out[:, self.num_classes:self.num_classes + 4 * (self.reg_max + 1)]))
        return class_logits, box_logits
