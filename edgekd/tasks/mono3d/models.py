"""MonoTAKD models at edge scale: LiDAR teacher, teaching assistant (TA) and camera student (papers.md §4.1, §6.4).

- teacher (`LidarDetector`): pillar grid features → `LidarEncoder` → F_T → `BevBackbone` → `CenterHead`;
- TA (`CameraDetector(depth_source="lidar")`): camera features lifted with one-hot LiDAR depth → collapse → F_TA
  → the same BEV backbone and head; trained first on ground-truth boxes;
- student (`CameraDetector(depth_source="predicted", residual_branch=True)`): the same camera network lifted with
  its own depth distribution → F_S → BEV backbone → head, plus the residual branch F_S' (`SpatialAlignment`).
`StudentExport` wraps only the student's camera path (image in, decoded boxes out) for deployment.

>>> cfg = NetConfig(P2=P2)
>>> student = CameraDetector(cfg, depth_source="predicted", residual_branch=True)
>>> out = student(image)      # {"bev", "residual", "head", "depth_logits", "lifted"}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.tasks.mono3d.bev import BevBackbone, LidarEncoder, SpatialAlignment, conv_bn_relu, lifted_collapse
from edgekd.tasks.mono3d.heads import CenterHead, decode, feature_grid
from edgekd.tasks.mono3d.lift import BevGrid, DepthBins, FrustumToBev, lidar_depth_probs

# KITTI's P2 scaled by ¼ (1242×375 → 320×96 crop-free approximation): the synthetic scenes' camera.
DEFAULT_P2 = ((186.0, 0.0, 157.0, 0.0), (0.0, 186.0, 45.0, 0.0), (0.0, 0.0, 1.0, 0.0))


@dataclass(frozen=True)
class NetConfig:
    """Geometry and widths shared by the three models (paper widths in comments)."""

    P2: tuple[tuple[float, ...], ...] = DEFAULT_P2
    image_size: tuple[int, int] = (320, 96)        # (width, height)
    stride: int = 4                                # camera feature stride
    bins: DepthBins = field(default_factory=DepthBins)
    grid: BevGrid = field(default_factory=BevGrid)
    bev_stride: int = 2                            # lift/pillar grid → head grid (0.625 m → 1.25 m)
    bev_channels: int = 64                         # F_T, F_TA, F_S, F_S' width (paper 128)
    backbone_width: int = 64                       # paper [128, 256]
    backbone_layers: tuple[int, int] = (2, 2)      # paper [5, 5]
    head_width: int = 32
    image_channels: int = 32                       # lifted camera feature width C (paper 64)
    camera_width: int = 48
    lift_reduce: Literal["sum", "mean"] = "mean"
    depth_samples: int = 4
    lift_backend: Literal["rows", "elements", "dense"] = "rows"


class CameraBackbone(nn.Module):
    """Small CNN to stride 4 with a stride-8 context stage → image features (C) and depth logits (D + 1).

    The last depth bin is "out of range" (CaDDN): it absorbs sky and far pixels and is dropped before lifting.
    A normalised image-row channel feeds the heads: on flat ground the row is the strongest depth cue, and a
    small CNN with zero padding cannot tell where in the image it is.
    """

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        if cfg.stride != 4:
            raise EdgekdError(f"CameraBackbone supports stride 4 only, not {cfg.stride}")
        w = cfg.camera_width
        self.stem = nn.Sequential(conv_bn_relu(3, 16, 2), conv_bn_relu(16, w // 2, 2), conv_bn_relu(w // 2, w // 2))
        self.context = nn.Sequential(conv_bn_relu(w // 2, w, 2), conv_bn_relu(w, w), conv_bn_relu(w, w, dilation=2))
        self.lateral = nn.Conv2d(w, w // 2, 1)
        self.fuse = conv_bn_relu(w // 2 + 1, w)
        self.depth = nn.Conv2d(w, cfg.bins.num + 1, 1)
        self.features = nn.Conv2d(w, cfg.image_channels, 1)
        rows = cfg.image_size[1] // cfg.stride
        self.register_buffer("row_coord", torch.linspace(-1.0, 1.0, rows).view(1, 1, rows, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fine = self.stem(image)
        coarse = F.interpolate(self.lateral(self.context(fine)), scale_factor=2.0, mode="nearest")
        rows = self.row_coord.expand(fine.shape[0], 1, fine.shape[2], fine.shape[3])
        x = self.fuse(torch.cat([fine + coarse, rows], dim=1))
        return self.features(x), self.depth(x)


class LidarDetector(nn.Module):
    """The LiDAR teacher: pillar features (N, 4, Zb, Xb) → {"bev": F_T, "head": head maps}."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.encoder = LidarEncoder(cfg.bev_channels, bev_stride=cfg.bev_stride)
        self.backbone = BevBackbone(cfg.bev_channels, cfg.backbone_width, cfg.backbone_layers)
        self.head = CenterHead(self.backbone.out_channels, cfg.head_width)

    def forward(self, pillars: torch.Tensor) -> dict:
        bev = self.encoder(pillars)
        return {"bev": bev, "head": self.head(self.backbone(bev))}


class CameraDetector(nn.Module):
    """Camera → lift → collapse → BEV backbone → head; depth from its own head or one-hot LiDAR depth.

    With `residual_branch` it also returns F_S' (the CMRD target's prediction); with `fuse_residual` the BEV
    backbone sees F_S + F_S' (MonoTAKD's FFM, commented out in the released config) and the branch is then part
    of the deployed graph; without it the branch is training-only.
    """

    def __init__(self, cfg: NetConfig, depth_source: Literal["predicted", "lidar"] = "predicted",
                 residual_branch: bool = False, fuse_residual: bool = False) -> None:
        super().__init__()
        if fuse_residual and not residual_branch:
            raise EdgekdError("fuse_residual needs residual_branch=True")
        self.cfg, self.depth_source, self.fuse_residual = cfg, depth_source, fuse_residual
        self.camera = CameraBackbone(cfg)
        self.lift = FrustumToBev(cfg.P2, cfg.image_size, cfg.stride, cfg.bins, cfg.grid, cfg.lift_reduce,
                                 cfg.depth_samples, cfg.lift_backend)
        self.collapse = lifted_collapse(cfg.image_channels, cfg.bev_channels, cfg.bev_stride)
        self.residual = (SpatialAlignment(cfg.image_channels, cfg.bev_channels, cfg.bev_stride)
                         if residual_branch else None)
        self.backbone = BevBackbone(cfg.bev_channels, cfg.backbone_width, cfg.backbone_layers)
        self.head = CenterHead(self.backbone.out_channels, cfg.head_width)

    def forward(self, image: torch.Tensor, lidar_depth: Optional[torch.Tensor] = None) -> dict:
        features, depth_logits = self.camera(image)
        if self.depth_source == "lidar":
            if lidar_depth is None:
                raise EdgekdError("the TA lifts with LiDAR depth: pass lidar_depth (N, 1, H, W)")
            lifted = self.lift(features, lidar_depth_probs(lidar_depth, self.cfg.bins, self.cfg.stride))
        else:
            lifted = self.lift.from_logits(features, depth_logits)
        bev = self.collapse(lifted)
        residual = self.residual(lifted) if self.residual is not None else None
        fused = bev + residual if self.fuse_residual else bev
        return {"bev": bev, "residual": residual, "head": self.head(self.backbone(fused)),
                "depth_logits": depth_logits, "lifted": lifted}


class StudentExport(nn.Module):
    """The deployable camera student: image (N, 3, H, W) in, camera path only.

    outputs="boxes": (boxes (N, K, 7), scores (N, K)) decoded in the graph (max-pool NMS, top-k);
    outputs="maps": (score map sigmoid(heatmap) (N, 1, Zh, Xh), box (N, 6, Zh, Xh), yaw axis (N, 2, Zh, Xh),
    direction probability (N, 1, Zh, Xh)), decoded outside. Compare runtimes on "maps": on plateaus of equal-looking scores, a last-bit difference moves the
    max-pool peak, so decoded boxes can differ between runtimes even when every map agrees to 1e-6.

    Holds references to the camera path only — backbone, lift, collapse, BEV backbone, head (and the residual
    branch only when it is fused) — so nothing of the teacher, the TA or the training-only branch is exported.
    """

    def __init__(self, student: CameraDetector, top_k: int = 32, outputs: Literal["boxes", "maps"] = "boxes") -> None:
        super().__init__()
        if student.depth_source != "predicted":
            raise EdgekdError("only a student with predicted depth can be deployed (the TA needs LiDAR)")
        self.camera, self.lift, self.collapse = student.camera, student.lift, student.collapse
        self.residual = student.residual if student.fuse_residual else None
        self.backbone, self.head = student.backbone, student.head
        self.head_grid = feature_grid(student.cfg.grid, student.cfg.bev_stride)
        self.top_k, self.outputs = top_k, outputs

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features, depth_logits = self.camera(image)
        lifted = self.lift.from_logits(features, depth_logits)
        bev = self.collapse(lifted)
        if self.residual is not None:
            bev = bev + self.residual(lifted)
        head = self.head(self.backbone(bev))
        if self.outputs == "maps":
            return torch.sigmoid(head["heatmap"]), head["box"], head["rot"], torch.sigmoid(head["dir"])
        return decode(head, self.head_grid, self.top_k)
