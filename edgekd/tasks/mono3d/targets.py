"""Ground-truth targets and the detection loss of the center head (teacher and TA training, optional GT term).

Targets are dense maps on the head's grid: a Gaussian heatmap per box centre (CenterNet radius rule), and the
box/yaw-axis regression values, the direction class and a mask at each centre cell. The loss is CenterNet's
penalty-reduced focal loss on the heatmap, an L1 on box and yaw axis, and SECOND's direction cross-entropy
(weight 0.2) at centre cells, all normalised by the number of boxes.
"""

from __future__ import annotations

import math

import torch

from edgekd.compute import fp32_loss
from edgekd.tasks.mono3d.heads import BOX_CHANNELS, DIR_CHANNELS, ROT_CHANNELS
from edgekd.tasks.mono3d.lift import BevGrid


def gaussian_radius(length: float, width: float, min_overlap: float = 0.1) -> float:
    """CenterNet's radius (in cells) within which a shifted box of this footprint keeps IoU ≥ min_overlap."""
    b1, c1 = length + width, length * width * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2, c2 = 2 * (length + width), (1 - min_overlap) * length * width
    r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (length + width), (min_overlap - 1) * length * width
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def centre_targets(boxes: torch.Tensor, grid: BevGrid, min_radius: int = 1) -> dict[str, torch.Tensor]:
    """Dense targets for boxes (M, 7) = (h, w, l, x, y, z, ry) on the head's `grid`.

    Returns heatmap (1, Zb, Xb), box (6, Zb, Xb), rot (2, Zb, Xb) = (sin 2ry, cos 2ry), dir (1, Zb, Xb) = 1 where
    cos ry > 0, and mask (1, Zb, Xb); boxes whose centre lies outside the grid are skipped.
    """
    rows, cols = grid.shape
    heatmap = torch.zeros(1, rows, cols)
    box = torch.zeros(BOX_CHANNELS, rows, cols)
    rot = torch.zeros(ROT_CHANNELS, rows, cols)
    direction = torch.zeros(DIR_CHANNELS, rows, cols)
    mask = torch.zeros(1, rows, cols)
    zz, xx = torch.meshgrid(torch.arange(rows).float(), torch.arange(cols).float(), indexing="ij")
    for h, w, l, x, y, z, ry in boxes.tolist():
        fx, fz = (x - grid.x_range[0]) / grid.cell, (z - grid.z_range[0]) / grid.cell
        col, row = math.floor(fx), math.floor(fz)
        if not (0 <= row < rows and 0 <= col < cols):
            continue
        radius = max(min_radius, int(gaussian_radius(l / grid.cell, w / grid.cell)))
        sigma = (2 * radius + 1) / 6
        bump = torch.exp(-((xx - col) ** 2 + (zz - row) ** 2) / (2 * sigma**2))
        bump[(xx - col).abs() > radius] = 0
        bump[(zz - row).abs() > radius] = 0
        heatmap[0] = torch.maximum(heatmap[0], bump)
        box[:, row, col] = torch.tensor([fx - col, fz - row, y, math.log(h), math.log(w), math.log(l)])
        rot[:, row, col] = torch.tensor([math.sin(2 * ry), math.cos(2 * ry)])
        direction[0, row, col] = float(math.cos(ry) > 0)
        mask[0, row, col] = 1.0
    return {"heatmap": heatmap, "box": box, "rot": rot, "dir": direction, "mask": mask}


def stack_targets(targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Batch per-scene target dicts along a new first dimension."""
    return {key: torch.stack([t[key] for t in targets]) for key in targets[0]}


@fp32_loss
def heatmap_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0,
                       beta: float = 4.0) -> torch.Tensor:
    """CenterNet focal loss: (1−p)^α log p at peaks, (1−y)^β p^α log(1−p) elsewhere, / number of peaks."""
    log_p = torch.nn.functional.logsigmoid(logits)
    log_not_p = torch.nn.functional.logsigmoid(-logits)
    p = log_p.exp()
    peak = target.eq(1).to(logits.dtype)
    positive = -((1 - p) ** alpha) * log_p * peak
    negative = -((1 - target) ** beta) * p**alpha * log_not_p * (1 - peak)
    return (positive.sum() + negative.sum()) / peak.sum().clamp_min(1.0)


DIRECTION_WEIGHT = 0.2  # SECOND's direction-classifier weight


@fp32_loss
def detection_loss(head: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                   reg_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Heatmap focal loss + `reg_weight` × L1 on box and yaw axis + 0.2 × direction BCE at centre cells; 'total'
    sums them."""
    heat = heatmap_focal_loss(head["heatmap"], targets["heatmap"])
    mask = targets["mask"]
    count = mask.sum().clamp_min(1.0)
    box = ((head["box"] - targets["box"]).abs() * mask).sum() / count
    rot = ((head["rot"] - targets["rot"]).abs() * mask).sum() / count
    facing = torch.nn.functional.binary_cross_entropy_with_logits(head["dir"], targets["dir"], reduction="none")
    facing = DIRECTION_WEIGHT * (facing * mask).sum() / count
    return {"heatmap": heat, "box": box, "rot": rot, "dir": facing,
            "total": heat + reg_weight * (box + rot) + facing}
