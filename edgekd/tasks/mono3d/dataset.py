"""The mono3d loader: one KITTI object split (real or synthetic) → network-ready arrays, and the torch Dataset.

`read_split` reads every frame of a split once — image resized to the network size, LiDAR points projected into
a sparse depth map (the role of KITTI's `depth_2`) and binned into pillar features, the Car boxes — and the data
stage caches the result as `<split>.npz`. Training reads the cache; evaluation reads the label files themselves.
Any problem with a frame is an EdgekdError naming the file.

>>> arrays = read_split("data/kitti/train", width=320, height=96, grid=BevGrid())   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from edgekd.errors import EdgekdError
from edgekd.tasks.mono3d.bev import pillar_features
from edgekd.tasks.mono3d.kitti_io import Frame, index_frames, lidar_to_camera, read_calib, read_label_file, read_points
from edgekd.tasks.mono3d.lift import BevGrid
from edgekd.tasks.mono3d.targets import centre_targets

CLASS_NAME = "Car"
CAMERA_HEIGHT_M = 1.65  # KITTI's camera above the road: pillar heights are measured from there
MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # ImageNet statistics, as for any pretrained-style backbone
STD = np.array([0.229, 0.224, 0.225], np.float32)
FEATURE_STRIDE = 4


@dataclass
class SplitArrays:
    """A split at network resolution. Boxes are (h, w, l, x, y, z, ry) of the Cars; `box_frame` says whose."""

    images: np.ndarray      # (N, H, W, 3) uint8
    depth_cm: np.ndarray    # (N, H, W) uint16, projective depth in cm, 0 = no return
    pillars: np.ndarray     # (N, 4, Zb, Xb) float16
    boxes: np.ndarray       # (M, 7) float32
    boxes_2d: np.ndarray    # (M, 4) float32, network pixels
    box_frame: np.ndarray   # (M,) int64
    P2: np.ndarray          # (N, 3, 4) each frame's own projection (original resolution)
    image_size: np.ndarray  # (N, 2) each frame's original (width, height)
    frame_ids: np.ndarray   # (N,) str

    def __len__(self) -> int:
        return len(self.images)

    def save(self, path: Path) -> None:
        from edgekd.artifacts import atomic_savez

        atomic_savez(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: Path) -> "SplitArrays":
        with np.load(path) as data:
            return cls(**{f.name: data[f.name] for f in fields(cls)})


def read_split(split_dir: str | Path, *, width: int, height: int, grid: BevGrid,
               progress: Optional[Callable[[int], None]] = None) -> SplitArrays:
    """Every frame of a KITTI split (image_2, label_2, calib, velodyne) at `width`×`height`."""
    frames = index_frames(split_dir, labels=True, velodyne=True)
    if not frames:
        raise EdgekdError(f"{Path(split_dir) / 'image_2'}: no frames")
    parts = [_read_frame(frame, width, height, grid) for frame in _counted(frames, progress)]
    boxes = [p["boxes"] for p in parts]
    return SplitArrays(
        images=np.stack([p["image"] for p in parts]), depth_cm=np.stack([p["depth"] for p in parts]),
        pillars=np.stack([p["pillars"] for p in parts]),
        boxes=np.concatenate(boxes + [np.zeros((0, 7), np.float32)]).astype(np.float32),
        boxes_2d=np.concatenate([p["boxes_2d"] for p in parts] + [np.zeros((0, 4), np.float32)]).astype(np.float32),
        box_frame=np.concatenate([np.full(len(b), i, np.int64) for i, b in enumerate(boxes)] + [np.zeros(0, np.int64)]),
        P2=np.stack([p["P2"] for p in parts]), image_size=np.array([p["size"] for p in parts], np.int64),
        frame_ids=np.array([f.frame_id for f in frames]),
    )


def _counted(frames: list[Frame], progress):
    for frame in frames:
        yield frame
        if progress is not None:
            progress(1)


def _read_frame(frame: Frame, width: int, height: int, grid: BevGrid) -> dict:
    image, size = read_image(frame.image, width, height)
    calib = read_calib(frame.calib, need_velodyne=True)
    scale = np.array([width / size[0], height / size[1]])
    points = lidar_to_camera(read_points(frame.velodyne), calib)
    objects = read_label_file(frame.label)
    cars = objects["name"] == CLASS_NAME
    boxes = np.concatenate([objects["dimensions"], objects["location"], objects["rotation_y"][:, None]], axis=1)[cars]
    pillars = pillar_features(torch.from_numpy(points.astype(np.float32)), grid, CAMERA_HEIGHT_M)
    return {"image": image, "size": size, "P2": calib.P2,
            "depth": depth_map(points, calib.P2, size, scale, (height, width)),
            "pillars": pillars.numpy().astype(np.float16), "boxes": boxes,
            "boxes_2d": objects["bbox"][cars] * np.tile(scale, 2)}


def read_image(path: Path, width: int, height: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(H, W, 3) uint8 resized to the network size, and the file's own (width, height)."""
    try:
        with Image.open(path) as handle:
            rgb = handle.convert("RGB")
    except (OSError, UnidentifiedImageError) as error:
        raise EdgekdError(f"{path}: not a readable image ({type(error).__name__})") from None
    size = rgb.size
    if size != (width, height):
        rgb = rgb.resize((width, height), Image.BILINEAR)
    return np.asarray(rgb, np.uint8), size


def depth_map(points_rect: np.ndarray, P2: np.ndarray, size: tuple[int, int], scale: np.ndarray,
              shape: tuple[int, int]) -> np.ndarray:
    """Sparse projective depth (cm, uint16) of camera-frame points at the network resolution; nearest return wins."""
    projected = points_rect @ P2[:, :3].T + P2[:, 3]
    depth = projected[:, 2]
    ahead = depth > 0.1
    u = projected[ahead, 0] / depth[ahead]
    v = projected[ahead, 1] / depth[ahead]
    depth = depth[ahead]
    inside = (u >= 0) & (u < size[0]) & (v >= 0) & (v < size[1])
    cols = np.minimum((u[inside] * scale[0]).astype(np.int64), shape[1] - 1)
    rows = np.minimum((v[inside] * scale[1]).astype(np.int64), shape[0] - 1)
    centimetres = np.clip(np.round(depth[inside] * 100.0), 1, 65535)
    out = np.full(shape, 65535.0)
    np.minimum.at(out, (rows, cols), centimetres)
    out[out == 65535.0] = 0.0
    return out.astype(np.uint16)


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) → float32 (N, 3, H, W), ImageNet mean/std."""
    return ((images.astype(np.float32) / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2).copy()


class SceneDataset(Dataset):
    """(image, LiDAR depth (m), pillars, targets, foreground) per scene.

    targets (11, Zh, Xh): Gaussian heatmap (1), box (6), yaw axis (2), direction (1), centre mask (1) on the head
    grid;
    foreground (1, H/4, W/4): 1 inside a Car's 2D box (the depth loss's fg weight).
    """

    def __init__(self, arrays: SplitArrays, head_grid: BevGrid, indices: Optional[np.ndarray] = None) -> None:
        self.arrays, self.head_grid = arrays, head_grid
        self.indices = np.arange(len(arrays)) if indices is None else np.asarray(indices)
        order = np.argsort(arrays.box_frame, kind="stable")
        starts = np.searchsorted(arrays.box_frame[order], np.arange(len(arrays) + 1))
        self._boxes = [order[starts[i]:starts[i + 1]] for i in range(len(arrays))]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, ...]:
        index = int(self.indices[item])
        a = self.arrays
        image = torch.from_numpy(normalise(a.images[index:index + 1])[0])
        depth = torch.from_numpy(a.depth_cm[index].astype(np.float32) / 100.0)[None]
        pillars = torch.from_numpy(a.pillars[index].astype(np.float32))
        return image, depth, pillars, self.targets(index), self.foreground(index, depth.shape[1:])

    def boxes(self, index: int) -> np.ndarray:
        """(M, 7) Car boxes (h, w, l, x, y, z, ry) of the scene at array `index`."""
        return self.arrays.boxes[self._boxes[index]]

    def targets(self, index: int) -> torch.Tensor:
        return target_maps(self.boxes(index), self.head_grid)

    def foreground(self, index: int, shape: tuple[int, int]) -> torch.Tensor:
        rows, cols = shape[0] // FEATURE_STRIDE, shape[1] // FEATURE_STRIDE
        mask = torch.zeros(1, rows, cols)
        for x1, y1, x2, y2 in self.arrays.boxes_2d[self._boxes[index]] / FEATURE_STRIDE:
            mask[0, int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = 1.0
        return mask


def target_maps(boxes: np.ndarray, head_grid: BevGrid) -> torch.Tensor:
    """(11, Zh, Xh) stacked heatmap, box, yaw-axis, direction and mask targets of boxes (M, 7)."""
    maps = centre_targets(torch.from_numpy(boxes).double(), head_grid)
    return torch.cat([maps["heatmap"], maps["box"], maps["rot"], maps["dir"], maps["mask"]]).float()


def mirror_boxes(boxes: np.ndarray) -> np.ndarray:
    """Boxes (h, w, l, x, y, z, ry) mirrored in the camera's y-z plane: x → −x, ry → π − ry (in [−π, π))."""
    out = boxes.copy()
    out[:, 3] = -boxes[:, 3]
    out[:, 6] = np.mod(np.pi - boxes[:, 6] + np.pi, 2 * np.pi) - np.pi
    return out


class MirroredLidarScenes(Dataset):
    """The LiDAR teacher's training scenes with SECOND's random flip: with `probability`, the pillar grid and the
    boxes are mirrored left-right (x → −x).

    Pillar features (occupancy, heights, log count) do not change under the mirror, and the grid is mirrored
    exactly when `x_range` is symmetric about the camera (checked). The camera image is not mirrored — the
    principal point is not at the image centre, so a flipped image would not match the flipped boxes — so the
    image, depth and foreground slots hold empty tensors: only a LiDAR-input objective can read these items.
    """

    def __init__(self, scenes: SceneDataset, probability: float = 0.5) -> None:
        x_low, x_high = scenes.head_grid.x_range
        if abs(x_low + x_high) > 1e-6:
            raise EdgekdError(f"the LiDAR mirror needs a BEV x_range symmetric about 0, got {scenes.head_grid.x_range}")
        self.scenes, self.probability = scenes, probability

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, ...]:
        index = int(self.scenes.indices[item])
        pillars = torch.from_numpy(self.scenes.arrays.pillars[index].astype(np.float32))
        boxes = self.scenes.boxes(index)
        if torch.rand(()) < self.probability:  # the global RNG: seeded by the training loop, per worker by torch
            pillars, boxes = pillars.flip(-1), mirror_boxes(boxes)
        empty = torch.empty(0)
        return empty, empty, pillars, target_maps(boxes, self.scenes.head_grid), empty


class QatScenes(Dataset):
    """(image, GT target maps) pairs: what the quantization-aware fine-tuning of the deployed student reads."""

    def __init__(self, scenes: SceneDataset) -> None:
        self.scenes = scenes

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, _, _, targets, _ = self.scenes[item]
        return image, targets
