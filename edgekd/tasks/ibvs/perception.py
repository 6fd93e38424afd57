"""The teacher's perception: training crops from the simulator, the joint objective, and its evaluation.

Both networks are fully convolutional, so they train on crops (most around the vehicle, some anywhere,
some with the vehicle cut by the crop edge) and run on the whole frame. The splitter reads the
segmentation's probability map detached: it learns to split whatever the segmenter finds, as it must
at run time, while each network keeps its own loss.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from edgekd.tasks.ibvs import common, sim

SAMPLES_PER_WORLD = 8
VEHICLE_IN_CROP = 0.75  # share of crops centred near the vehicle; the rest teach "no vehicle here"


def crop_size(recipe) -> int:
    """A square crop a little over twice the vehicle's length in render pixels, rounded up to the stride."""
    camera = common.camera(recipe)
    length_px = recipe.sim.vehicle_length / camera.metres_per_render_pixel()
    return int(16 * np.ceil(2.2 * length_px / 16))


def make_crops(recipe, count: int, purpose: str, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(count, S, S, 3) uint8 images and (count, S, S) uint8 labels (0 ground, 1 front, 2 back)."""
    camera, size = common.camera(recipe), crop_size(recipe)
    images = np.zeros((count, size, size, 3), np.uint8)
    labels = np.zeros((count, size, size), np.uint8)
    for start in range(0, count, SAMPLES_PER_WORLD):
        rng = common.rng_for(recipe, purpose, start // SAMPLES_PER_WORLD)
        world = common.new_world(recipe, rng)
        for index in range(start, min(start + SAMPLES_PER_WORLD, count)):
            offset, yaw = common.random_start(recipe, rng)
            state = sim.pose_for_offset(world, camera, offset * rng.uniform(0, 1.2), yaw * 2)
            frame, label = sim.render(world, state, camera, rng, recipe.sim.noise)
            images[index], labels[index] = _crop(frame, label, size, rng)
        if progress:
            progress(min(SAMPLES_PER_WORLD, count - start))
    return images, labels


def _crop(frame: np.ndarray, label: np.ndarray, size: int, rng: np.random.Generator):
    height, width = label.shape
    ys, xs = np.nonzero(label)
    if len(xs) and rng.random() < VEHICLE_IN_CROP:
        cx, cy = xs.mean() + rng.uniform(-0.45, 0.45) * size, ys.mean() + rng.uniform(-0.45, 0.45) * size
    else:
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    x0 = int(np.clip(cx - size / 2, 0, width - size))
    y0 = int(np.clip(cy - size / 2, 0, height - size))
    return frame[y0:y0 + size, x0:x0 + size], label[y0:y0 + size, x0:x0 + size]


class CropDataset(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, flip: bool = True) -> None:
        self.images, self.labels, self.flip = images, labels, flip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, label = self.images[index], self.labels[index]
        if self.flip and index % 2:  # a mirrored vehicle is still front/back: free augmentation
            image, label = image[:, ::-1], label[:, ::-1]
        return torch.from_numpy(common.normalise(image)), torch.from_numpy(label.astype(np.int64))


class PerceptionObjective(nn.Module):
    """BCE on the vehicle mask + cross-entropy on ground / front / back, each network its own loss."""

    def __init__(self, perception: nn.Module) -> None:
        super().__init__()
        self.perception = perception

    def forward(self, batch) -> dict[str, torch.Tensor]:
        images, labels = batch
        vehicle = self.perception.segmenter(images)
        target = (labels > 0).float().unsqueeze(1)
        seg = F.binary_cross_entropy_with_logits(vehicle, target, pos_weight=vehicle.new_tensor(4.0))
        split_in = torch.cat([images, torch.sigmoid(vehicle).detach()], dim=1)
        split = F.cross_entropy(self.perception.splitter(split_in), labels)
        return {"loss": seg + split, "seg": seg.detach(), "split": split.detach()}


def evaluation_frames(recipe, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out full frames (count, H, W, 3) and their exact corners (count, 4, 2), sensor pixels."""
    camera = common.camera(recipe)
    frames = np.zeros((count, camera.render_height, camera.render_width, 3), np.uint8)
    corners = np.zeros((count, 4, 2))
    for index in range(count):
        rng = common.rng_for(recipe, "perception-eval", index)
        world = common.new_world(recipe, rng)
        offset, yaw = common.random_start(recipe, rng)
        state = sim.pose_for_offset(world, camera, offset * rng.uniform(0, 1.1), yaw)
        frames[index] = sim.render(world, state, camera, rng, recipe.sim.noise)[0]
        corners[index] = sim.corners_px(world, state, camera)
    return frames, corners


def corner_errors(found: list, corners: np.ndarray) -> dict[str, float]:
    """Detection rate, and the mean / median ‖ŝ − s‖ (sensor pixels, 4 corners) where the vehicle was found."""
    errors = [float(np.linalg.norm(f - c)) for f, c in zip(found, corners) if f is not None]
    return {"found_rate": len(errors) / max(len(found), 1),
            "corner_error_mean_px": float(np.mean(errors)) if errors else float("nan"),
            "corner_error_median_px": float(np.median(errors)) if errors else float("nan")}
