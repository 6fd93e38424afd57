"""BEV building blocks shared by the LiDAR teacher, the TA and the camera student.

- `pillar_features`: the LiDAR grid encoding (occupancy, max height, mean height, log count per cell);
- `LidarEncoder` / `lifted_collapse`: modality-specific encoders ending in the distilled BEV map (F_T, F_TA, F_S);
- `BevBackbone`: a two-scale SECOND-style BEV network (stride-1 and stride-2 stages, both brought back to stride 1
  and concatenated), the same design for every model;
- `SpatialAlignment`: the student's residual branch producing F_S' (MonoTAKD's SAM, made light and exportable).
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.tasks.mono3d.lift import BevGrid

PILLAR_CHANNELS = 4  # occupancy, max height, mean height, log(1 + count)


def conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3×3 conv (padding keeps the size at stride 1) → BatchNorm → ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def pillar_features(points: torch.Tensor, grid: BevGrid, ground_height: float = 1.65) -> torch.Tensor:
    """(4, Zb, Xb) grid features of camera-frame LiDAR points (P, ≥3); heights are metres above the ground.

    `ground_height` is the camera's height above the ground (y points down, so height = ground_height − y).
    Points outside the grid or its height band are dropped; empty cells are all zeros.
    """
    rows, cols = grid.shape
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    row = torch.floor((z - grid.z_range[0]) / grid.cell).long()
    col = torch.floor((x - grid.x_range[0]) / grid.cell).long()
    keep = (row >= 0) & (row < rows) & (col >= 0) & (col < cols) & (y >= grid.y_range[0]) & (y <= grid.y_range[1])
    cell, height = (row * cols + col)[keep], (ground_height - y)[keep]
    empty = torch.zeros(rows * cols, dtype=points.dtype, device=points.device)
    count = empty.clone().index_add_(0, cell, torch.ones_like(height))
    total = empty.clone().index_add_(0, cell, height)
    highest = torch.full_like(count, -1e4).scatter_reduce_(0, cell, height, reduce="amax")
    occupied = count > 0
    features = torch.stack([
        occupied.to(points.dtype),
        torch.where(occupied, highest, torch.zeros_like(highest)),
        total / count.clamp_min(1.0),
        torch.log1p(count),
    ])
    return features.reshape(PILLAR_CHANNELS, rows, cols)


class LidarEncoder(nn.Module):
    """Pillar features → F_T: one conv at grid resolution, one stride-`bev_stride` conv to the feature grid."""

    def __init__(self, bev_channels: int, hidden: int = 32, bev_stride: int = 2) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            conv_bn_relu(PILLAR_CHANNELS, hidden), conv_bn_relu(hidden, bev_channels, bev_stride)
        )

    def forward(self, pillars: torch.Tensor) -> torch.Tensor:
        return self.layers(pillars)


def lifted_collapse(image_channels: int, bev_channels: int, bev_stride: int = 2) -> nn.Sequential:
    """Lifted camera BEV (C, grid resolution) → the distilled BEV map (CaDDN's Conv2DCollapse; here a strided 3×3)."""
    return conv_bn_relu(image_channels, bev_channels, bev_stride)


class BevBackbone(nn.Module):
    """SECOND-style BEV net: stage 1 at stride 1, stage 2 at stride 2, both upsampled/projected and concatenated.

    Output has 2·width channels at the input's resolution (SECOND: [5, 5] layers of [128, 256] → 2×256).
    """

    def __init__(self, in_channels: int, width: int = 64, layers: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(conv_bn_relu(in_channels, width), *_repeat(width, layers[0] - 1))
        self.stage2 = nn.Sequential(conv_bn_relu(width, width, 2), *_repeat(width, layers[1] - 1))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(width, width, 2, stride=2, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        self.out_channels = 2 * width

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        fine = self.stage1(bev)
        return torch.cat([fine, self.up(self.stage2(fine))], dim=1)


def _repeat(width: int, count: int) -> list[nn.Module]:
    return [conv_bn_relu(width, width) for _ in range(count)]


class SpatialAlignment(nn.Module):
    """The residual branch F_S' = SAM(collapse'(lifted BEV)), learning what camera BEV misses (CMRD target).

    MonoTAKD's SAM sums an SE-weighted ASPP and two deformable convs; deformable convs do not export to every
    runtime, so here two 3×3 convs of dilation 1 and 2 stand in for them, summed, SE-weighted, then a 3×3 conv.
    """

    def __init__(self, image_channels: int, bev_channels: int, bev_stride: int = 2) -> None:
        super().__init__()
        self.collapse = lifted_collapse(image_channels, bev_channels, bev_stride)
        self.near = conv_bn_relu(bev_channels, bev_channels)
        self.wide = conv_bn_relu(bev_channels, bev_channels, dilation=2)
        squeeze = max(bev_channels // 4, 4)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(bev_channels, squeeze, 1), nn.ReLU(inplace=True),
            nn.Conv2d(squeeze, bev_channels, 1), nn.Sigmoid(),
        )
        self.out = nn.Conv2d(bev_channels, bev_channels, 3, padding=1)

    def forward(self, lifted: torch.Tensor) -> torch.Tensor:
        base = self.collapse(lifted)
        mixed = self.near(base) + self.wide(base)
        return self.out(mixed * self.attention(mixed))
