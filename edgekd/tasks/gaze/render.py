"""Synthetic near-eye IR images: a 3-D eyeball seen by a pinhole camera below the eye (papers.md §6.1).

Each pixel casts a ray: the eyeball sphere gives the shaded sclera, the iris plane (normal = optical axis) exact
iris/pupil ellipses and polar texture coordinates; glints mirror IR LEDs in the cornea sphere; parabola-like lids
follow the eye's vertical rotation. Head frame: x image-right, y down, z away from a camera facing the eye, gaze as
in `metrics.gaze_vector`: positive yaw moves the pupil to the image's left, positive pitch (up) moves it up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from edgekd.tasks.gaze.metrics import gaze_vector

YAW_RANGE_DEG = (-30.0, 30.0)
PITCH_RANGE_DEG = (-25.0, 20.0)
CORNEA_RADIUS_MM = 7.8


@dataclass(frozen=True)
class SubjectParams:
    """One person wearing one headset: everything that stays fixed across that subject's images."""

    eye_radius_mm: float
    iris_radius_mm: float
    iris_brightness: float
    iris_contrast: float
    iris_streaks: tuple[tuple[float, float, float], ...]  # (angular frequency, phase, amplitude) per component
    sclera_brightness: float
    skin_tone: float
    skin_seed: int
    lid_half_width: float  # eyelid corners, in projected eyeball radii
    lid_upper: float  # lid apex heights above/below the rest pupil, in projected eyeball radii
    lid_lower: float
    lid_skew: float
    lid_tilt_deg: float
    lid_follow: float  # how far the upper lid follows the iris vertically (the lower lid follows half of it)
    lash_density: float
    pupil_mean_mm: float
    cam_distance_mm: float
    cam_tilt_deg: float  # camera below the eye, looking up
    cam_pan_deg: float
    cam_roll_deg: float
    focal_scale: float  # focal length in image widths
    principal_offset: tuple[float, float]  # in image widths
    glint_angles_deg: tuple[float, ...]  # IR LEDs on a ring in front of the eye
    glint_ring_mm: float
    kappa_yaw_deg: float  # visual axis = optical axis + kappa
    kappa_pitch_deg: float


def sample_subject(rng: np.random.Generator) -> SubjectParams:
    """Draw one subject (eye, face, headset fit and kappa)."""
    u = rng.uniform
    n_glints = int(rng.integers(2, 9))
    angles = np.sort(np.linspace(0, 360, n_glints, endpoint=False) + u(0, 360) + rng.normal(0, 8, n_glints)) % 360
    streaks = tuple((float(rng.integers(6, 40)), u(0, 2 * np.pi), u(0.2, 1.0)) for _ in range(4))
    return SubjectParams(
        eye_radius_mm=u(11.0, 13.0), iris_radius_mm=u(5.6, 6.4), iris_brightness=u(0.22, 0.55),
        iris_contrast=u(0.08, 0.3), iris_streaks=streaks, sclera_brightness=u(0.68, 0.92),
        skin_tone=u(0.5, 0.85), skin_seed=int(rng.integers(2**31)), lid_half_width=u(1.0, 1.25),
        lid_upper=u(0.32, 0.5), lid_lower=u(0.4, 0.55), lid_skew=u(-0.25, 0.25), lid_tilt_deg=rng.normal(0, 4),
        lid_follow=u(0.5, 0.9), lash_density=u(0.15, 0.6), pupil_mean_mm=u(2.0, 3.0),
        cam_distance_mm=u(25.0, 35.0), cam_tilt_deg=u(20.0, 40.0), cam_pan_deg=rng.normal(0, 4),
        cam_roll_deg=rng.normal(0, 4), focal_scale=1.2 * u(0.92, 1.08),
        principal_offset=(rng.normal(0, 0.04), rng.normal(0, 0.04)), glint_angles_deg=tuple(angles.tolist()),
        glint_ring_mm=u(12.0, 20.0), kappa_yaw_deg=rng.normal(5.0, 2.0), kappa_pitch_deg=rng.normal(1.5, 1.0),
    )


def sample_gaze(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 2) visual-axis (yaw, pitch) in degrees: 70% centre-heavy (people mostly look ahead), 30% uniform."""
    low, high = np.array([YAW_RANGE_DEG[0], PITCH_RANGE_DEG[0]]), np.array([YAW_RANGE_DEG[1], PITCH_RANGE_DEG[1]])
    gaze = rng.normal(0.0, [12.0, 9.0], size=(n, 2))
    uniform = rng.uniform(low, high, size=(n, 2))
    # Out-of-range or 'uniform' draws take the uniform sample, so nothing piles up on the border.
    use_uniform = (rng.random(n) < 0.3) | np.any((gaze < low) | (gaze > high), axis=1)
    return np.where(use_uniform[:, None], uniform, gaze)


def optical_angles(subject: SubjectParams, yaw_deg: float, pitch_deg: float) -> tuple[float, float]:
    """The optical axis the renderer rotates the eyeball to, for a visual-axis (label) gaze."""
    return yaw_deg - subject.kappa_yaw_deg, pitch_deg - subject.kappa_pitch_deg


def _rotation(axis: int, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    i, j = [a for a in range(3) if a != axis]
    rot = np.eye(3)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    return rot


@dataclass
class _Camera:
    rot: np.ndarray  # head frame → camera frame
    pos: np.ndarray  # camera centre in the head frame
    f: float
    cx: float
    cy: float

    def to_cam(self, point: np.ndarray) -> np.ndarray:
        return self.rot @ (point - self.pos)

    def project(self, point_head: np.ndarray) -> np.ndarray:
        p = self.to_cam(point_head)
        return np.array([self.f * p[0] / p[2] + self.cx, self.f * p[1] / p[2] + self.cy])


def _camera(subject: SubjectParams, size: int) -> _Camera:
    # Orbit a head-on camera down by the tilt (y is down) and sideways by the pan around the resting iris centre
    # (near-eye cameras are aimed at the visible eye, not the eyeball's centre), then roll it about its axis.
    orbit = _rotation(1, subject.cam_pan_deg) @ _rotation(0, subject.cam_tilt_deg)
    aim = np.array([0.0, 0.0, -_iris_depth(subject)])
    pos = aim + orbit @ np.array([0.0, 0.0, -subject.cam_distance_mm])
    rot = _rotation(2, subject.cam_roll_deg) @ orbit.T
    f = subject.focal_scale * size
    ox, oy = subject.principal_offset
    return _Camera(rot, pos, f, size * (0.5 + ox), size * (0.5 + oy))


def _iris_depth(subject: SubjectParams) -> float:
    """Eyeball centre to iris plane, so that the limbus lies on the eyeball sphere (≈10.4 mm)."""
    return float(np.sqrt(subject.eye_radius_mm**2 - subject.iris_radius_mm**2))


@functools.lru_cache(maxsize=64)
def _skin_texture(seed: int, size: int) -> np.ndarray:
    """Smooth multi-octave value noise around 1.0, fixed per subject (the headset does not move on the face)."""
    rng = np.random.default_rng(seed)
    texture = np.zeros((size, size), np.float32)
    for cells, amp in ((4, 0.05), (9, 0.04), (24, 0.03), (size, 0.02)):
        grid = Image.fromarray(rng.normal(0, amp, (cells, cells)).astype(np.float32))
        texture += np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC))
    return 1.0 + texture


@functools.lru_cache(maxsize=8)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    centres = np.arange(size, dtype=np.float32) + 0.5
    return np.meshgrid(centres, centres)


def _edge(distance: np.ndarray, width: float) -> np.ndarray:
    # Anti-aliased coverage of the side where `distance` > 0 (distance and width in the same units).
    return np.clip(distance / width + 0.5, 0.0, 1.0)


def render_eye(subject: SubjectParams, yaw_deg: float, pitch_deg: float, rng: np.random.Generator,
               size: int = 64) -> np.ndarray:
    """A (size, size) uint8 near-eye IR image of `subject` looking at visual-axis (yaw, pitch) degrees.

    >>> rng = np.random.default_rng(0)
    >>> render_eye(sample_subject(rng), 10.0, -5.0, rng).shape
    (64, 64)
    """
    cam, (x, y) = _camera(subject, size), _pixel_grid(size)
    eye_centre = rng.normal(0.0, 0.15, 3)  # headset slip between frames, mm (0.15 mm ≈ 0.8° of gaze)
    gaze = gaze_vector(np.radians([optical_angles(subject, yaw_deg, pitch_deg)]))[0]
    pupil_mm = float(np.clip(subject.pupil_mean_mm + rng.normal(0, 0.4), 1.5, 3.5))
    eye = _eyeball(subject, cam, _rays(cam, x, y), eye_centre, gaze, pupil_mm)
    eye = np.minimum(eye + _glints(subject, cam, eye_centre, gaze, x, y, size), 1.0)
    image = _eyelids(subject, cam, eye_centre, gaze, eye, x, y, size, rng)
    return _camera_response(image, x, y, size, rng)


def _rays(cam: _Camera, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dx, dy = (x - cam.cx) / cam.f, (y - cam.cy) / cam.f
    norm = 1.0 / np.sqrt(dx * dx + dy * dy + 1.0)
    return dx * norm, dy * norm, norm


def _dot(rays: tuple, vec: np.ndarray) -> np.ndarray:
    # Python-float coefficients keep the float32 pixel arrays in float32 (NumPy 2 would promote on float64 scalars).
    return rays[0] * float(vec[0]) + rays[1] * float(vec[1]) + rays[2] * float(vec[2])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # np.cross costs ~30 µs of axis bookkeeping; this is called twice per image.
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _eyeball(subject: SubjectParams, cam: _Camera, rays: tuple, centre: np.ndarray, gaze: np.ndarray,
             pupil_mm: float) -> np.ndarray:
    """Sclera, textured iris and pupil: what the camera sees of the eyeball before the lids."""
    radius, iris_r = subject.eye_radius_mm, subject.iris_radius_mm
    e = cam.to_cam(centre)
    b = _dot(rays, e)
    disc = b * b - float(e @ e - radius * radius)
    # sqrt(disc)/R is the cosine between the surface normal and the ray: a Lambert-like falloff to the silhouette.
    facing = np.sqrt(np.sqrt(np.maximum(disc, 0.0)) / radius)
    # Rays that miss the eyeball end in the shadowed eye corner (caruncle), a little darker than the sclera rim.
    sclera = subject.sclera_brightness * np.where(disc > 0, 0.35 + 0.65 * facing, 0.3)
    g = cam.rot @ gaze
    iris_c = e + _iris_depth(subject) * g
    e1 = _cross(g, cam.rot[:, 1])
    e1 /= np.linalg.norm(e1)
    e2 = _cross(g, e1)
    t = float(iris_c @ g) / np.minimum(_dot(rays, g), -1e-6)
    u = t * _dot(rays, e1) - float(iris_c @ e1)
    v = t * _dot(rays, e2) - float(iris_c @ e2)
    rho = np.sqrt(u * u + v * v)
    # One pixel's footprint on the iris plane, widened by how obliquely the camera sees the disk.
    distance = float(np.linalg.norm(iris_c))
    width = distance / cam.f / max(abs(float(g @ iris_c)) / distance, 0.3)
    table = _iris_table(subject)  # polar lookup: 360 angles x 48 radii
    angle_bin = ((np.arctan2(v, u) + np.pi) * (360 / (2 * np.pi))).astype(np.intp) % 360
    iris = table[angle_bin, np.minimum(rho * (48 / iris_r), 47).astype(np.intp)]
    eye = sclera + (iris - sclera) * _edge(iris_r - rho, width)
    return eye + (0.04 - eye) * _edge(pupil_mm - rho, width)


@functools.lru_cache(maxsize=64)
def _iris_table(subject: SubjectParams) -> np.ndarray:
    """The subject's iris brightness on a polar grid: radial streaks, collarette ring, dark limbus."""
    theta = np.linspace(-np.pi, np.pi, 360, endpoint=False)[:, None]
    rho = (np.arange(48)[None] + 0.5) / 48
    streaks = sum(amp * np.sin(freq * theta + phase + 3.0 * rho) for freq, phase, amp in subject.iris_streaks)
    limbus = np.clip((rho - 0.78) / 0.22, 0.0, 1.0) ** 2
    collarette = np.exp(-(((rho - 0.55) / 0.08) ** 2))
    shade = 1.0 + subject.iris_contrast * (streaks / 2.0 + collarette) - 0.45 * limbus
    return (subject.iris_brightness * shade).astype(np.float32)


def _glints(subject: SubjectParams, cam: _Camera, centre: np.ndarray, gaze: np.ndarray, x: np.ndarray,
            y: np.ndarray, size: int) -> np.ndarray:
    """Corneal reflections of the IR LEDs: the cornea point whose normal bisects the LED and camera directions."""
    cornea = centre + (_iris_depth(subject) - np.sqrt(CORNEA_RADIUS_MM**2 - subject.iris_radius_mm**2)) * gaze
    angles = np.radians(subject.glint_angles_deg)
    to_led = np.stack([np.cos(angles) * subject.glint_ring_mm, np.sin(angles) * subject.glint_ring_mm,
                       np.full(len(angles), -18.0)], axis=1) - cornea  # LEDs on the frame, 18 mm before the eye
    to_led /= np.linalg.norm(to_led, axis=1, keepdims=True)
    to_cam = (cam.pos - cornea) / np.linalg.norm(cam.pos - cornea)
    normals = to_led + to_cam
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    # Only the corneal cap (inside the limbus) reflects a sharp glint.
    on_cap = normals @ gaze > np.sqrt(1.0 - (subject.iris_radius_mm / CORNEA_RADIUS_MM) ** 2)
    points = np.array([cam.project(cornea + CORNEA_RADIUS_MM * n) for n in normals[on_cap]]).reshape(-1, 2)
    sigma = 0.55 * size / 64
    gx = np.exp(-(((x[0][None] - points[:, :1]) / sigma) ** 2) / 2)  # (n, W)
    gy = np.exp(-(((y[:, 0][None] - points[:, 1:]) / sigma) ** 2) / 2)  # (n, H)
    return 1.2 * (gy.T @ gx).astype(np.float32)


def _eyelids(subject: SubjectParams, cam: _Camera, centre: np.ndarray, gaze: np.ndarray, eye: np.ndarray,
             x: np.ndarray, y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Skin, lid fold and lashes around a lid opening; the upper lid tracks the iris up and down."""
    s, t, radius_px, drop = _lid_frame(subject, cam, centre, gaze, x, y)
    a = s / (subject.lid_half_width * radius_px)  # -1 and 1 at the eye corners
    inside = np.clip(1.0 - a * a, 0.0, None)
    shape = inside * (1.0 + subject.lid_skew * a)
    openness = rng.uniform(0.05, 0.3) if rng.random() < 0.03 else rng.uniform(0.8, 1.1)
    lower = (subject.lid_lower * radius_px + drop * subject.lid_follow / 2) * shape
    upper_open = -max(subject.lid_upper * radius_px - drop * subject.lid_follow, 0.05 * radius_px) * shape
    upper = lower + (upper_open - lower) * openness
    fold_window = np.clip(1.0 - 0.6 * a * a, 0.0, None)  # the fold fades out past the eye corners
    fold = (t + (subject.lid_upper + 0.25) * radius_px * fold_window) / (0.07 * radius_px)
    skin = subject.skin_tone * _skin_texture(subject.skin_seed, size) * (1 - 0.2 * fold_window * np.exp(-fold**2))
    skin = skin * (1 - _lashes(subject, s, upper - t, radius_px) * np.sqrt(inside))
    eye = eye * (1 - 0.4 * np.exp(-np.maximum(t - upper, 0.0) / (0.08 * radius_px)))  # the lid's shadow
    return skin + (eye - skin) * _edge(t - upper, 1.0) * _edge(lower - t, 1.0)


def _lid_frame(subject: SubjectParams, cam: _Camera, centre: np.ndarray, gaze: np.ndarray, x: np.ndarray,
               y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Pixel coordinates along (s) and across (t, down) the eye's corner line, centred on the resting pupil; the
    projected eyeball radius; and how many px the pupil has moved down from rest."""
    depth = _iris_depth(subject)
    rest_x, rest_y = cam.project(centre + depth * np.array([0.0, 0.0, -1.0])).tolist()
    drop = float(cam.project(centre + depth * gaze)[1]) - rest_y
    radius_px = cam.f * subject.eye_radius_mm / float(cam.to_cam(centre)[2])
    tilt = np.radians(subject.lid_tilt_deg + subject.cam_roll_deg)
    cos, sin = float(np.cos(tilt)), float(np.sin(tilt))
    s = (x - rest_x) * cos + (y - rest_y) * sin
    t = (y - rest_y) * cos - (x - rest_x) * sin
    return s, t, radius_px, drop


def _lashes(subject: SubjectParams, s: np.ndarray, above: np.ndarray, radius_px: float) -> np.ndarray:
    """Darkening by thin, slanted lash strokes rising from the upper lid margin (`above` = px above it)."""
    pitch = 0.09 * radius_px  # px between lashes
    phase = (s + 0.6 * above) / pitch + 1.3 * np.sin(s / (0.7 * pitch))
    strokes = (0.5 + 0.5 * np.cos(2 * np.pi * phase)) ** 6
    reach = np.exp(-np.maximum(above, 0.0) / (0.1 * radius_px)) * (above > -0.5)
    return subject.lash_density * reach * (0.35 + 0.65 * strokes)


def _camera_response(image: np.ndarray, x: np.ndarray, y: np.ndarray, size: int,
                     rng: np.random.Generator) -> np.ndarray:
    """IR illumination falloff, gain/gamma, optical blur and sensor noise, then 8-bit quantisation."""
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((x - size / 2) * np.cos(angle) + (y - size / 2) * np.sin(angle)) / size
    r2 = ((x - size / 2) ** 2 + (y - size / 2) ** 2) / size**2
    image = image * (1 + rng.uniform(0, 0.5) * ramp) * (1 - rng.uniform(0, 0.6) * r2)
    image = rng.uniform(0.75, 1.2) * np.clip(image, 0.0, 1.0) ** rng.uniform(0.75, 1.3)
    image = _blur(image, rng.uniform(0.3, 1.0) * size / 64)
    image = image + rng.uniform(0.004, 0.025) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with edge padding, as shifted weighted sums (cheap for small kernels)."""
    radius = max(1, int(np.ceil(2.5 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).tolist()
    h, w = image.shape
    padded = np.pad(image, radius, mode="edge")
    rows = sum(k * padded[:, i : i + w] for i, k in enumerate(taps))
    return sum(k * rows[i : i + h] for i, k in enumerate(taps))
