"""Recipe → simulator objects, start poses and image preprocessing shared by the ibvs stages."""

from __future__ import annotations

import math
import zlib

import cv2
import numpy as np

from edgekd.tasks.ibvs.camera import Camera
from edgekd.tasks.ibvs.law import LawGains
from edgekd.tasks.ibvs.sim import Dynamics
from edgekd.tasks.ibvs.world import VehicleSpec, World, make_world

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def camera(recipe) -> Camera:
    sim = recipe.sim
    return Camera(render_width=sim.render_width, render_height=sim.render_height, altitude=sim.altitude)


def dynamics(recipe) -> Dynamics:
    sim = recipe.sim
    return Dynamics(dt=sim.dt, tau=sim.tau, wind_sigma=sim.wind_sigma)


def gains(recipe) -> LawGains:
    law = recipe.law
    return LawGains(lam=law.lam, near=tuple(law.near_gains), switch_px=law.switch_px,
                    estimated_depth=law.estimated_depth)


def rng_for(recipe, purpose: str, index: int) -> np.random.Generator:
    """An independent, reproducible stream per (recipe seed, purpose, index): episodes never share worlds."""
    return np.random.default_rng([recipe.seed, zlib.crc32(purpose.encode()), index])


def new_world(recipe, rng: np.random.Generator) -> World:
    sim = recipe.sim
    vehicle = VehicleSpec(length=sim.vehicle_length, width=sim.vehicle_width)
    return make_world(rng, extent=sim.world_extent, resolution=camera(recipe).metres_per_render_pixel(),
                      vehicle=vehicle, distractors=sim.distractors)


def paper_starts(recipe) -> list[tuple[np.ndarray, float]]:
    """The 8 start poses: evenly around the target (up/down × left/right, the diagonals, left, right), with
    the yaw offset alternating in sign so half the flights must turn each way."""
    ax, ay = recipe.starts.offset_px
    yaw = math.radians(recipe.starts.yaw_deg)
    starts = []
    for k in range(8):
        angle = math.pi / 8 + k * math.pi / 4
        starts.append((np.array([ax * math.cos(angle), ay * math.sin(angle)]), yaw * (1 if k % 2 else -1)))
    return starts


def random_start(recipe, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A start inside the same ellipse (at 40–100% of its radius) with a yaw offset up to the configured one."""
    ax, ay = recipe.starts.offset_px
    angle = rng.uniform(0, 2 * math.pi)
    radius = rng.uniform(0.4, 1.0)
    yaw = math.radians(recipe.starts.yaw_deg) * rng.uniform(-1, 1)
    return np.array([ax * radius * math.cos(angle), ay * radius * math.sin(angle)]), yaw


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 3) RGB → float32 (..., 3, H, W), ImageNet mean/std."""
    x = (images.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.moveaxis(x, -1, -3).copy()


def student_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """The student's view: the whole camera image squeezed to size × size (as the paper resizes to 224²)."""
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
