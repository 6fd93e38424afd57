"""A ray-cast spinning LiDAR like KITTI's Velodyne HDL-64E, limited to the camera's field of view.

Mounted 1.73 m above the ground (0.08 m above the camera) and 0.27 m behind it, axes x forward, y left, z up (the
KITTI velodyne frame). Beams are spread evenly over KITTI's vertical field of view, +2° to −24.8° (32 or 64 of
them); the azimuth steps 0.4° across the camera's horizontal field of view plus a 2° margin each side (the only
part a monocular pipeline projects into the image). Each return: the nearest box face or ground point within
MAX_RANGE_M, range noise σ = 2 cm along the beam, 5 % of returns dropped, intensity = reflectance × |cos incidence|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekd.tasks.mono3d.render3d import (
    CAMERA_HEIGHT,
    Appearance,
    Boxes,
    Camera,
    car_albedo,
    cast,
    face_normals,
    ground_albedo,
)

LIDAR_HEIGHT = 1.73
LIDAR_BEHIND_CAMERA_M = 0.27
VERTICAL_FOV_DEG = (2.0, -24.8)
AZIMUTH_STEP_DEG = 0.4
AZIMUTH_MARGIN_DEG = 2.0
MAX_RANGE_M = 100.0
RANGE_NOISE_M = 0.02
DROPOUT = 0.05
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class LidarPose:
    """Where the LiDAR sits: its origin in the camera frame and the (3, 4) Tr_velo_to_cam."""

    origin_cam: np.ndarray

    def velo_to_cam(self) -> np.ndarray:
        # LiDAR (x fwd, y left, z up) → camera (x right, y down, z fwd): x_c = −y_l, y_c = −z_l, z_c = x_l.
        rotation = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
        return np.concatenate([rotation, self.origin_cam[:, None]], axis=1)


def lidar_pose() -> LidarPose:
    return LidarPose(np.array([0.0, CAMERA_HEIGHT - LIDAR_HEIGHT, -LIDAR_BEHIND_CAMERA_M]))


def beam_directions(camera: Camera, beams: int) -> np.ndarray:
    """Unit directions (beams × azimuths, 3) in the LiDAR frame, row-major by beam (top beam first)."""
    if beams not in (32, 64):
        raise ValueError(f"beams must be 32 or 64, got {beams}")
    elevation = np.radians(np.linspace(VERTICAL_FOV_DEG[0], VERTICAL_FOV_DEG[1], beams))
    left = np.degrees(np.arctan2(camera.cx, camera.fx)) + AZIMUTH_MARGIN_DEG
    right = np.degrees(np.arctan2(camera.width - camera.cx, camera.fx)) + AZIMUTH_MARGIN_DEG
    azimuth = np.radians(np.arange(left, -right - 1e-9, -AZIMUTH_STEP_DEG))  # + is left (y), sweep left → right
    e, a = np.meshgrid(elevation, azimuth, indexing="ij")
    return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1).reshape(-1, 3)


@dataclass
class Sweep:
    """LiDAR returns: points (N, 4) float32 x, y, z, intensity in the LiDAR frame; the car hit (N,), −1 ground."""

    points: np.ndarray
    box: np.ndarray


def scan(camera: Camera, boxes: Boxes, look: Appearance, rng: np.random.Generator, beams: int = 32) -> Sweep:
    """Cast one sweep into the scene."""
    pose = lidar_pose()
    velo_to_cam = pose.velo_to_cam()[:, :3]
    directions_velo = beam_directions(camera, beams)
    directions_cam = directions_velo @ velo_to_cam.T
    hits = cast(pose.origin_cam, directions_cam, boxes, max_distance=MAX_RANGE_M)
    keep = (hits.box != -2) & (rng.random(len(directions_cam)) >= DROPOUT)
    distance = hits.distance[keep] + rng.normal(0.0, RANGE_NOISE_M, int(keep.sum()))
    intensity = _intensity(hits, keep, pose.origin_cam, directions_cam, boxes, look)
    xyz = directions_velo[keep] * distance[:, None]  # the LiDAR origin is the LiDAR frame's origin
    points = np.concatenate([xyz, intensity[:, None]], axis=1).astype(np.float32)
    return Sweep(points, hits.box[keep])


def _intensity(hits, keep: np.ndarray, origin: np.ndarray, directions: np.ndarray, boxes: Boxes,
               look: Appearance) -> np.ndarray:
    """Reflectance (luminance of the surface colour) × |cos| of the incidence angle, in [0, 1]."""
    box, face, d = hits.box[keep], hits.face[keep], directions[keep]
    reflectance = np.empty(len(box))
    cosine = np.empty(len(box))
    on_box = box >= 0
    if on_box.any():
        reflectance[on_box] = car_albedo(look)[box[on_box], face[on_box]] @ _LUMA
        cosine[on_box] = np.einsum("ni,ni->n", face_normals(boxes)[box[on_box], face[on_box]], d[on_box])
    ground = ~on_box
    points = origin + d[ground] * hits.distance[keep][ground, None]
    reflectance[ground] = ground_albedo(points[:, 0], points[:, 2], look) @ _LUMA
    cosine[ground] = d[ground, 1]  # ground normal (0, −1, 0) against the ray
    return np.clip(0.05 + 0.9 * reflectance * np.abs(cosine), 0.0, 1.0)
