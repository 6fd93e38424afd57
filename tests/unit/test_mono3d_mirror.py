"""The LiDAR teacher's left-right flip: boxes, pillar grid and target maps must mirror together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekd.errors import EdgekdError
from edgekd.tasks.mono3d import common
from edgekd.tasks.mono3d.bev import pillar_features
from edgekd.tasks.mono3d.dataset import MirroredLidarScenes, SplitArrays, SceneDataset, mirror_boxes, target_maps
from edgekd.tasks.mono3d.kitti_io import box_corners_3d
from edgekd.tasks.mono3d.lift import BevGrid
from edgekd.tasks.mono3d.models import NetConfig

HEAD_GRID = common.head_grid(NetConfig())
# centres off cell boundaries, yaws in every quadrant
BOXES = np.array([[1.5, 1.6, 3.9, 3.3, 1.65, 12.2, 0.4],
                  [1.4, 1.7, 4.2, -7.7, 1.6, 25.9, -2.5],
                  [1.6, 1.8, 4.5, 0.3, 1.7, 6.1, 3.0]], np.float32)


def test_mirror_boxes_by_hand_and_twice_is_identity() -> None:
    mirrored = mirror_boxes(BOXES)
    np.testing.assert_allclose(mirrored[:, 3], [-3.3, 7.7, -0.3], rtol=1e-6)
    np.testing.assert_allclose(mirrored[:, 6], [np.pi - 0.4, np.pi + 2.5 - 2 * np.pi, np.pi - 3.0], atol=1e-6)
    assert np.all((mirrored[:, 6] >= -np.pi) & (mirrored[:, 6] < np.pi))
    np.testing.assert_allclose(mirror_boxes(mirrored), BOXES, atol=1e-5)


def test_mirrored_box_has_the_mirrored_corners() -> None:
    corners = box_corners_3d(BOXES.astype(np.float64))
    flipped = corners * np.array([-1.0, 1.0, 1.0])
    got = box_corners_3d(mirror_boxes(BOXES).astype(np.float64))
    for a, b in zip(flipped, got):  # the same eight points, in another order
        distances = np.linalg.norm(a[:, None] - b[None], axis=-1)
        assert distances.min(axis=1).max() < 1e-4


def test_target_maps_mirror_with_the_boxes() -> None:
    plain, mirrored = target_maps(BOXES, HEAD_GRID), target_maps(mirror_boxes(BOXES), HEAD_GRID)
    flipped = plain.flip(-1)
    torch.testing.assert_close(mirrored[0], flipped[0], atol=1e-6, rtol=0)         # heatmap
    torch.testing.assert_close(mirrored[10], flipped[10])                           # centre mask
    at = flipped[10] > 0
    torch.testing.assert_close(mirrored[1][at], 1 - flipped[1][at], atol=1e-5, rtol=0)  # x offset in the cell
    torch.testing.assert_close(mirrored[2:7][:, at], flipped[2:7][:, at])           # z offset, y, log sizes
    torch.testing.assert_close(mirrored[7][at], -flipped[7][at], atol=1e-6, rtol=0)  # sin 2ry
    torch.testing.assert_close(mirrored[8][at], flipped[8][at], atol=1e-6, rtol=0)   # cos 2ry
    torch.testing.assert_close(mirrored[9][at], 1 - flipped[9][at])                 # direction: cos ry changes sign


def test_pillars_of_mirrored_points_are_the_flipped_grid() -> None:
    grid = BevGrid()
    points = torch.from_numpy(np.random.default_rng(0).uniform([-19.9, -0.9, 0.1], [19.9, 1.9, 39.9], (500, 3)))
    mirrored = points * torch.tensor([-1.0, 1.0, 1.0], dtype=points.dtype)
    torch.testing.assert_close(pillar_features(mirrored, grid), pillar_features(points, grid).flip(-1))


def _arrays(pillars: np.ndarray) -> SplitArrays:
    n = len(pillars)
    return SplitArrays(images=np.zeros((n, 96, 320, 3), np.uint8), depth_cm=np.zeros((n, 96, 320), np.uint16),
                       pillars=pillars, boxes=BOXES, boxes_2d=np.zeros((3, 4), np.float32),
                       box_frame=np.zeros(3, np.int64), P2=np.zeros((n, 3, 4)), image_size=np.zeros((n, 2)),
                       frame_ids=np.array([f"{i:06d}" for i in range(n)]))


def test_scenes_flip_pillars_and_targets_together_and_hide_the_camera() -> None:
    rows, cols = BevGrid().shape
    pillars = np.random.default_rng(1).random((1, 4, rows, cols)).astype(np.float16)
    scenes = SceneDataset(_arrays(pillars), HEAD_GRID)
    always = MirroredLidarScenes(scenes, probability=1.0)[0]
    never = MirroredLidarScenes(scenes, probability=0.0)[0]
    torch.testing.assert_close(never[2], scenes[0][2])
    torch.testing.assert_close(never[3], scenes[0][3])
    torch.testing.assert_close(always[2], scenes[0][2].flip(-1))
    torch.testing.assert_close(always[3][0], scenes[0][3][0].flip(-1), atol=1e-6, rtol=0)
    assert always[0].numel() == always[1].numel() == always[4].numel() == 0


def test_asymmetric_grid_is_refused() -> None:
    rows, cols = BevGrid().shape
    scenes = SceneDataset(_arrays(np.zeros((1, 4, rows, cols), np.float16)),
                          BevGrid(x_range=(-10.0, 30.0), cell=1.25))
    with pytest.raises(EdgekdError, match="symmetric"):
        MirroredLidarScenes(scenes)
