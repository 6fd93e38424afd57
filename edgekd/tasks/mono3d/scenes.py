"""Synthetic driving scenes written as a KITTI object data set: the mono3d recipe's embedded default data.

    <out>/<split>/image_2/NNNNNN.png    320×96 RGB (KITTI's P2 scaled by 320/1242, see render3d)
    <out>/<split>/velodyne/NNNNNN.bin   float32 x, y, z, intensity in the LiDAR frame (see lidar)
    <out>/<split>/label_2/NNNNNN.txt    the 15 KITTI label fields, one Car per line
    <out>/<split>/calib/NNNNNN.txt      P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo
    <out>/scale.json                    height_scale for the 2D-height difficulty limits (40 / 25 / 25 px × scale)
    <out>/info.json                     generator settings

A scene: flat ground, 1–8 cuboid cars (l 3.9 ± 0.4, w 1.6 ± 0.1, h 1.5 ± 0.1 m, uniform yaw, x ∈ [−15, 15] m,
z ∈ [5, 45] m, footprints at least 0.25 m apart, each at least partly in the image). Labels come from the render:
the 2D box is the projection of the 8 corners clipped to the image, truncation the fraction of that projected box
outside the image, occlusion the fraction of the car's own silhouette hidden by nearer cars binned 0 (≤ 5 %),
1 (≤ 50 %), 2 (more); cars hidden completely are removed from the scene. Each scene depends only on (seed, split,
index).
"""

from __future__ import annotations

import colorsys
import io
import multiprocessing
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from edgekd.artifacts import atomic_write_json
from edgekd.tasks.mono3d.box_iou import bev_intersection
from edgekd.tasks.mono3d.kitti_eval import MIN_HEIGHT_PX
from edgekd.tasks.mono3d.kitti_io import (
    box_corners_3d,
    format_calib,
    format_label_lines,
    observation_angle,
    points_to_bytes,
    project_to_image,
)
from edgekd.tasks.mono3d.lidar import AZIMUTH_STEP_DEG, LIDAR_HEIGHT, Sweep, lidar_pose, scan
from edgekd.tasks.mono3d.render3d import CAMERA_HEIGHT, Appearance, Boxes, Camera, kitti_camera, render_image

FORMAT_VERSION = 1
SPLITS = ("train", "val")
CAR_SIZE_MEAN, CAR_SIZE_SPREAD = np.array([1.5, 1.6, 3.9]), np.array([0.1, 0.1, 0.4])  # h, w, l
X_RANGE_M, Z_RANGE_M = (-15.0, 15.0), (5.0, 45.0)
MAX_CARS = 8
FOOTPRINT_GAP_M = 0.5
OCCLUSION_BINS = (0.05, 0.5)
_PLACEMENT_TRIES = 60
_CHUNK = 25  # scenes per worker task
_OWN_FRAME = re.compile(r"\d{6}")


@dataclass
class Scene:
    """One rendered scene: camera image, LiDAR sweep and the cars' labels."""

    image: np.ndarray  # (H, W, 3) uint8
    sweep: Sweep
    boxes: Boxes
    labels: dict[str, np.ndarray]  # kitti_io object dict, row i = boxes[i]
    visible_pixels: np.ndarray  # (K,)
    car_id: np.ndarray  # (H, W) index of the car seen at each pixel, −1 for ground and sky


def scene_rng(seed: int, split: int, index: int) -> np.random.Generator:
    """The random stream of one scene, independent of which worker renders it."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(split, index)))


def render_scene(rng: np.random.Generator, camera: Camera, beams: int = 32) -> Scene:
    """Sample, render and label one scene."""
    boxes = sample_cars(rng, camera)
    look = sample_appearance(rng, len(boxes))
    image_rng = np.random.default_rng(rng.integers(2**63))
    image, car_id, own = render_image(camera, boxes, look, image_rng)
    visible = np.bincount(car_id[car_id >= 0], minlength=len(boxes))
    if (visible == 0).any():  # hidden completely: nobody could label it; drop it and render again
        keep = visible > 0
        boxes, look.car_colours = boxes.subset(keep), look.car_colours[keep]
        image, car_id, own = render_image(camera, boxes, look, np.random.default_rng(image_rng.integers(2**63)))
        visible = np.bincount(car_id[car_id >= 0], minlength=len(boxes))
    sweep = scan(camera, boxes, look, rng, beams)
    return Scene(image, sweep, boxes, car_labels(boxes, camera, visible, own), visible, car_id)


def sample_cars(rng: np.random.Generator, camera: Camera) -> Boxes:
    """1–8 cars on the ground, apart from each other and each at least partly inside the image."""
    wanted = int(rng.integers(1, MAX_CARS + 1))
    placed = Boxes(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
    for _ in range(wanted * _PLACEMENT_TRIES):
        if len(placed) == wanted:
            break
        candidate = _random_car(rng)
        if _in_view(candidate, camera) and not _too_close(candidate, placed):
            placed = placed.extended(candidate)
    return placed


def _random_car(rng: np.random.Generator) -> Boxes:
    # Rounded to the 2 decimals of a label file, so the render and the written label describe the same car.
    size = np.round(CAR_SIZE_MEAN + rng.uniform(-1.0, 1.0, 3) * CAR_SIZE_SPREAD, 2)
    x, z, ry = np.round([rng.uniform(*X_RANGE_M), rng.uniform(*Z_RANGE_M), rng.uniform(-3.14, 3.14)], 2)
    return Boxes(size[None], np.array([[x, CAMERA_HEIGHT, z]]), np.array([ry]))


def _in_view(box: Boxes, camera: Camera) -> bool:
    full = _projected_boxes(box, camera)[0]
    clipped = _clip(full, camera)
    return bool(clipped[2] - clipped[0] >= 1.0 and clipped[3] - clipped[1] >= 1.0)


def _too_close(candidate: Boxes, placed: Boxes) -> bool:
    if len(placed) == 0:
        return False
    grown = candidate.size[:, [2, 1]] + FOOTPRINT_GAP_M  # l, w grown by the gap: footprints stay apart
    bev = np.concatenate([candidate.bottom[:, [0, 2]], grown, candidate.yaw[:, None]], axis=1)
    others = np.concatenate([placed.bottom[:, [0, 2]], placed.size[:, [2, 1]], placed.yaw[:, None]], axis=1)
    return bool((bev_intersection(bev, others) > 0).any())


def sample_appearance(rng: np.random.Generator, cars: int) -> Appearance:
    """Random but plausible colours, sun and ground texture."""
    colours = np.array([colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.9), rng.uniform(0.15, 0.95))
                        for _ in range(cars)]).reshape(-1, 3)
    azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(np.radians(25), np.radians(70))
    light = np.array([np.cos(elevation) * np.cos(azimuth), -np.sin(elevation), np.cos(elevation) * np.sin(azimuth)])
    grey = rng.uniform(0.18, 0.32)
    return Appearance(car_colours=colours, light=light, ambient=rng.uniform(0.3, 0.5),
                      asphalt=grey * rng.uniform(0.92, 1.08, 3),
                      verge=np.array([0.25, 0.35, 0.15]) * rng.uniform(0.7, 1.2, 3),
                      sky_horizon=np.array([0.78, 0.82, 0.86]) * rng.uniform(0.85, 1.0),
                      sky_zenith=np.array([0.35, 0.5, 0.8]) * rng.uniform(0.8, 1.1, 3),
                      road_offset_m=rng.uniform(-1.75, 1.75), dash_phase_m=rng.uniform(0, 9),
                      texture_seed=rng.uniform(0, 1000), noise_sigma=rng.uniform(0.01, 0.03))


def _projected_boxes(boxes: Boxes, camera: Camera) -> np.ndarray:
    """(K, 4) unclipped 2D boxes of the projected corners."""
    label_boxes = np.concatenate([boxes.size, boxes.bottom, boxes.yaw[:, None]], axis=1)
    pixels, _ = project_to_image(box_corners_3d(label_boxes), camera.P2())
    return np.concatenate([pixels.min(axis=1), pixels.max(axis=1)], axis=1)


def _clip(boxes: np.ndarray, camera: Camera) -> np.ndarray:
    limit = np.array([camera.width - 1, camera.height - 1, camera.width - 1, camera.height - 1], np.float64)
    return np.clip(boxes, 0.0, limit)


def car_labels(boxes: Boxes, camera: Camera, visible: np.ndarray, own: np.ndarray) -> dict[str, np.ndarray]:
    """KITTI labels of the cars: 2D box, truncation and occlusion as described in the module docstring."""
    full = _projected_boxes(boxes, camera)
    clipped = _clip(full, camera)
    area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
    truncated = np.clip(1.0 - area(clipped) / np.maximum(area(full), 1e-9), 0.0, 1.0)
    hidden = 1.0 - visible / np.maximum(own, 1)
    occluded = np.digitize(hidden, OCCLUSION_BINS, right=True)
    return {"name": np.full(len(boxes), "Car", dtype="<U16"), "truncated": truncated, "occluded": occluded,
            "alpha": observation_angle(boxes.bottom, boxes.yaw), "bbox": clipped, "dimensions": boxes.size.copy(),
            "location": boxes.bottom.copy(), "rotation_y": boxes.yaw.copy(),
            "score": np.ones(len(boxes))}


def calib_text(camera: Camera) -> str:
    """The calib file of every synthetic frame: P0 = P2 (one rectified camera), nominal stereo P1 / P3."""
    P2 = camera.P2()
    stereo = lambda baseline: P2 + np.array([[0, 0, 0, -camera.fx * baseline], [0] * 4, [0] * 4])  # noqa: E731
    imu_to_velo = np.array([[1.0, 0, 0, -0.81], [0, 1.0, 0, 0.32], [0, 0, 1.0, -0.80]])  # nominal, unused
    return format_calib([P2, stereo(0.54), P2, stereo(0.47)], np.eye(3), lidar_pose().velo_to_cam(), imu_to_velo)


# ---- writing the data set ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """Scenes [start, stop) of one split."""

    root: str
    split: str
    start: int
    stop: int
    seed: int
    width: int
    height: int
    beams: int


def write_scene(folder: Path, index: int, scene: Scene, calib: str) -> None:
    """The four KITTI files of one frame, each written atomically."""
    name = f"{index:06d}"
    buffer = io.BytesIO()
    Image.fromarray(scene.image).save(buffer, format="PNG", compress_level=1)
    _replace_file(folder / "image_2" / f"{name}.png", buffer.getvalue())
    _replace_file(folder / "velodyne" / f"{name}.bin", points_to_bytes(scene.sweep.points))
    _replace_file(folder / "label_2" / f"{name}.txt", format_label_lines(scene.labels).encode())
    _replace_file(folder / "calib" / f"{name}.txt", calib.encode())


def _replace_file(path: Path, data: bytes) -> None:
    """Temp file + rename, like artifacts.atomic_path but without its fsync: a crash still leaves whole files, and
    skipping 4 fsyncs per scene doubles the generation rate (a power cut at worst costs a re-generation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _render_job(job: _Job) -> int:
    camera = kitti_camera(job.width, job.height)
    calib = calib_text(camera)
    split_key = SPLITS.index(job.split)
    for index in range(job.start, job.stop):
        scene = render_scene(scene_rng(job.seed, split_key, index), camera, job.beams)
        write_scene(Path(job.root) / job.split, index, scene, calib)
    return job.stop - job.start


def _jobs(root: Path, counts: dict[str, int], seed: int, width: int, height: int, beams: int) -> Iterator[_Job]:
    for split, count in counts.items():
        for start in range(0, count, _CHUNK):
            yield _Job(str(root), split, start, min(start + _CHUNK, count), seed, width, height, beams)


def generate_kitti_scenes(out_dir: str | Path, *, train: int, val: int, seed: int = 0, width: int = 320,
                          height: int = 96, beams: int = 32, workers: int = 1,
                          progress: Callable[[int], None] | None = None) -> dict:
    """Render `train` + `val` scenes in the KITTI object layout under `out_dir`; returns info.json's content.

    Files depend only on the arguments other than `workers` / `progress` (`progress(n)` is called as each batch
    of n scenes is written).

    >>> info = generate_kitti_scenes("data/mono3d", train=100, val=20, seed=0)  # doctest: +SKIP
    """
    if beams not in (32, 64):
        raise ValueError(f"beams must be 32 or 64, got {beams}")
    root = Path(out_dir)
    jobs = list(_jobs(root, {"train": train, "val": val}, seed, width, height, beams))
    for done in _run(jobs, workers):
        if progress is not None:
            progress(done)
    for split, count in (("train", train), ("val", val)):
        _remove_stale(root / split, count)
    camera = kitti_camera(width, height)
    scale = {"height_scale": camera.height_scale, "reference_size": [1242, 375], "image_size": [width, height],
             "min_height_px": {level: MIN_HEIGHT_PX[i] * camera.height_scale
                               for i, level in enumerate(("easy", "moderate", "hard"))}}
    atomic_write_json(root / "scale.json", scale)
    info = _info(camera, seed, beams, {"train": train, "val": val})
    atomic_write_json(root / "info.json", info)
    return info


def _remove_stale(folder: Path, count: int) -> None:
    """A smaller re-generation into the same folder must not leave frames from the earlier one."""
    for sub, suffix in (("image_2", ".png"), ("velodyne", ".bin"), ("label_2", ".txt"), ("calib", ".txt")):
        for path in (folder / sub).glob(f"*{suffix}"):
            if _OWN_FRAME.fullmatch(path.stem) and int(path.stem) >= count:
                path.unlink()


def _run(jobs: list[_Job], workers: int) -> Iterator[int]:
    if workers <= 1:
        yield from map(_render_job, jobs)
        return
    with multiprocessing.get_context().Pool(workers) as pool:
        yield from pool.imap(_render_job, jobs)


def _info(camera: Camera, seed: int, beams: int, counts: dict[str, int]) -> dict:
    return {"format_version": FORMAT_VERSION, "generator": "edgekd.tasks.mono3d.scenes", "seed": seed,
            "counts": counts, "image_size": [camera.width, camera.height],
            "camera": {"fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy, "height_m": CAMERA_HEIGHT,
                       "model": "KITTI P2 scaled by width/1242; rows added or cropped at the top (sky)"},
            "lidar": {"beams": beams, "height_m": LIDAR_HEIGHT, "vertical_fov_deg": [2.0, -24.8],
                      "azimuth_step_deg": AZIMUTH_STEP_DEG, "azimuth": "camera field of view + 2 deg each side"},
            "cars": {"per_scene": [1, MAX_CARS], "size_mean_hwl_m": CAR_SIZE_MEAN.tolist(),
                     "size_spread_hwl_m": CAR_SIZE_SPREAD.tolist(), "x_range_m": list(X_RANGE_M),
                     "z_range_m": list(Z_RANGE_M)},
            "occlusion_bins": {"0": "hidden <= 5%", "1": "hidden <= 50%", "2": "hidden > 50%"}}
