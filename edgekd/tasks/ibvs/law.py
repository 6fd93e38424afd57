"""The NSER-IBVS control law: 3-DOF image-based visual servoing on four ordered corners.

Per point (pixel u, v; normalised x, y = K⁻¹[u, v, 1]) the reduced interaction matrix keeps columns 1, 2 and 6
of the classic point Jacobian (v_x, v_y, ω_z; fixed altitude):

    J_i = K[:2, :2] · [[−1/Z_i, 0, y], [0, −1/Z_i, −x]],   Z_i = Z · sqrt(x² + y² + 1)

and the command is v = Λ · pinv(J) · (s* − s) with Λ = diag(2.5λ, 2.5λ, 1.15λ), λ = 0.30, switching to
diag(0.5, 0.5, 0.1) once ‖s* − s‖ < 60 px. Velocities become Parrot piloting commands in [−100, 100]
(2 m/s and 60°/s at 100), with the yaw dead band and the small-velocity rule of the paper's controller.
Pure numpy: it runs inside the teacher at every frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_LINEAR_SPEED = 2.0  # m/s at command 100
MAX_ANGULAR_SPEED = math.radians(60.0)  # rad/s at command 100
YAW_DEAD_BAND = 8  # |yaw command| below this is sent as 0
SMALL_VELOCITY = (0.002, 0.005)  # m/s: velocities in this band are sent as ±1 so the drone still creeps
COMMAND_LIMIT = 100


@dataclass(frozen=True)
class LawGains:
    """Λ far from the goal, Λ near it, and where "near" starts (pixels of ‖s* − s‖ in sensor pixels)."""

    lam: float = 0.30
    near: tuple[float, float, float] = (0.5, 0.5, 0.1)
    switch_px: float = 60.0
    estimated_depth: float = 1.0

    @property
    def far(self) -> tuple[float, float, float]:
        return (2.5 * self.lam, 2.5 * self.lam, 1.15 * self.lam)


def point_depths(points: np.ndarray, K: np.ndarray, depth: float) -> np.ndarray:
    """Z_i = Z · sqrt(x² + y² + 1): the range along each point's ray at ground distance Z."""
    normalised = _normalise(points, K)
    return depth * np.sqrt((normalised**2).sum(axis=1) + 1.0)


def interaction_matrix(points: np.ndarray, K: np.ndarray, depth: float) -> np.ndarray:
    """The stacked (2N, 3) reduced interaction matrix of N pixel points (N, 2), with the paper's Z_i."""
    return reduced_jacobian(points, K, point_depths(points, K, depth))


def reduced_jacobian(points: np.ndarray, K: np.ndarray, depths: np.ndarray) -> np.ndarray:
    """d(pixels)/d(v_x, v_y, ω_z) for points at the given optical-axis depths: columns 1, 2, 6 of L."""
    normalised = _normalise(points, K)
    rows = []
    for (x, y), z in zip(normalised, depths):
        rows.append(K[:2, :2] @ np.array([[-1.0 / z, 0.0, y], [0.0, -1.0 / z, -x]]))
    return np.vstack(rows)


def velocities(points: np.ndarray, goal: np.ndarray, K: np.ndarray, gains: LawGains = LawGains()) -> tuple[np.ndarray, float]:
    """(v_x, v_y, ω_z) in the camera frame for current corners `points` (4, 2) and goal corners; and ‖s* − s‖."""
    error = (np.asarray(goal, dtype=np.float64) - np.asarray(points, dtype=np.float64)).reshape(-1)
    norm = float(np.linalg.norm(error))
    lam = np.diag(gains.near if norm < gains.switch_px else gains.far)
    J = interaction_matrix(np.asarray(points, dtype=np.float64), K, gains.estimated_depth)
    return lam @ np.linalg.pinv(J) @ error, norm


def to_commands(velocity: np.ndarray) -> np.ndarray:
    """Parrot piloting commands (roll, pitch, yaw), integers in [−100, 100], from camera-frame velocities."""
    v_x, v_y, w_z = (float(v) for v in velocity)
    roll = math.ceil(100 * v_x / MAX_LINEAR_SPEED)
    pitch = math.ceil(-100 * v_y / MAX_LINEAR_SPEED)
    yaw = 100 * w_z / MAX_ANGULAR_SPEED
    if abs(yaw) < YAW_DEAD_BAND:
        yaw = 0.0
    low, high = SMALL_VELOCITY
    if low <= abs(v_x) <= high:
        roll = -1 if v_x < 0 else 1
    if low <= abs(v_y) <= high:
        pitch = 1 if v_y < 0 else -1
    commands = np.array([roll, pitch, math.ceil(yaw)], dtype=np.float64)
    return np.clip(commands, -COMMAND_LIMIT, COMMAND_LIMIT)


def command_velocity(commands: np.ndarray) -> np.ndarray:
    """The camera-frame velocity (v_x, v_y, ω_z) a command asks for: the inverse of `to_commands`' scaling."""
    roll, pitch, yaw = np.clip(np.asarray(commands, dtype=np.float64), -COMMAND_LIMIT, COMMAND_LIMIT)
    return np.array([roll / 100 * MAX_LINEAR_SPEED, -pitch / 100 * MAX_LINEAR_SPEED, yaw / 100 * MAX_ANGULAR_SPEED])


def normalise_commands(commands: np.ndarray, scale: tuple[float, float, float]) -> np.ndarray:
    """Student targets: commands divided by the per-axis scale (paper: 24, 9, 41), clipped to tanh's [−1, 1]."""
    return np.clip(np.asarray(commands, dtype=np.float32) / np.asarray(scale, dtype=np.float32), -1.0, 1.0)


def denormalise_commands(outputs: np.ndarray, scale: tuple[float, float, float]) -> np.ndarray:
    """Student outputs back to (integer) piloting commands."""
    return np.rint(np.asarray(outputs, dtype=np.float64) * np.asarray(scale, dtype=np.float64))


def _normalise(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    return (np.linalg.inv(K) @ homogeneous.T).T[:, :2]
