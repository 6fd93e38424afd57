"""Read and write the KITTI object layout (real KITTI or the synthetic scenes), and the frame geometry.

    <split>/image_2/NNNNNN.png   camera image
    <split>/label_2/NNNNNN.txt   one object per line, 15 fields (16 with a score in result files)
    <split>/calib/NNNNNN.txt     P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo
    <split>/velodyne/NNNNNN.bin  float32 (x, y, z, intensity) in the LiDAR frame (x forward, y left, z up)

Objects of a frame are a dict of arrays (`OBJECT_KEYS`); `dimensions` keeps the file's (h, w, l) order and
`location` is the bottom centre in the rectified camera frame (x right, y down, z forward).
Every problem with the input raises EdgekdError naming the file (and line).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.artifacts import atomic_write_text
from edgekd.errors import EdgekdError

OBJECT_KEYS = ("name", "truncated", "occluded", "alpha", "bbox", "dimensions", "location", "rotation_y", "score")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_NAMING_ORDER = ("image_2", "label_2", "calib", "velodyne")  # which file an error about a frame names first
_CALIB_ALIASES = {"R_rect": "R0_rect", "Tr_velo_cam": "Tr_velo_to_cam", "Tr_imu_velo": "Tr_imu_to_velo"}


def empty_objects() -> dict[str, np.ndarray]:
    """A frame with no objects."""
    return {"name": np.zeros(0, dtype="<U16"), "truncated": np.zeros(0), "occluded": np.zeros(0, np.int64),
            "alpha": np.zeros(0), "bbox": np.zeros((0, 4)), "dimensions": np.zeros((0, 3)),
            "location": np.zeros((0, 3)), "rotation_y": np.zeros(0), "score": np.zeros(0)}


def parse_label_lines(lines: list[str], source: str | Path) -> dict[str, np.ndarray]:
    """Objects from label lines (15 fields, or 16 with a detection score; a missing score reads as 1.0)."""
    rows = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (15, 16):
            raise EdgekdError(f"{source}:{number}: a KITTI label line has 15 fields (16 with a score), "
                              f"got {len(fields)}")
        try:
            rows.append((fields[0], [float(value) for value in fields[1:]]))
        except ValueError:
            raise EdgekdError(f"{source}:{number}: fields 2-{len(fields)} must be numbers, "
                              f"got {line.strip()!r}") from None
    if not rows:
        return empty_objects()
    values = np.array([row[1] + [1.0] * (15 - len(row[1])) for row in rows], dtype=np.float64)
    return {"name": np.array([row[0] for row in rows], dtype="<U16"), "truncated": values[:, 0],
            "occluded": values[:, 1].astype(np.int64), "alpha": values[:, 2], "bbox": values[:, 3:7],
            "dimensions": values[:, 7:10], "location": values[:, 10:13], "rotation_y": values[:, 13],
            "score": values[:, 14]}


def read_label_file(path: str | Path) -> dict[str, np.ndarray]:
    """Objects of one label or result file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EdgekdError(f"{path}: label file is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise EdgekdError(f"{path}: not a readable label file ({error})") from None
    return parse_label_lines(text.splitlines(), path)


def format_label_lines(objects: dict[str, np.ndarray], *, with_score: bool = False) -> str:
    """KITTI label text (one line per object, 2 decimals like the devkit; the score with 4)."""
    lines = []
    for i in range(len(objects["name"])):
        h, w, l = objects["dimensions"][i]
        x, y, z = objects["location"][i]
        line = (f"{objects['name'][i]} {objects['truncated'][i]:.2f} {int(objects['occluded'][i])} "
                f"{objects['alpha'][i]:.2f} " + " ".join(f"{v:.2f}" for v in objects["bbox"][i]) +
                f" {h:.2f} {w:.2f} {l:.2f} {x:.2f} {y:.2f} {z:.2f} {objects['rotation_y'][i]:.2f}")
        if with_score:
            line += f" {objects['score'][i]:.4f}"
        lines.append(line)
    return "".join(line + "\n" for line in lines)


def write_label_file(path: str | Path, objects: dict[str, np.ndarray]) -> Path:
    """Write a ground-truth label file (15 fields), atomically."""
    return atomic_write_text(path, format_label_lines(objects))


def write_result_file(path: str | Path, objects: dict[str, np.ndarray]) -> Path:
    """Write a KITTI result file (the 15 label fields + score) that the devkit and `evaluate_kitti` read."""
    return atomic_write_text(path, format_label_lines(objects, with_score=True))


@dataclass
class Calib:
    """Calibration of one frame: P2 (3, 4), R0_rect (3, 3), Tr_velo_to_cam (3, 4) or None when absent."""

    P2: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray | None = None

    def velo_to_rect(self) -> np.ndarray:
        """4×4 LiDAR → rectified camera: R0_rect · Tr_velo_to_cam."""
        if self.Tr_velo_to_cam is None:
            raise EdgekdError("calibration has no Tr_velo_to_cam: LiDAR points cannot be used with it")
        return _homogeneous(self.R0_rect) @ _homogeneous(self.Tr_velo_to_cam)


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


def read_calib(path: str | Path, *, need_velodyne: bool = False) -> Calib:
    """Read a KITTI calib file. P2 is required; R0_rect defaults to identity; Tr_velo_to_cam only if
    `need_velodyne`."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EdgekdError(f"{path}: calib file is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise EdgekdError(f"{path}: not a readable calib file ({error})") from None
    entries = _calib_entries(lines, path)
    if "P2" not in entries or entries["P2"].size != 12:
        raise EdgekdError(f"{path}: calib needs a 'P2:' line with 12 numbers")
    rect = entries.get("R0_rect", np.eye(3).ravel())
    velo = entries.get("Tr_velo_to_cam")
    if rect.size != 9 or (velo is not None and velo.size != 12):
        raise EdgekdError(f"{path}: R0_rect needs 9 numbers and Tr_velo_to_cam 12")
    if velo is None and need_velodyne:
        raise EdgekdError(f"{path}: calib has no 'Tr_velo_to_cam:' line, needed to use the velodyne points")
    return Calib(entries["P2"].reshape(3, 4), rect.reshape(3, 3), None if velo is None else velo.reshape(3, 4))


def _calib_entries(lines: list[str], path: Path) -> dict[str, np.ndarray]:
    entries = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        if not sep:
            raise EdgekdError(f"{path}:{number}: calib lines read 'KEY: numbers', got {line.strip()!r}")
        try:
            entries[_CALIB_ALIASES.get(key.strip(), key.strip())] = np.array(rest.split(), dtype=np.float64)
        except ValueError:
            raise EdgekdError(f"{path}:{number}: calib values must be numbers, got {line.strip()!r}") from None
    return entries


def format_calib(P: list[np.ndarray], R0_rect: np.ndarray, Tr_velo_to_cam: np.ndarray,
                 Tr_imu_to_velo: np.ndarray) -> str:
    """The 7 lines of a KITTI calib file from P0..P3 (3, 4), R0_rect (3, 3) and the (3, 4) transforms."""
    rows = [(f"P{i}", matrix) for i, matrix in enumerate(P)]
    rows += [("R0_rect", R0_rect), ("Tr_velo_to_cam", Tr_velo_to_cam), ("Tr_imu_to_velo", Tr_imu_to_velo)]
    return "".join(f"{key}: " + " ".join(f"{v:.12e}" for v in np.asarray(m).ravel()) + "\n" for key, m in rows)


def read_points(path: str | Path) -> np.ndarray:
    """LiDAR points (N, 4) float32 (x, y, z, intensity) from a KITTI .bin file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise EdgekdError(f"{path}: not a readable point file ({error.strerror})") from None
    if len(data) % 16:
        raise EdgekdError(f"{path}: size {len(data)} bytes is not a multiple of 16 (float32 x, y, z, intensity)")
    return np.frombuffer(data, dtype="<f4").reshape(-1, 4).copy()


def points_to_bytes(points: np.ndarray) -> bytes:
    """The .bin encoding of (N, 4) points."""
    return np.ascontiguousarray(points, dtype="<f4").reshape(-1, 4).tobytes()


# ---- frame index -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """The files of one frame id; `label` and `velodyne` are None when not requested."""

    frame_id: str
    image: Path
    calib: Path
    label: Path | None = None
    velodyne: Path | None = None


def index_frames(split_dir: str | Path, *, labels: bool = True, velodyne: bool = False) -> list[Frame]:
    """Pair image_2 / calib (/ label_2 / velodyne) files by id; any file without its partners is an error."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise EdgekdError(f"{split_dir}: KITTI folder is missing")
    wanted = {"image_2": IMAGE_SUFFIXES, "calib": (".txt",)}
    if labels:
        wanted["label_2"] = (".txt",)
    if velodyne:
        wanted["velodyne"] = (".bin",)
    found = {sub: _files_by_id(split_dir / sub, suffixes) for sub, suffixes in wanted.items()}
    all_ids = sorted(set().union(*(files.keys() for files in found.values())))
    for frame_id in all_ids:
        have = [sub for sub in _NAMING_ORDER if sub in wanted and frame_id in found[sub]]
        if len(have) != len(wanted):
            missing = [sub for sub in wanted if sub not in have]
            raise EdgekdError(f"{found[have[0]][frame_id]}: no matching file in {', '.join(missing)}")
    return [Frame(i, found["image_2"][i], found["calib"][i], found.get("label_2", {}).get(i),
                  found.get("velodyne", {}).get(i)) for i in all_ids]


def _files_by_id(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    if not folder.is_dir():
        raise EdgekdError(f"{folder}: KITTI folder is missing")
    files = {}
    for path in folder.iterdir():
        if path.suffix.lower() in suffixes and not path.name.startswith("."):
            if path.stem in files:
                raise EdgekdError(f"{path}: frame {path.stem} has two files ({files[path.stem].name})")
            files[path.stem] = path
    return files


# ---- geometry ----------------------------------------------------------------------------------------------------


def box_corners_3d(boxes: np.ndarray) -> np.ndarray:
    """Corners (N, 8, 3) in the camera frame of boxes (N, 7) [h, w, l, x, y, z, ry] (label order).

    Corners 0-3 are the bottom face (y = bottom), 4-7 the top, each counter-clockwise seen from above starting at
    front-left: (+l/2, +w/2), (−l/2, +w/2), (−l/2, −w/2), (+l/2, −w/2) in the box frame.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    h, w, l, ry = boxes[:, 0:1], boxes[:, 1:2], boxes[:, 2:3], boxes[:, 6:7]
    sx = np.array([1, -1, -1, 1, 1, -1, -1, 1], np.float64)
    sz = np.array([1, 1, -1, -1, 1, 1, -1, -1], np.float64)
    local_x, local_z = sx * l / 2, sz * w / 2
    local_y = np.concatenate([np.zeros((len(boxes), 4)), np.broadcast_to(-h, (len(boxes), 4))], axis=1)
    cos, sin = np.cos(ry), np.sin(ry)
    x = boxes[:, 3:4] + cos * local_x + sin * local_z
    z = boxes[:, 5:6] - sin * local_x + cos * local_z
    return np.stack([x, boxes[:, 4:5] + local_y, z], axis=-1)


def project_to_image(points_rect: np.ndarray, P2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (..., 2) and depths (...) of rectified-camera points (..., 3) under the 3×4 projection P2."""
    points = np.asarray(points_rect, np.float64)
    projected = points @ P2[:, :3].T + P2[:, 3]
    depth = projected[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return projected[..., :2] / depth[..., None], depth


def lidar_to_camera(points: np.ndarray, calib: Calib) -> np.ndarray:
    """LiDAR-frame xyz (N, ≥3) → rectified camera xyz (N, 3)."""
    transform = calib.velo_to_rect()
    return np.asarray(points, np.float64)[:, :3] @ transform[:3, :3].T + transform[:3, 3]


def camera_to_lidar(points_rect: np.ndarray, calib: Calib) -> np.ndarray:
    """Rectified camera xyz (N, 3) → LiDAR-frame xyz (N, 3)."""
    inverse = np.linalg.inv(calib.velo_to_rect())
    return np.asarray(points_rect, np.float64)[:, :3] @ inverse[:3, :3].T + inverse[:3, 3]


def observation_angle(location: np.ndarray, rotation_y: np.ndarray) -> np.ndarray:
    """KITTI alpha = ry − atan2(x, z), wrapped to [−π, π)."""
    location = np.asarray(location, np.float64).reshape(-1, 3)
    alpha = np.asarray(rotation_y, np.float64) - np.arctan2(location[:, 0], location[:, 2])
    return (alpha + np.pi) % (2 * np.pi) - np.pi
