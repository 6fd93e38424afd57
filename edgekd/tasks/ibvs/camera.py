"""The drone's downward-looking pinhole camera.

Two resolutions: the *sensor* (the simulated Parrot Anafi's 1280×720, fx = fy = 959.64) in which the law,
its gains and the error thresholds are defined, exactly as in NSER-IBVS; and the *render* size the
networks see (a scaled copy of the same camera). Corner pixels move between the two by a plain scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANAFI_SENSOR = (1280, 720)
ANAFI_FOCAL = 959.64


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at `altitude` metres above the ground plane, optical axis straight down."""

    render_width: int = 320
    render_height: int = 180
    altitude: float = 2.0
    sensor_width: int = ANAFI_SENSOR[0]
    sensor_height: int = ANAFI_SENSOR[1]
    sensor_focal: float = ANAFI_FOCAL

    @property
    def sensor_K(self) -> np.ndarray:
        return np.array([[self.sensor_focal, 0.0, self.sensor_width / 2],
                         [0.0, self.sensor_focal, self.sensor_height / 2],
                         [0.0, 0.0, 1.0]])

    @property
    def render_scale(self) -> float:
        """Render pixels per sensor pixel (the same in x and y: the aspect ratio is kept)."""
        return self.render_width / self.sensor_width

    @property
    def render_K(self) -> np.ndarray:
        K = self.sensor_K.copy()
        K[:2] *= self.render_scale
        return K

    def metres_per_render_pixel(self) -> float:
        return self.altitude / self.render_K[0, 0]

    def to_sensor(self, render_points: np.ndarray) -> np.ndarray:
        return np.asarray(render_points, dtype=np.float64) / self.render_scale

    def to_render(self, sensor_points: np.ndarray) -> np.ndarray:
        return np.asarray(sensor_points, dtype=np.float64) * self.render_scale


def camera_axes(yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of the camera's x (image right) and y (image down) axes in the world ground plane.

    World: X east, Y north, Z up. The optical axis z_c points down (0, 0, −1); x_c × y_c = z_c keeps the
    frame right-handed, and yaw turns x_c counter-clockwise seen from above.
    """
    x_axis = np.array([np.cos(yaw), np.sin(yaw)])
    y_axis = np.array([np.sin(yaw), -np.cos(yaw)])
    return x_axis, y_axis


def project_ground(points_xy: np.ndarray, position: np.ndarray, yaw: float, altitude: float,
                   K: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) of ground points (N, 2) seen from a camera at (position, altitude) with `yaw`."""
    x_axis, y_axis = camera_axes(yaw)
    rel = np.asarray(points_xy, dtype=np.float64) - np.asarray(position, dtype=np.float64)
    x = rel @ x_axis / altitude
    y = rel @ y_axis / altitude
    return np.stack([K[0, 0] * x + K[0, 2], K[1, 1] * y + K[1, 2]], axis=-1)
