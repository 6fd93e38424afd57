"""Synthetic KITTI scenes: deterministic, labels agree with the render and the LiDAR, files read back via kitti_io."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from edgekd.tasks.mono3d.kitti_io import (
    box_corners_3d,
    index_frames,
    lidar_to_camera,
    project_to_image,
    read_calib,
    read_label_file,
    read_points,
)
from edgekd.tasks.mono3d.lidar import beam_directions
from edgekd.tasks.mono3d.render3d import CAMERA_HEIGHT, Boxes, kitti_camera, render_image
from edgekd.tasks.mono3d.scenes import (
    calib_text,
    car_labels,
    generate_kitti_scenes,
    render_scene,
    sample_appearance,
    scene_rng,
)

CAMERA = kitti_camera(320, 96)


@pytest.fixture(scope="module")
def scenes():
    return [render_scene(scene_rng(7, 0, i), CAMERA, 32) for i in range(12)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kitti")
    generate_kitti_scenes(root, train=3, val=2, seed=1)
    return root


def test_camera_is_kitti_p2_scaled() -> None:
    s = 320 / 1242
    assert (CAMERA.fx, CAMERA.cx) == pytest.approx((721.5377 * s, 609.5593 * s))
    assert CAMERA.cy == pytest.approx(172.854 * s - (375 * s - 96))  # the 0.62 surplus rows come off the sky
    assert CAMERA.height_scale == pytest.approx(s)


def test_scene_is_deterministic() -> None:
    a, b = (render_scene(scene_rng(3, 1, 5), CAMERA, 32) for _ in range(2))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.sweep.points, b.sweep.points)
    np.testing.assert_array_equal(a.labels["location"], b.labels["location"])
    assert not np.array_equal(a.image, render_scene(scene_rng(3, 1, 6), CAMERA, 32).image)


def test_label_ranges(scenes) -> None:
    for scene in scenes:
        labels = scene.labels
        assert 1 <= len(labels["name"]) <= 8
        h, w, l = labels["dimensions"].T
        assert np.all(np.abs(l - 3.9) <= 0.4 + 1e-9) and np.all(np.abs(w - 1.6) <= 0.1 + 1e-9)
        assert np.all(np.abs(h - 1.5) <= 0.1 + 1e-9)
        assert np.all((labels["location"][:, 2] >= 5) & (labels["location"][:, 2] <= 45))
        np.testing.assert_allclose(labels["location"][:, 1], CAMERA_HEIGHT)
        assert np.all(scene.visible_pixels > 0)


def test_boxes_agree_with_render(scenes) -> None:
    checked = 0
    for scene in scenes:
        labels = scene.labels
        boxes = np.concatenate([labels["dimensions"], labels["location"], labels["rotation_y"][:, None]], axis=1)
        centres = labels["location"] - np.stack([0 * boxes[:, 0], boxes[:, 0] / 2, 0 * boxes[:, 0]], axis=1)
        pixels, _ = project_to_image(centres, CAMERA.P2())
        for k, (x1, y1, x2, y2) in enumerate(labels["bbox"]):
            rows, cols = np.nonzero(scene.car_id == k)  # every pixel showing the car lies in its 2D box
            assert cols.min() >= np.floor(x1) - 1 and cols.max() <= np.ceil(x2) and rows.min() >= np.floor(y1) - 1
            assert rows.max() <= np.ceil(y2)
            if labels["truncated"][k] == 0 and labels["occluded"][k] == 0:
                assert x1 <= pixels[k, 0] <= x2 and y1 <= pixels[k, 1] <= y2
                checked += 1
    assert checked >= 5


def test_no_two_cars_overlap(scenes) -> None:
    # Independent of the IoU code: sample points on each car's footprint and test them against the others.
    grid = np.stack(np.meshgrid(np.linspace(-0.5, 0.5, 9), np.linspace(-0.5, 0.5, 5)), -1).reshape(-1, 2)
    for scene in scenes:
        boxes = scene.boxes
        for a in range(len(boxes)):
            c, s = np.cos(boxes.yaw[a]), np.sin(boxes.yaw[a])
            along, across = grid[:, 0] * boxes.size[a, 2], grid[:, 1] * boxes.size[a, 1]
            x = boxes.bottom[a, 0] + c * along + s * across
            z = boxes.bottom[a, 2] - s * along + c * across
            for b in set(range(len(boxes))) - {a}:
                cb, sb = np.cos(boxes.yaw[b]), np.sin(boxes.yaw[b])
                dx, dz = x - boxes.bottom[b, 0], z - boxes.bottom[b, 2]
                along_b, across_b = cb * dx - sb * dz, sb * dx + cb * dz
                inside = (np.abs(along_b) <= boxes.size[b, 2] / 2) & (np.abs(across_b) <= boxes.size[b, 1] / 2)
                assert not inside.any()


def test_lidar_points_lie_on_their_car_or_the_ground(scenes) -> None:
    calib = _calib()
    on_car = 0
    for scene in scenes:
        points, box_id = scene.sweep.points, scene.sweep.box
        assert points.dtype == np.float32 and points.shape[1] == 4
        assert np.all((points[:, 3] >= 0) & (points[:, 3] <= 1))
        cam = lidar_to_camera(points, calib)
        ground = box_id == -1
        assert np.all(np.abs(cam[ground, 1] - CAMERA_HEIGHT) < 0.1)  # 5 σ of the 2 cm range noise, with margin
        for k in np.unique(box_id[box_id >= 0]):
            boxes = scene.boxes
            c, s = np.cos(boxes.yaw[k]), np.sin(boxes.yaw[k])
            d = cam[box_id == k] - boxes.bottom[k]
            along, across = c * d[:, 0] - s * d[:, 2], s * d[:, 0] + c * d[:, 2]
            assert np.all(np.abs(along) <= boxes.size[k, 2] / 2 + 0.1)
            assert np.all(np.abs(across) <= boxes.size[k, 1] / 2 + 0.1)
            assert np.all((d[:, 1] <= 0.1) & (d[:, 1] >= -boxes.size[k, 0] - 0.1))
            on_car += int((box_id == k).sum())
    assert on_car > 100


def _calib():
    """The calibration the generator writes, parsed back (so the test uses the file's Tr_velo_to_cam)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "calib.txt"
        path.write_text(calib_text(CAMERA))
        return read_calib(path, need_velodyne=True)


def test_lidar_beams_cover_kitti_fov() -> None:
    directions = beam_directions(CAMERA, 64)
    elevation = np.degrees(np.arcsin(directions[:, 2]))
    assert elevation.max() == pytest.approx(2.0) and elevation.min() == pytest.approx(-24.8)
    assert len(np.unique(np.round(elevation, 6))) == 64
    with pytest.raises(ValueError):
        beam_directions(CAMERA, 16)


def test_occlusion_of_a_car_behind_another() -> None:
    # Same yaw, one behind the other on the optical axis: the far car shows only a strip above the near one's roof.
    boxes = Boxes(np.array([[1.5, 1.6, 3.9], [1.5, 1.6, 3.9]]), np.array([[0.0, CAMERA_HEIGHT, 10.0],
                                                                        [0.0, CAMERA_HEIGHT, 20.0]]), np.zeros(2))
    rng = np.random.default_rng(0)
    _, car_id, own = render_image(CAMERA, boxes, sample_appearance(rng, 2), rng)
    labels = car_labels(boxes, CAMERA, np.bincount(car_id[car_id >= 0], minlength=2), own)
    assert labels["occluded"].tolist() == [0, 2]
    assert labels["truncated"].tolist() == [0.0, 0.0]


def test_files_read_back_through_kitti_io(dataset: Path) -> None:
    assert json.loads((dataset / "scale.json").read_text())["height_scale"] == pytest.approx(320 / 1242)
    for split, count in (("train", 3), ("val", 2)):
        frames = index_frames(dataset / split, velodyne=True)
        assert [f.frame_id for f in frames] == [f"{i:06d}" for i in range(count)]
        for frame in frames:
            assert frame.velodyne.stat().st_size % 16 == 0
            calib = read_calib(frame.calib, need_velodyne=True)
            np.testing.assert_allclose(calib.P2, CAMERA.P2(), rtol=1e-9)
            labels = read_label_file(frame.label)
            assert set(labels["name"]) == {"Car"}
            points = read_points(frame.velodyne)
            assert len(points) > 1000
            corners = box_corners_3d(np.concatenate([labels["dimensions"], labels["location"],
                                                     labels["rotation_y"][:, None]], axis=1))
            assert np.all(corners[..., 2] > 0)  # every car in front of the camera


def test_generation_is_reproducible_and_trims_stale_frames(dataset: Path, tmp_path: Path) -> None:
    generate_kitti_scenes(tmp_path, train=3, val=2, seed=1)
    for path in sorted(dataset.rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / path.relative_to(dataset)).read_bytes(), path
    generate_kitti_scenes(tmp_path, train=2, val=2, seed=1)
    assert sorted(p.name for p in (tmp_path / "train" / "label_2").iterdir()) == ["000000.txt", "000001.txt"]
