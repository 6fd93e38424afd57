"""What every mono3d stage shares: the data stage's files, the three networks, their deployable "maps" form,
and detections as KITTI objects.

Deployed graphs have one output, `maps` (N, 9, Zh, Xh) = sigmoid(heatmap), box (6), rot (2): runtimes are compared
on maps (decoded boxes can swap on ties, see models.StudentExport) and decoding runs outside the graph, the same
code for PyTorch and every runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgekd.artifacts import apply_state, load_checkpoint
from edgekd.pipeline import StageContext
from edgekd.tasks.mono3d.dataset import SceneDataset, SplitArrays
from edgekd.tasks.mono3d.heads import MAP_LAYOUT, decode, feature_grid
from edgekd.tasks.mono3d.kitti_eval import evaluate_kitti
from edgekd.tasks.mono3d.kitti_io import box_corners_3d, observation_angle, project_to_image
from edgekd.tasks.mono3d.lift import BevGrid, DepthBins
from edgekd.tasks.mono3d.models import CameraDetector, LidarDetector, NetConfig, StudentExport

CAMERA_FILE = "camera.json"
KITTI_DIR = "kitti"
WEIGHTS = "model.pt"
TASK_METRIC = "AP3D_R40@0.5/moderate"
SCORE_EPS = 1e-6


# ---- data stage files ------------------------------------------------------------------------------------------


def split_dir(ctx: StageContext, split: str) -> Path:
    """The KITTI folder of 'train' or 'val': the generated scenes, or the user's folder."""
    data = ctx.recipe.data
    name = data.train_dir if split == "train" else data.val_dir
    root = ctx.stage_path("data") / KITTI_DIR if data.source == "synthetic" else Path(data.root)
    return root / name


def load_split(ctx: StageContext, split: str) -> SplitArrays:
    return SplitArrays.load(ctx.stage_path("data") / f"{split}.npz")


def camera_info(ctx: StageContext) -> dict[str, Any]:
    return json.loads((ctx.stage_path("data") / CAMERA_FILE).read_text())


def net_config(recipe, P2) -> NetConfig:
    """The networks' geometry: the recipe's model section and the network-resolution P2 of the data."""
    m = recipe.model
    return NetConfig(
        P2=tuple(tuple(float(v) for v in row) for row in np.asarray(P2)),
        image_size=(recipe.data.width, recipe.data.height),
        bins=DepthBins(m.depth_min, m.depth_max, m.depth_bins), grid=BevGrid(m.x_range, m.z_range, m.cell, m.y_range),
        bev_stride=m.bev_stride, bev_channels=m.bev_channels, backbone_width=m.backbone_width,
        backbone_layers=tuple(m.backbone_layers), head_width=m.head_width, image_channels=m.image_channels,
        camera_width=m.camera_width, lift_reduce=m.lift_reduce, depth_samples=m.depth_samples,
        lift_backend=m.lift_backend,
    )


def ctx_net_config(ctx: StageContext) -> NetConfig:
    return net_config(ctx.recipe, camera_info(ctx)["P2"])


def head_grid(cfg: NetConfig) -> BevGrid:
    return feature_grid(cfg.grid, cfg.bev_stride)


def scenes(ctx: StageContext, split: str, cfg: NetConfig) -> SceneDataset:
    return SceneDataset(load_split(ctx, split), head_grid(cfg))


# ---- networks --------------------------------------------------------------------------------------------------


def build(role: str, cfg: NetConfig, residual_branch: bool = False, fuse_residual: bool = False) -> nn.Module:
    """'teacher' (LiDAR), 'assistant' (camera at LiDAR depth) or a camera 'student'."""
    if role == "teacher":
        return LidarDetector(cfg)
    if role == "assistant":
        return CameraDetector(cfg, "lidar")
    return CameraDetector(cfg, "predicted", residual_branch=residual_branch or fuse_residual,
                          fuse_residual=fuse_residual)


def load(role: str, cfg: NetConfig, path: Path, fuse_residual: bool = False) -> nn.Module:
    """A trained network from its state_dict; a student gets its residual branch only if it was trained with one."""
    state = load_checkpoint(path)
    residual = isinstance(state, dict) and any(str(key).startswith("residual.") for key in state)
    model = build(role, cfg, residual_branch=residual, fuse_residual=fuse_residual and residual)
    apply_state(model, state, path)
    return model.eval()


def maps_of(head: dict[str, torch.Tensor]) -> torch.Tensor:
    """The deployed output (N, 10, Zh, Xh): score, box (6), yaw axis (2), direction probability."""
    return torch.cat([torch.sigmoid(head["heatmap"]), head["box"], head["rot"], torch.sigmoid(head["dir"])], dim=1)


def head_of_maps(maps: torch.Tensor) -> dict[str, torch.Tensor]:
    """Maps (N, 10, Zh, Xh) back to a head dict: the probabilities turn back into logits."""
    head = {name: maps[:, part] for name, part in MAP_LAYOUT.items()}
    for name in ("heatmap", "dir"):
        head[name] = torch.logit(head[name], eps=SCORE_EPS)
    return head


class TeacherMaps(nn.Module):
    """The LiDAR teacher as deployed: pillar grid (N, 4, Zb, Xb) in, maps out."""

    def __init__(self, teacher: LidarDetector) -> None:
        super().__init__()
        self.teacher = teacher

    def forward(self, pillars: torch.Tensor) -> torch.Tensor:
        return maps_of(self.teacher(pillars)["head"])


class StudentMaps(nn.Module):
    """The camera student as deployed: image in, maps out; only the camera path (models.StudentExport)."""

    def __init__(self, student: CameraDetector) -> None:
        super().__init__()
        self.student = StudentExport(student, outputs="maps")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.student(image), dim=1)


# ---- detections ------------------------------------------------------------------------------------------------


def decode_maps(maps: np.ndarray | torch.Tensor, grid: BevGrid, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, K, 7) as h, w, l, x, y, z, ry; scores (N, K)) of maps (N, 10, Zh, Xh)."""
    maps = torch.as_tensor(np.asarray(maps, np.float32))
    boxes, scores = decode(head_of_maps(maps), grid, min(top_k, maps.shape[2] * maps.shape[3]))
    return boxes.double().numpy(), scores.double().numpy()


def to_objects(boxes: np.ndarray, scores: np.ndarray, P2: np.ndarray, image_size, threshold: float) -> dict:
    """KITTI result objects of one frame: boxes (K, 7) above `threshold`; 2D boxes are the projected corners,
    clipped to the frame's own image (its original resolution, like its labels)."""
    keep = scores > threshold
    boxes, scores = boxes[keep], scores[keep]
    pixels, _ = project_to_image(box_corners_3d(boxes), P2)
    width, height = image_size
    low = np.clip(np.nan_to_num(pixels.min(axis=1)), 0, [width - 1, height - 1])
    high = np.clip(np.nan_to_num(pixels.max(axis=1)), 0, [width - 1, height - 1])
    count = len(boxes)
    return {"name": np.full(count, "Car", dtype="<U16"), "truncated": np.full(count, -1.0),
            "occluded": np.full(count, -1, np.int64), "alpha": observation_angle(boxes[:, 3:6], boxes[:, 6]),
            "bbox": np.concatenate([low, high], axis=1).reshape(count, 4), "dimensions": boxes[:, 0:3],
            "location": boxes[:, 3:6], "rotation_y": boxes[:, 6], "score": scores}


@dataclass
class HeldOut:
    """Targets of held-out frames for `score`: GT objects plus what decoding needs; sliceable like an array."""

    objects: list[dict]
    P2: np.ndarray
    image_size: np.ndarray
    height_scale: float
    grid: BevGrid
    threshold: float
    top_k: int

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, part: slice) -> "HeldOut":
        return HeldOut(self.objects[part], self.P2[part], self.image_size[part], self.height_scale, self.grid,
                       self.threshold, self.top_k)


def detections(maps: np.ndarray, held_out: HeldOut) -> list[dict]:
    boxes, scores = decode_maps(maps, held_out.grid, held_out.top_k)
    return [to_objects(b, s, p, size, held_out.threshold)
            for b, s, p, size in zip(boxes, scores, held_out.P2, held_out.image_size)]


def score_maps(maps: Any, held_out: HeldOut) -> float:
    """The task metric (Car AP3D|R40, moderate, IoU 0.5, in %) of maps against the held-out frames."""
    result = evaluate_kitti(held_out.objects, detections(maps, held_out), held_out.height_scale)
    return result[TASK_METRIC]
