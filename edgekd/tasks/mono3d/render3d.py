"""Ray casting of cuboid cars on a flat ground, shared by the camera renderer and the LiDAR.

Everything is in KITTI's rectified camera frame: x right, y down, z forward, origin at the camera, ground plane at
y = CAMERA_HEIGHT. A car is a box with bottom centre (x, CAMERA_HEIGHT, z), size (h, w, l) and yaw ry about y; its
local frame has x along the length (the heading, the "front" face), y down, z across the width.

Camera intrinsics are KITTI's P2 (fx = fy = 721.5377, cx = 609.5593, cy = 172.854 at 1242×375) scaled by
s = width / 1242 in both axes; the image keeps the scaled road below the horizon and gains or loses rows at the top
(sky): cy = 172.854·s + (height − 375·s). At the default 320×96, s = 0.25765, fx = fy = 185.91, cx = 157.05,
cy = 43.92 (0.62 sky rows cropped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KITTI_SIZE = (1242, 375)
KITTI_FOCAL, KITTI_CX, KITTI_CY = 721.5377, 609.5593, 172.854
CAMERA_HEIGHT = 1.65
FOG_DISTANCE_M = 250.0
_FACE_NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], np.float64)


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics of the synthetic camera (no distortion, rectified)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    height_scale: float  # image rows per KITTI row: scales KITTI's 2D-height difficulty limits

    def P2(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx, 0], [0, self.fy, self.cy, 0], [0, 0, 1, 0]], np.float64)

    def pixel_rays(self) -> np.ndarray:
        """Unit ray directions (H·W, 3) through pixel centres, row-major."""
        v, u = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64) + 0.5
        rays = np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u)], -1).reshape(-1, 3)
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def kitti_camera(width: int = 320, height: int = 96) -> Camera:
    """KITTI's P2 scaled to `width`, with sky rows cropped or added so `height` rows keep the road."""
    scale = width / KITTI_SIZE[0]
    cy = KITTI_CY * scale + (height - KITTI_SIZE[1] * scale)
    return Camera(width, height, KITTI_FOCAL * scale, KITTI_FOCAL * scale, KITTI_CX * scale, cy, scale)


@dataclass
class Boxes:
    """K cuboids: size (K, 3) as (h, w, l), bottom centre (K, 3) in the camera frame, yaw (K,)."""

    size: np.ndarray
    bottom: np.ndarray
    yaw: np.ndarray

    def __len__(self) -> int:
        return len(self.yaw)

    def rotations(self) -> np.ndarray:
        """(K, 3, 3) local → camera rotations R_y(ry)."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        zero, one = np.zeros_like(c), np.ones_like(c)
        return np.stack([np.stack([c, zero, s], -1), np.stack([zero, one, zero], -1),
                         np.stack([-s, zero, c], -1)], -2)

    def half_extent(self) -> np.ndarray:
        """(K, 3) half sizes along local x (length), y (height), z (width)."""
        return np.stack([self.size[:, 2], self.size[:, 0], self.size[:, 1]], -1) / 2

    def centres(self) -> np.ndarray:
        return self.bottom - np.stack([np.zeros(len(self)), self.size[:, 0] / 2, np.zeros(len(self))], -1)

    def subset(self, keep: np.ndarray) -> Boxes:
        return Boxes(self.size[keep], self.bottom[keep], self.yaw[keep])

    def extended(self, other: Boxes) -> Boxes:
        return Boxes(np.concatenate([self.size, other.size]), np.concatenate([self.bottom, other.bottom]),
                     np.concatenate([self.yaw, other.yaw]))


def intersect_boxes(origin: np.ndarray, directions: np.ndarray, boxes: Boxes) -> tuple[np.ndarray, np.ndarray]:
    """Slab test of R rays against K oriented boxes.

    Returns the entry distance (R, K) along each ray (inf on a miss, rays starting inside a box miss it) and the
    entry face (R, K) as an index into local normals −x, +x, −y, +y, −z, +z.
    """
    t_hit = np.full((len(directions), len(boxes)), np.inf)
    face = np.zeros((len(directions), len(boxes)), np.int64)
    rays, which = np.nonzero(_may_hit(origin, directions, boxes))
    if len(rays) == 0:
        return t_hit, face
    rot_t = boxes.rotations().transpose(0, 2, 1)[which]  # camera → local, per (ray, box) pair
    o_local = np.einsum("pij,pj->pi", rot_t, origin[None, :] - boxes.centres()[which])
    d_local = np.einsum("pij,pj->pi", rot_t, directions[rays])
    d_local = np.where(np.abs(d_local) < 1e-12, 1e-12, d_local)
    half = boxes.half_extent()[which]
    t1 = (-half - o_local) / d_local
    t2 = (half - o_local) / d_local
    t_entry_axis = np.minimum(t1, t2)
    t_exit_axis = np.maximum(t1, t2)
    t_near = np.maximum(np.maximum(t_entry_axis[:, 0], t_entry_axis[:, 1]), t_entry_axis[:, 2])
    t_far = np.minimum(np.minimum(t_exit_axis[:, 0], t_exit_axis[:, 1]), t_exit_axis[:, 2])
    hit = (t_near <= t_far) & (t_near > 1e-6)
    axis = t_entry_axis.argmax(-1)
    entering_positive = d_local[np.arange(len(axis)), axis] < 0  # moving towards −: enters through the + face
    t_hit[rays[hit], which[hit]] = t_near[hit]
    face[rays, which] = axis * 2 + entering_positive
    return t_hit, face


def _may_hit(origin: np.ndarray, directions: np.ndarray, boxes: Boxes) -> np.ndarray:
    """(R, K) cheap cull: the ray's slope (dx/dz, dy/dz) lies within the box corners' slope range seen from origin.

    Exact for boxes wholly in front of the origin (a ray hits a convex box only inside its projection); boxes
    reaching behind the origin are tested against every ray.
    """
    forward = directions[:, 2] > 1e-9
    slope = directions[:, :2] / np.where(forward, directions[:, 2], 1.0)[:, None]
    corners = _corners(boxes) - origin  # (K, 8, 3)
    in_front = (corners[..., 2] > 1e-3).all(axis=1)
    corner_slope = corners[..., :2] / np.where(in_front[:, None], corners[..., 2], 1.0)[..., None]
    low = np.where(in_front[:, None], corner_slope.min(axis=1), -np.inf) - 1e-9
    high = np.where(in_front[:, None], corner_slope.max(axis=1), np.inf) + 1e-9
    inside = ((slope[:, None, 0] >= low[None, :, 0]) & (slope[:, None, 0] <= high[None, :, 0])
              & (slope[:, None, 1] >= low[None, :, 1]) & (slope[:, None, 1] <= high[None, :, 1]))
    return np.where(in_front[None, :], inside & forward[:, None], True)


def _corners(boxes: Boxes) -> np.ndarray:
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float64)
    local = signs[None] * boxes.half_extent()[:, None, :]
    return np.einsum("kij,knj->kni", boxes.rotations(), local) + boxes.centres()[:, None, :]


def intersect_ground(origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Distance (R,) along each ray to the ground plane y = CAMERA_HEIGHT; inf for rays at or above the horizon."""
    down = directions[:, 1]
    with np.errstate(divide="ignore"):
        t = (CAMERA_HEIGHT - origin[1]) / down
    return np.where(down > 1e-9, t, np.inf)


def face_normals(boxes: Boxes) -> np.ndarray:
    """(K, 6, 3) camera-frame outward normals of each box's faces, in `intersect_boxes` face order."""
    return np.einsum("kij,fj->kfi", boxes.rotations(), _FACE_NORMALS)


@dataclass
class Hits:
    """Nearest surface along each ray: distance, which box (−1 for ground, −2 for nothing) and face."""

    distance: np.ndarray
    box: np.ndarray
    face: np.ndarray
    box_distance: np.ndarray  # (R, K) per-box entry distances, for silhouettes regardless of occlusion


def cast(origin: np.ndarray, directions: np.ndarray, boxes: Boxes, max_distance: float = np.inf) -> Hits:
    """Cast rays into the scene and keep the nearest hit of each."""
    box_t, box_face = intersect_boxes(origin, directions, boxes)
    ground_t = intersect_ground(origin, directions)
    all_t = np.concatenate([box_t, ground_t[:, None]], axis=1)
    nearest = all_t.argmin(axis=1)
    distance = all_t[np.arange(len(all_t)), nearest]
    box = np.where(nearest == len(boxes), -1, nearest)
    box = np.where(np.isfinite(distance) & (distance <= max_distance), box, -2)
    face = np.zeros(len(directions), np.int64)
    on_box = box >= 0
    face[on_box] = box_face[np.flatnonzero(on_box), box[on_box]]
    return Hits(distance, box, face, box_t)


# ---- appearance and shading ----------------------------------------------------------------------------------------

LANE_WIDTH_M = 3.5
ROAD_HALF_WIDTH_M = 16.0
_FRONT_TINT, _REAR_TINT = np.array([0.95, 0.93, 0.8]), np.array([0.55, 0.05, 0.04])


@dataclass
class Appearance:
    """Colours and light of one scene (all RGB in [0, 1])."""

    car_colours: np.ndarray  # (K, 3)
    light: np.ndarray  # (3,) unit vector towards the sun, camera frame (−y is up)
    ambient: float
    asphalt: np.ndarray
    verge: np.ndarray
    sky_horizon: np.ndarray
    sky_zenith: np.ndarray
    road_offset_m: float  # lateral position of the lane grid
    dash_phase_m: float
    texture_seed: float
    noise_sigma: float


def _hash2(ix: np.ndarray, iz: np.ndarray, seed: float) -> np.ndarray:
    """A cheap deterministic per-cell value in [0, 1) (the classic sine hash)."""
    value = np.sin(ix * 127.1 + iz * 311.7 + seed) * 43758.5453
    return value - np.floor(value)


def ground_albedo(x: np.ndarray, z: np.ndarray, look: Appearance) -> np.ndarray:
    """(N, 3) ground colour at ground points (x, z): grainy asphalt, dashed lane lines, a verge beyond the road."""
    fine = _hash2(np.floor(x / 0.3), np.floor(z / 0.3), look.texture_seed)
    coarse = _hash2(np.floor(x / 2.5), np.floor(z / 2.5), look.texture_seed + 7.0)
    lateral = x - look.road_offset_m
    colour = look.asphalt[None] * (0.85 + 0.2 * fine[:, None]) * (0.92 + 0.16 * coarse[:, None])
    line_offset = np.abs(lateral - LANE_WIDTH_M * np.round(lateral / LANE_WIDTH_M))
    dashed = np.mod(z + look.dash_phase_m, 9.0) < 3.0
    marking = (line_offset < 0.075) & dashed & (np.abs(lateral) < ROAD_HALF_WIDTH_M - 1.0)
    colour[marking] = 0.85
    verge = np.abs(lateral) > ROAD_HALF_WIDTH_M
    colour[verge] = look.verge * (0.8 + 0.4 * fine[verge, None])
    return colour


def car_albedo(look: Appearance) -> np.ndarray:
    """(K, 6, 3) face colours: body colour, the front (+x) lightened like headlights, the rear (−x) reddened."""
    table = np.repeat(look.car_colours[:, None, :], 6, axis=1).copy()
    table[:, 1] = 0.6 * table[:, 1] + 0.4 * _FRONT_TINT
    table[:, 0] = 0.6 * table[:, 0] + 0.4 * _REAR_TINT
    return table


def _lambert(normals: np.ndarray, look: Appearance) -> np.ndarray:
    return look.ambient + (1.0 - look.ambient) * np.clip(normals @ look.light, 0.0, None)


def shade_hits(hits: Hits, origin: np.ndarray, directions: np.ndarray, boxes: Boxes, look: Appearance) -> np.ndarray:
    """(R, 3) linear colour of each ray: shaded car faces, textured ground with contact shadows, sky, haze."""
    colour = np.empty((len(directions), 3))
    sky = hits.box == -2
    elevation = np.clip(-directions[sky, 1], 0.0, 1.0)[:, None]
    colour[sky] = look.sky_horizon + (look.sky_zenith - look.sky_horizon) * np.sqrt(elevation)
    on_box = hits.box >= 0
    if on_box.any():
        face_colour = car_albedo(look) * _lambert(face_normals(boxes), look)[..., None]
        colour[on_box] = face_colour[hits.box[on_box], hits.face[on_box]]
    ground = hits.box == -1
    points = origin + directions[ground] * hits.distance[ground, None]
    ground_colour = ground_albedo(points[:, 0], points[:, 2], look) * _lambert(np.array([0.0, -1.0, 0.0]), look)
    colour[ground] = ground_colour * _contact_shadow(points, boxes)[:, None]
    haze = 1.0 - np.exp(-np.where(sky, 0.0, hits.distance) / FOG_DISTANCE_M)
    return colour * (1.0 - haze[:, None]) + look.sky_horizon * haze[:, None]


def _contact_shadow(points: np.ndarray, boxes: Boxes) -> np.ndarray:
    """Darkening (N,) of ground points under or right beside a car: its ambient-occlusion footprint."""
    if len(boxes) == 0 or len(points) == 0:
        return np.ones(len(points))
    offset = points[:, None, [0, 2]] - boxes.bottom[None, :, [0, 2]]  # (N, K, 2)
    c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
    along = offset[..., 0] * c - offset[..., 1] * s  # inverse of x = c·lx + s·lz, z = −s·lx + c·lz
    across = offset[..., 0] * s + offset[..., 1] * c
    margin = 0.25
    dx = np.clip(np.abs(along) - boxes.size[None, :, 2] / 2, 0, None)
    dz = np.clip(np.abs(across) - boxes.size[None, :, 1] / 2, 0, None)
    gap = np.sqrt(dx**2 + dz**2).min(axis=1)
    return 0.35 + 0.65 * np.clip(gap / margin, 0.0, 1.0)


def render_image(camera: Camera, boxes: Boxes, look: Appearance,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the camera view.

    Returns the image (H, W, 3) uint8, the id of the car seen at each pixel (H, W) (−1 none) and each car's own
    silhouette in pixels (K,) as if no other car were there (for occlusion).
    """
    origin = np.zeros(3)
    directions = camera.pixel_rays()
    hits = cast(origin, directions, boxes)
    linear = shade_hits(hits, origin, directions, boxes, look)
    linear = linear * rng.uniform(0.9, 1.1) + rng.normal(0.0, look.noise_sigma, linear.shape)
    image = (np.clip(linear, 0.0, 1.0) ** (1 / 2.2) * 255.0 + 0.5).astype(np.uint8)
    shape = (camera.height, camera.width)
    own = np.isfinite(hits.box_distance).sum(axis=0)
    return image.reshape(*shape, 3), np.where(hits.box >= 0, hits.box, -1).reshape(shape), own
