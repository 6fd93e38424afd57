"""The gaze data set on disk (docs/gaze_data.md): render it, read it back (synthetic or a user's), feed torch.

    <root>/{train,test,personal}/images/000000.png   8-bit grayscale eye images
    <root>/{train,test,personal}/labels.csv          file,subject,yaw_deg,pitch_deg,role
    <root>/info.json                                 generator settings, seed, counts (synthetic sets only)
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import re
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from edgekd.artifacts import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_file
from edgekd.errors import EdgekdError
from edgekd.paths import read_text
from edgekd.tasks.gaze.render import PITCH_RANGE_DEG, YAW_RANGE_DEG, render_eye, sample_gaze, sample_subject

FORMAT_VERSION = 1
SPLITS = ("train", "test", "personal")
LABEL_COLUMNS = ("file", "subject", "yaw_deg", "pitch_deg", "role")
ROLES = ("train", "test", "adapt", "eval")
PIXEL_MEAN, PIXEL_STD = 0.5, 0.25
_CHUNK = 100  # images per worker task: small enough for a smooth progress bar
_OWN_IMAGE = re.compile(r"\d{6}\.png")


@dataclass(frozen=True)
class _Job:
    """One worker task: images [start, stop) of one subject."""

    root: str
    split: str
    subject: int  # index over all splits: names the subject and seeds it
    first_file: int  # split-wide file number of the subject's image 0
    count: int  # the subject's image count
    adapt: int  # the first `adapt` images of a personal subject are its k shots
    start: int
    stop: int
    size: int
    seed: int


def subject_id(index: int) -> str:
    return f"s{index:03d}"


def _subject_seed(seed: int, subject: int, image: int | None = None) -> np.random.SeedSequence:
    # SeedSequence(seed).spawn(...)[subject].spawn(...)[0] for the subject, [image + 1] for each image: independent
    # streams that do not depend on which worker renders what, so the files are the same for any `workers`.
    key = (subject, 0) if image is None else (subject, image + 1)
    return np.random.SeedSequence(seed, spawn_key=key)


def _subject_plan(seed: int, subject: int, count: int):
    rng = np.random.default_rng(_subject_seed(seed, subject))
    params = sample_subject(rng)
    # Labels are stored with 4 decimals; render from the stored value so image and label agree exactly.
    return params, np.round(sample_gaze(rng, count), 4)


def _render_job(job: _Job) -> tuple[list[tuple], list[np.ndarray]]:
    params, gaze = _subject_plan(job.seed, job.subject, job.count)
    rows, images = [], []
    for i in range(job.start, job.stop):
        rng = np.random.default_rng(_subject_seed(job.seed, job.subject, i))
        image = render_eye(params, float(gaze[i, 0]), float(gaze[i, 1]), rng, size=job.size)
        name = f"images/{job.first_file + i:06d}.png"
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        atomic_write_bytes(Path(job.root) / job.split / name, buffer.getvalue())
        role = job.split if job.split != "personal" else ("adapt" if i < job.adapt else "eval")
        rows.append((name, subject_id(job.subject), f"{gaze[i, 0]:.4f}", f"{gaze[i, 1]:.4f}", role))
        images.append(image)
    return rows, images


def _jobs(root: Path, size: int, seed: int, splits: dict[str, tuple[int, int, int]]) -> Iterator[_Job]:
    subject = 0
    for split, (subjects, per_subject, adapt) in splits.items():
        for s in range(subjects):
            for start in range(0, per_subject, _CHUNK):
                yield _Job(str(root), split, subject, s * per_subject, per_subject, adapt, start,
                           min(start + _CHUNK, per_subject), size, seed)
            subject += 1


def generate_dataset(root: Path, *, image_size: int, train_subjects: int, train_per_subject: int,
                     test_subjects: int, test_per_subject: int, personal_subjects: int, personal_adapt: int,
                     personal_eval: int, seed: int, workers: int = 2,
                     progress: Callable[[int], None] | None = None) -> dict:
    """Render the synthetic gaze data set under `root` and return its info.json content.

    The files depend only on the arguments other than `workers`/`progress`; `progress(n)` is called as each batch
    of n images is written.

    >>> info = generate_dataset(Path("data"), image_size=64, train_subjects=2, train_per_subject=3,
    ...     test_subjects=1, test_per_subject=3, personal_subjects=1, personal_adapt=1, personal_eval=2, seed=0)
    """
    root = Path(root)
    splits = {"train": (train_subjects, train_per_subject, 0), "test": (test_subjects, test_per_subject, 0),
              "personal": (personal_subjects, personal_adapt + personal_eval, personal_adapt)}
    rows: dict[str, list[tuple]] = {split: [] for split in SPLITS}
    images: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    jobs = list(_jobs(root, image_size, seed, splits))
    for job, (done, pixels) in zip(jobs, _run(jobs, workers)):
        rows[job.split].extend(done)
        images[job.split].extend(pixels)
        if progress is not None:
            progress(len(done))
    for split in SPLITS:  # jobs come back in submission order, which is file order
        _write_split(root / split, rows[split], images[split], image_size)
    info = _info(image_size, seed, splits, {split: len(r) for split, r in rows.items()})
    atomic_write_json(root / "info.json", info)
    return info


def _run(jobs: list[_Job], workers: int) -> Iterator[tuple[list[tuple], list[np.ndarray]]]:
    if workers <= 1:
        yield from map(_render_job, jobs)
        return
    with multiprocessing.get_context().Pool(workers) as pool:
        yield from pool.imap(_render_job, jobs)


def _write_split(folder: Path, rows: list[tuple], images: list[np.ndarray], size: int) -> None:
    """labels.csv, plus the decoded-array cache that load_split would build, so the first load is instant."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(LABEL_COLUMNS)
    writer.writerows(rows)
    atomic_write_text(folder / "labels.csv", text.getvalue())
    parsed = [(name, subject, float(yaw), float(pitch), role) for name, subject, yaw, pitch, role in rows]
    _write_cache(folder / f"cache-{size}.npz", sha256_file(folder / "labels.csv"), _arrays(parsed, images, size))
    # A smaller re-generation into the same folder must not leave images no label points at.
    keep = {Path(row[0]).name for row in rows}
    for stale in (folder / "images").glob("*.png"):
        if _OWN_IMAGE.fullmatch(stale.name) and stale.name not in keep:
            stale.unlink()


def _info(size: int, seed: int, splits: dict[str, tuple[int, int, int]], counts: dict[str, int]) -> dict:
    subjects, kappa, index = {}, {}, 0
    for split, (n_subjects, _, _) in splits.items():
        subjects[split] = [subject_id(index + s) for s in range(n_subjects)]
        for s in range(n_subjects):
            params = sample_subject(np.random.default_rng(_subject_seed(seed, index + s)))
            kappa[subject_id(index + s)] = [round(params.kappa_yaw_deg, 4), round(params.kappa_pitch_deg, 4)]
        index += n_subjects
    settings = {f"{split}_{key}": value for split, (n, per, adapt) in splits.items()
                for key, value in (("subjects", n), ("per_subject", per), ("adapt", adapt))}
    return {"format_version": FORMAT_VERSION, "generator": "edgekd.tasks.gaze.render", "seed": seed,
            "image_size": size, "counts": counts, "settings": settings, "subjects": subjects, "kappa_deg": kappa,
            "gaze_range_deg": {"yaw": list(YAW_RANGE_DEG), "pitch": list(PITCH_RANGE_DEG)},
            "labels": "visual-axis yaw/pitch in degrees; metrics.gaze_vector gives the 3-D convention"}


@dataclass
class GazeArrays:
    """A split in memory: images (N, H, W) uint8, gaze_deg (N, 2) float32 (yaw, pitch), subjects, roles."""

    images: np.ndarray
    gaze_deg: np.ndarray
    subjects: np.ndarray
    roles: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, selection: np.ndarray | list[int]) -> GazeArrays:
        """The rows picked by a boolean mask or an index array."""
        return GazeArrays(**{name: value[selection] for name, value in self.columns().items()})

    def columns(self) -> dict[str, np.ndarray]:
        # Not dataclasses.asdict: that deep-copies every array.
        return {field.name: getattr(self, field.name) for field in fields(self)}


def load_split(root: Path, split: str, image_size: int | None = None) -> GazeArrays:
    """Read `<root>/<split>/labels.csv` and its images (PNG/JPEG, gray or RGB → gray, resized to image_size).

    Decoded arrays are cached as `<split>/cache-<size>.npz`, keyed by the sha256 of labels.csv.

    >>> train = load_split(Path("data"), "train", image_size=64)
    """
    folder = Path(root) / split
    labels = folder / "labels.csv"
    if not labels.is_file():
        what = "folder" if not folder.is_dir() else "file"
        raise EdgekdError(f"gaze data: no such {what} {labels if what == 'file' else folder} (see docs/gaze_data.md)")
    digest = sha256_file(labels)
    cache = folder / f"cache-{image_size or 'native'}.npz"
    arrays = _read_cache(cache, digest)
    if arrays is None:
        rows = _read_labels(labels)
        if not rows:
            raise EdgekdError(f"{labels}: the {split} split lists no images; it needs at least one")
        arrays = _arrays(rows, [_read_image(folder, row[0], image_size) for row in rows], image_size, labels)
        _write_cache(cache, digest, arrays)
    return arrays


def _arrays(rows: list[tuple], images: list[np.ndarray], size: int | None, labels: Path | None = None) -> GazeArrays:
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise EdgekdError(f"{labels}: images differ in size {sorted(shapes)}; set an image_size")
    stacked = np.stack(images) if images else np.zeros((0, size or 0, size or 0), np.uint8)
    gaze = np.array([[row[2], row[3]] for row in rows], np.float32).reshape(-1, 2)
    subjects, roles = (np.array([row[i] for row in rows], dtype=str) for i in (1, 4))
    return GazeArrays(stacked, gaze, subjects, roles)


def _read_labels(path: Path) -> list[tuple[str, str, float, float, str]]:
    with io.StringIO(read_text(path, "labels file"), newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in LABEL_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise EdgekdError(f"{path}: header must name {','.join(LABEL_COLUMNS)}; missing {','.join(missing)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append((row["file"], row["subject"], float(row["yaw_deg"]), float(row["pitch_deg"]), row["role"]))
            except (TypeError, ValueError):
                raise EdgekdError(f"{path}:{line}: yaw_deg/pitch_deg must be numbers, got {dict(row)}") from None
            if row["role"] not in ROLES:
                raise EdgekdError(f"{path}:{line}: role must be one of {', '.join(ROLES)}, got {row['role']!r}")
    return rows


def _read_image(folder: Path, name: str, size: int | None) -> np.ndarray:
    path = folder / name
    try:
        with Image.open(path) as image:
            gray = image if image.mode == "L" else image.convert("L")
            if size is not None and gray.size != (size, size):
                # Eye crops of any shape are squeezed to the square network input; BILINEAR antialiases a shrink.
                gray = gray.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(gray, dtype=np.uint8)
    except FileNotFoundError:
        raise EdgekdError(f"{path}: image listed in {folder / 'labels.csv'} is missing") from None
    except (UnidentifiedImageError, OSError) as error:
        raise EdgekdError(f"{path}: not a readable image ({error})") from None


def _read_cache(path: Path, digest: str) -> GazeArrays | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["labels_sha256"]) != digest or int(data["format_version"]) != FORMAT_VERSION:
                return None
            return GazeArrays(data["images"], data["gaze_deg"], data["subjects"], data["roles"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # no cache yet, or a damaged one: decode again


def _write_cache(path: Path, digest: str, arrays: GazeArrays) -> None:
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, labels_sha256=digest, format_version=FORMAT_VERSION, **arrays.columns())
    except OSError:
        pass  # a read-only user folder: work without the cache


class GazeTorchDataset(Dataset):
    """(image (1, H, W) float32 normalised by PIXEL_MEAN/PIXEL_STD, gaze (2,) float32 yaw/pitch in radians)."""

    def __init__(self, arrays: GazeArrays) -> None:
        self.arrays = arrays
        self.targets = np.deg2rad(arrays.gaze_deg).astype(np.float32)

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = (self.arrays.images[index].astype(np.float32) / 255.0 - PIXEL_MEAN) / PIXEL_STD
        return torch.from_numpy(image[None]), torch.from_numpy(self.targets[index])
