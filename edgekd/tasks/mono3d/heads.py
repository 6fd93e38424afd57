"""CenterPoint-style BEV head for one class (Car) and its decoder.

Why a center head rather than SECOND's anchors: one class, one object per cell at 1.25 m, no anchor sizes or
yaw bins to tune, and the decode (sigmoid → 3×3 max-pool peak test → top-k → gather) is plain ONNX with static
shapes. The logit KD's "anchors with teacher score > 0.1" become heatmap cells with score > 0.1.

Per feature-grid cell (row along z, column along x) the head predicts
    heatmap  (1): Car centre logit;
    box      (6): centre offset inside the cell (dx, dz in cells), bottom-centre y (m), log h, log w, log l (m);
    rot      (2): sin 2ry, cos 2ry — the yaw's axis, defined modulo π (KITTI rotation about the camera y axis);
    dir      (1): direction logit, positive when the car faces the axis angle itself (cos ry > 0).
Decoded boxes are KITTI-ordered (h, w, l, x, y, z, ry) in camera coordinates, with the heatmap score.

Why the axis and the direction apart (SECOND's sine-error angle plus direction classifier, in center-head form): a
cuboid's footprint, and so every IoU-based AP, is the same at ry and ry + π, while front and back may be hard or
impossible to tell apart — the LiDAR sees a car's shape, not its lights. Regressing (sin ry, cos ry) asks for that
distinction in the regression itself: where a network cannot make it, the least-L1 answer is near (0, 0) and the
decoded yaw is arbitrary, so the boxes miss at IoU 0.7. The axis is learnable from shape alone; the direction only
decides the sign.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.tasks.mono3d.bev import conv_bn_relu
from edgekd.tasks.mono3d.lift import BevGrid

BOX_CHANNELS = 6
ROT_CHANNELS = 2
DIR_CHANNELS = 1
# Channel slices of the stacked maps: the deployed output holds the first four (score and direction as
# probabilities); the training targets add the centre mask after them.
MAP_LAYOUT = {"heatmap": slice(0, 1), "box": slice(1, 7), "rot": slice(7, 9), "dir": slice(9, 10)}
MAP_CHANNELS = 10
TARGET_LAYOUT = {**MAP_LAYOUT, "mask": slice(10, 11)}
TARGET_CHANNELS = 11
CAR_SIZE_HWL = (1.5, 1.6, 3.9)  # mean car (h, w, l) in metres: the size branch starts there
PRIOR_SCORE = 0.01  # initial heatmap probability (focal-loss prior, as in RetinaNet / CenterNet)


class CenterHead(nn.Module):
    """Shared 3×3 conv, then 1×1 convs to the heatmap, box, yaw-axis and direction maps."""

    def __init__(self, in_channels: int, hidden: int = 32) -> None:
        super().__init__()
        self.shared = conv_bn_relu(in_channels, hidden)
        self.heatmap = nn.Conv2d(hidden, 1, 1)
        self.box = nn.Conv2d(hidden, BOX_CHANNELS, 1)
        self.rot = nn.Conv2d(hidden, ROT_CHANNELS, 1)
        self.dir = nn.Conv2d(hidden, DIR_CHANNELS, 1)
        nn.init.constant_(self.heatmap.bias, -math.log((1 - PRIOR_SCORE) / PRIOR_SCORE))
        with torch.no_grad():
            self.box.bias.copy_(torch.tensor([0.5, 0.5, 1.65, *(math.log(s) for s in CAR_SIZE_HWL)]))

    def forward(self, bev: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.shared(bev)
        return {"heatmap": self.heatmap(x), "box": self.box(x), "rot": self.rot(x), "dir": self.dir(x)}


def feature_grid(grid: BevGrid, bev_stride: int) -> BevGrid:
    """The head's grid: the lift/pillar grid coarsened by `bev_stride`."""
    return BevGrid(grid.x_range, grid.z_range, grid.cell * bev_stride, grid.y_range)


def decode(head: dict[str, torch.Tensor], grid: BevGrid, top_k: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(boxes (N, K, 7) as h, w, l, x, y, z, ry; scores (N, K)) of the top-k heatmap peaks, highest first.

    `grid` is the head's grid (see `feature_grid`). A peak is a cell whose score equals the 3×3 max around it
    (max-pool NMS); apply a score threshold afterwards — shapes stay static for export.
    """
    heat = torch.sigmoid(head["heatmap"])
    is_peak = F.max_pool2d(heat, 3, stride=1, padding=1) == heat
    batch, _, _, cols = heat.shape
    flat = torch.where(is_peak, heat, torch.zeros_like(heat)).flatten(1)
    index = _rank_key(torch.where(is_peak, heat, -torch.ones_like(heat)).flatten(1)).topk(top_k, dim=1).indices
    scores = flat.gather(1, index)
    row_index = torch.div(index, cols, rounding_mode="floor")
    col = (index - row_index * cols).to(heat.dtype)  # not `%`: ONNX Mod is missing from older TensorRT parsers
    row = row_index.to(heat.dtype)
    box = _gather(head["box"], index)
    rot = _gather(head["rot"], index)
    facing = _gather(head["dir"], index)[:, 0]
    x = grid.x_range[0] + (col + box[:, 0]) * grid.cell
    z = grid.z_range[0] + (row + box[:, 1]) * grid.cell
    hwl = torch.exp(box[:, 3:6])
    ry = yaw_of(rot[:, 0], rot[:, 1], facing)
    boxes = torch.stack([hwl[:, 0], hwl[:, 1], hwl[:, 2], x, box[:, 2], z, ry], dim=-1)
    return boxes, scores


def _rank_key(scores: torch.Tensor) -> torch.Tensor:
    """Scores minus cell·2⁻²², a distinct key per cell: ties (flat, empty BEV regions; −1 for non-peaks) then
    rank in cell order in PyTorch and in every runtime, so exported boxes come back in the same order.
    The shift (< 2.5e-4 on a 32×32 grid) only reorders scores closer than that; the scores returned are exact.
    """
    rank = torch.arange(scores.shape[1], dtype=scores.dtype, device=scores.device)
    return scores - rank * 2.0**-22


def _gather(maps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(N, C, K): the channels of `maps` (N, C, H, W) at flat cell indices (N, K)."""
    flat = maps.flatten(2)
    return flat.gather(2, index.unsqueeze(1).expand(-1, flat.shape[1], -1))


def yaw_of(sin2: torch.Tensor, cos2: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """ry in (−π, π] from the axis (sin 2ry, cos 2ry) and the direction logit: the axis angle atan2/2 in
    (−π/2, π/2] where the direction is positive (cos ry > 0), the opposite angle where it is negative."""
    axis = atan2(sin2, cos2) / 2
    pi = torch.full_like(axis, math.pi)
    opposite = torch.where(axis > 0, axis - pi, axis + pi)
    return torch.where(direction >= 0, axis, opposite)


def atan2(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """atan2 from atan and where: ONNX has no Atan2 operator, and this form exports to every runtime."""
    safe_x = torch.where(x == 0, torch.full_like(x, 1e-12), x)
    base = torch.atan(y / safe_x)
    pi = torch.full_like(base, math.pi)
    shift = torch.where(y >= 0, pi, -pi)
    return torch.where(x < 0, base + shift, base)
