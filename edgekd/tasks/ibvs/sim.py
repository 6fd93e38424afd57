"""The simulator: a quadrotor holding altitude above one World, seen through the downward camera.

State: ground position, yaw, and the camera-frame velocity (v_x, v_y, ω_z). A command sets the velocity the
drone aims for; first-order dynamics v ← v + (v_cmd − v)·dt/τ and a slowly wandering wind make the
response lag and drift, as a real quadrotor's does. Rendering is one affine warp of the world texture
(a nadir camera over a plane), so thousands of frames take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edgekd.tasks.ibvs.camera import Camera, camera_axes, project_ground
from edgekd.tasks.ibvs.law import command_velocity
from edgekd.tasks.ibvs.world import World


@dataclass(frozen=True)
class Dynamics:
    dt: float = 1 / 15  # the control rate of the paper's drone stream
    tau: float = 0.3  # velocity time constant, seconds
    wind_sigma: float = 0.002  # m/s per step of the wind's random walk
    wind_decay: float = 0.97


@dataclass
class DroneState:
    position: np.ndarray  # (2,) world metres
    yaw: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))  # camera frame: v_x, v_y, ω_z
    wind: np.ndarray = field(default_factory=lambda: np.zeros(2))


def goal_yaw(world: World) -> float:
    """The yaw that puts the vehicle's front at the top of the image."""
    return world.vehicle_heading - np.pi / 2


def pose_for_offset(world: World, camera: Camera, offset_px: np.ndarray, yaw_offset: float) -> DroneState:
    """The pose from which the vehicle's centre appears `offset_px` (sensor pixels) from the image centre."""
    yaw = goal_yaw(world) + yaw_offset
    x_axis, y_axis = camera_axes(yaw)
    metres = np.asarray(offset_px, dtype=np.float64) * camera.altitude / camera.sensor_focal
    position = world.vehicle_center - x_axis * metres[0] - y_axis * metres[1]
    return DroneState(position=position, yaw=float(yaw))


def goal_state(world: World) -> DroneState:
    return DroneState(position=world.vehicle_center.copy(), yaw=float(goal_yaw(world)))


def corners_px(world: World, state: DroneState, camera: Camera) -> np.ndarray:
    """Ground-truth vehicle corners (4, 2) in sensor pixels, in the fixed corner order."""
    return project_ground(world.vehicle_corners(), state.position, state.yaw, camera.altitude, camera.sensor_K)


def step(state: DroneState, commands: np.ndarray, dynamics: Dynamics, rng: np.random.Generator) -> DroneState:
    """Advance one control period under piloting `commands` (roll, pitch, yaw in [−100, 100])."""
    target = command_velocity(commands)
    velocity = state.velocity + (target - state.velocity) * (dynamics.dt / dynamics.tau)
    wind = state.wind * dynamics.wind_decay + rng.normal(0.0, dynamics.wind_sigma, 2)
    x_axis, y_axis = camera_axes(state.yaw)
    move = (velocity[0] * x_axis + velocity[1] * y_axis + wind) * dynamics.dt
    # ω_z turns the camera about its optical axis, which points down: the world yaw changes by −ω_z.
    return DroneState(position=state.position + move, yaw=float(state.yaw - velocity[2] * dynamics.dt),
                      velocity=velocity, wind=wind)


def render(world: World, state: DroneState, camera: Camera, rng: np.random.Generator | None = None,
           noise: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """The camera image (H, W, 3) uint8 RGB and its label map (H, W) uint8 (0 ground, 1 front, 2 back)."""
    matrix = _image_to_texture(world, state, camera)
    size = (camera.render_width, camera.render_height)
    flags = cv2.WARP_INVERSE_MAP
    image = cv2.warpAffine(world.texture, matrix, size, flags=cv2.INTER_LINEAR | flags, borderMode=cv2.BORDER_REFLECT)
    labels = cv2.warpAffine(world.labels, matrix, size, flags=cv2.INTER_NEAREST | flags, borderValue=0)
    if rng is not None:
        gain = world.gain * rng.uniform(0.95, 1.05)
        grain = rng.standard_normal(image.shape, dtype=np.float32) * noise
        image = np.clip(image.astype(np.float32) * gain + grain, 0, 255).astype(np.uint8)
    return image, labels


def _image_to_texture(world: World, state: DroneState, camera: Camera) -> np.ndarray:
    """The 2×3 affine map from render pixels to texture pixels."""
    K = camera.render_K
    metres = camera.altitude / K[0, 0]
    x_axis, y_axis = camera_axes(state.yaw)
    # world = position + x_axis·(u − cx)·m + y_axis·(v − cy)·m ; texture = (X/res + S/2, S/2 − Y/res)
    flip = np.array([1.0, -1.0])
    origin = state.position - (x_axis * K[0, 2] + y_axis * K[1, 2]) * metres
    size = world.texture.shape[0]
    columns = np.stack([x_axis * metres * flip, y_axis * metres * flip, origin * flip], axis=1) / world.resolution
    columns[:, 2] += size / 2
    return columns.astype(np.float64)
