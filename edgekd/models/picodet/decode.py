"""GFL box decoding shared by the detector's export modes, the training loss and host post-processing.

A level of stride s with an h×w map has one anchor point per cell, at the cell centre ((j + 0.5)·s,
(i + 0.5)·s) in input pixels. Each point predicts, per side (left, top, right, bottom), a distribution over the
bins 0..reg_max; its expectation × s is the distance from the point to that side of the box.

>>> centers, strides = anchor_points([(2, 2)], [8])
>>> centers.tolist(), strides.tolist()
([[4.0, 4.0], [12.0, 4.0], [4.0, 12.0], [12.0, 12.0]], [8.0, 8.0, 8.0, 8.0])
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

CELL_OFFSET = 0.5


def anchor_points(sizes: Sequence[tuple[int, int]], strides: Sequence[int],
                  device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor centres (A, 2) as (x, y) in input pixels and their strides (A,), levels in order, row-major."""
    centers, level_strides = [], []
    for (height, width), stride in zip(sizes, strides):
        ys = (torch.arange(height, device=device, dtype=torch.float32) + CELL_OFFSET) * stride
        xs = (torch.arange(width, device=device, dtype=torch.float32) + CELL_OFFSET) * stride
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        centers.append(torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1))
        level_strides.append(torch.full((height * width,), float(stride), device=device))
    return torch.cat(centers), torch.cat(level_strides)


def flatten_levels(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-level (N, K, h, w) maps → (N, A, K), levels concatenated in order (the anchor order above)."""
    return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)


def distribution_to_distance(logits: torch.Tensor, reg_max: int) -> torch.Tensor:
    """(..., 4·(reg_max+1)) logits → (..., 4) expected distances in bins (the DFL integral)."""
    probs = F.softmax(logits.unflatten(-1, (4, reg_max + 1)), dim=-1)
    bins = torch.arange(reg_max + 1, device=logits.device, dtype=probs.dtype)
    return (probs * bins).sum(-1)


def distance_to_box(centers: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """(…, 2) centres and (…, 4) distances (left, top, right, bottom) → (…, 4) boxes x1, y1, x2, y2."""
    left_top = centers - distances[..., :2]
    right_bottom = centers + distances[..., 2:4]  # a closed end exports without INT64_MAX (TensorRT)
    return torch.cat([left_top, right_bottom], dim=-1)


def box_to_distance(centers: torch.Tensor, boxes: torch.Tensor, upper: float | None = None) -> torch.Tensor:
    """The inverse of `distance_to_box`; distances clamped to [0, upper] when `upper` is given."""
    distances = torch.cat([centers - boxes[..., :2], boxes[..., 2:] - centers], dim=-1)
    return distances.clamp(min=0, max=upper) if upper is not None else distances


def decode_boxes(box_logits: torch.Tensor, centers: torch.Tensor, strides: torch.Tensor,
                 reg_max: int) -> torch.Tensor:
    """(N, A, 4·(reg_max+1)) logits → (N, A, 4) boxes xyxy in input pixels."""
    distances = distribution_to_distance(box_logits, reg_max) * strides[:, None]
    return distance_to_box(centers, distances)
