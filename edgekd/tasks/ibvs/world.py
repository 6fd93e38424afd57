"""A procedural world for one episode: textured ground, distractors and the target vehicle.

The ground is one large texture in world coordinates (north up); the vehicle is drawn into it with a
different look front and back (windscreen and bonnet stripe in front, dark rear window and tail lights at
the back), so a mask splitter can tell the halves apart. A label texture of the same size holds the
ground truth: 0 ground, 1 front half, 2 back half.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FRONT, BACK = 1, 2


@dataclass(frozen=True)
class VehicleSpec:
    length: float = 0.30  # metres (a toy car, as in the paper's arena)
    width: float = 0.14


@dataclass
class World:
    texture: np.ndarray  # (S, S, 3) uint8 RGB
    labels: np.ndarray  # (S, S) uint8
    resolution: float  # metres per texture pixel
    vehicle_center: np.ndarray  # (2,) world metres
    vehicle_heading: float  # radians, direction of the front
    vehicle: VehicleSpec
    gain: float  # lighting: brightness gain of this episode

    @property
    def half_extent(self) -> float:
        return self.texture.shape[0] * self.resolution / 2

    def to_texture(self, points_xy: np.ndarray) -> np.ndarray:
        """Texture pixel coordinates (column, row) of world points; the world origin is the texture centre."""
        points = np.asarray(points_xy, dtype=np.float64)
        size = self.texture.shape[0]
        return np.stack([points[..., 0] / self.resolution + size / 2, size / 2 - points[..., 1] / self.resolution], -1)

    def vehicle_corners(self) -> np.ndarray:
        """World corners (4, 2) in the fixed order front-left, front-right, back-right, back-left."""
        return vehicle_corners(self.vehicle_center, self.vehicle_heading, self.vehicle)


def vehicle_corners(center: np.ndarray, heading: float, spec: VehicleSpec) -> np.ndarray:
    forward = np.array([np.cos(heading), np.sin(heading)]) * spec.length / 2
    left = np.array([-np.sin(heading), np.cos(heading)]) * spec.width / 2
    return np.stack([center + forward + left, center + forward - left, center - forward - left, center - forward + left])


def make_world(rng: np.random.Generator, *, extent: float, resolution: float, vehicle: VehicleSpec,
               distractors: int) -> World:
    """A new world `extent` metres square; the vehicle sits at the origin with a random heading."""
    size = int(round(extent / resolution))
    texture = _ground(rng, size)
    labels = np.zeros((size, size), np.uint8)
    heading = float(rng.uniform(-np.pi, np.pi))
    world = World(texture, labels, resolution, np.zeros(2), heading, vehicle, gain=float(rng.uniform(0.7, 1.25)))
    _draw_distractors(rng, world, distractors)
    _draw_vehicle(rng, world)
    return world


def _ground(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(60, 190, size=3)
    low = cv2.resize(rng.normal(0, 1, (8, 8, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    mid = cv2.resize(rng.normal(0, 1, (64, 64, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    fine = rng.normal(0, 1, (size, size, 1)).astype(np.float32)
    image = base + low * rng.uniform(8, 25) + mid * rng.uniform(3, 12) + fine * rng.uniform(2, 8)
    if rng.random() < 0.6:  # floor tiles or road markings: straight lines the student must learn to ignore
        spacing = int(rng.integers(size // 12, size // 4))
        color = rng.uniform(-40, 40)
        thickness = int(rng.integers(1, 4))
        for offset in range(int(rng.integers(0, spacing)), size, spacing):
            cv2.line(image, (offset, 0), (offset, size - 1), (color + base).tolist(), thickness)
            if rng.random() < 0.5:
                cv2.line(image, (0, offset), (size - 1, offset), (color + base).tolist(), thickness)
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw_distractors(rng: np.random.Generator, world: World, count: int) -> None:
    size = world.texture.shape[0]
    keep_clear = 2.5 * world.vehicle.length / world.resolution  # nothing on top of the vehicle
    for _ in range(count):
        center = rng.uniform(0, size, 2)
        if np.linalg.norm(center - size / 2) < keep_clear:
            continue
        color = tuple(float(c) for c in rng.uniform(0, 255, 3))
        radius = int(rng.uniform(0.03, 0.15) / world.resolution)
        if rng.random() < 0.5:
            cv2.circle(world.texture, (int(center[0]), int(center[1])), radius, color, -1, cv2.LINE_AA)
        else:
            box = cv2.boxPoints(((float(center[0]), float(center[1])), (2.0 * radius, float(rng.uniform(0.3, 1.0)) * radius),
                                 float(rng.uniform(0, 180))))
            cv2.fillPoly(world.texture, [np.round(box).astype(np.int32)], color, cv2.LINE_AA)


def _draw_vehicle(rng: np.random.Generator, world: World) -> None:
    spec, heading = world.vehicle, world.vehicle_heading
    body = rng.uniform(40, 230, 3)
    corners = world.vehicle_corners()
    front_half = np.stack([corners[0], corners[1], (corners[1] + corners[2]) / 2, (corners[0] + corners[3]) / 2])
    back_half = np.stack([(corners[0] + corners[3]) / 2, (corners[1] + corners[2]) / 2, corners[2], corners[3]])
    _fill(world, front_half, body, FRONT)
    _fill(world, back_half, body * 0.8, BACK)

    def part(along: tuple[float, float], across: float) -> np.ndarray:
        """A band of the body between fractions `along` of the length (from the back), `across` of the width."""
        forward = np.array([np.cos(heading), np.sin(heading)])
        left = np.array([-np.sin(heading), np.cos(heading)])
        a, b = (np.array(along) - 0.5) * spec.length
        w = across * spec.width / 2
        c = world.vehicle_center
        return np.stack([c + forward * b + left * w, c + forward * b - left * w, c + forward * a - left * w,
                         c + forward * a + left * w])

    _fill(world, part((0.62, 0.75), 0.8), np.array([170, 215, 240]), None)  # windscreen (light)
    _fill(world, part((0.82, 0.98), 0.25), np.array([250, 250, 250]), None)  # bonnet stripe
    _fill(world, part((0.12, 0.25), 0.8), np.array([25, 25, 35]), None)  # rear window (dark)
    for side in (-1, 1):  # tail lights at the back corners
        light = part((0.0, 0.06), 0.3) + np.array([-np.sin(heading), np.cos(heading)]) * side * spec.width * 0.3
        _fill(world, light, np.array([220, 20, 20]), None)


def _fill(world: World, polygon_xy: np.ndarray, color: np.ndarray, label: int | None) -> None:
    pts = np.round(world.to_texture(polygon_xy) * 16).astype(np.int32)  # 4 fractional bits: sub-pixel edges
    cv2.fillPoly(world.texture, [pts], tuple(float(c) for c in np.clip(color, 0, 255)), cv2.LINE_AA, shift=4)
    if label is not None:
        cv2.fillPoly(world.labels, [pts], int(label), cv2.LINE_8, shift=4)
