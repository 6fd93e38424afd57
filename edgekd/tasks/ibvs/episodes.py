"""Episodes on disk: what a flight logged, in a format a user's own flights can be written in.

    <folder>/index.json          camera, control period, command scale, student input size, one entry per episode
    <folder>/ep_00000.npz        frames      (T, S, S, 3) uint8  the student's view (the camera image resized)
                                 commands    (T, 3) float32      the labelling controller's piloting commands
                                 corners     (T, 4, 2) float32   exact corners, sensor pixels
                                 pose        (T, 3) float32      x, y (m), yaw (rad)
                                 error_px    (T,) float32        ‖s* − s‖ of the exact corners

Every file is written to a temporary name and renamed, and index.json (written last) records each
episode's sha256, so a half-written folder is never read as complete (docs/ibvs_data.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from edgekd.artifacts import atomic_savez, atomic_write_json, sha256_file
from edgekd.errors import EdgekdError
from edgekd.tasks.ibvs import common
from edgekd.tasks.ibvs.law import normalise_commands

INDEX = "index.json"
FIELDS = ("frames", "commands", "corners", "pose", "error_px")


@dataclass
class EpisodeLog:
    """Accumulates one flight frame by frame (pass `record` as the flight's on_frame)."""

    input_size: int
    frames: list = field(default_factory=list)
    commands: list = field(default_factory=list)
    corners: list = field(default_factory=list)
    pose: list = field(default_factory=list)
    error_px: list = field(default_factory=list)
    goal: Any = None

    def record(self, *, frame, state, truth, commands, label=None) -> None:
        self.frames.append(common.student_frame(frame, self.input_size))
        self.commands.append(np.asarray(commands if label is None else label, np.float32))
        self.corners.append(truth.astype(np.float32))
        self.pose.append(np.array([*state.position, state.yaw], np.float32))
        self.error_px.append(np.float32(np.linalg.norm(self.goal - truth)) if self.goal is not None else np.nan)

    def __len__(self) -> int:
        return len(self.frames)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.stack(getattr(self, name)) for name in FIELDS}


def write_episode(folder: Path, index: int, log: EpisodeLog) -> dict[str, Any]:
    path = Path(folder) / f"ep_{index:05d}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_savez(path, **log.arrays())
    return {"file": path.name, "frames": len(log), "sha256": sha256_file(path)}


def write_index(folder: Path, meta: dict[str, Any], episodes: list[dict[str, Any]]) -> None:
    atomic_write_json(Path(folder) / INDEX, {**meta, "episodes": episodes})


def read_index(folder: Path) -> dict[str, Any]:
    path = Path(folder) / INDEX
    if not path.is_file():
        raise EdgekdError(f"{path}: episode index not found (format: docs/ibvs_data.md)")
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise EdgekdError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    for key in ("input_size", "command_scale", "episodes"):
        if key not in index:
            raise EdgekdError(f"{path}: missing '{key}' (format: docs/ibvs_data.md)")
    return index


def load_episode(folder: Path, entry: dict[str, Any]) -> dict[str, np.ndarray]:
    path = Path(folder) / entry["file"]
    if not path.is_file():
        raise EdgekdError(f"{path}: listed in {INDEX} but missing")
    with np.load(path) as data:
        missing = [name for name in FIELDS if name not in data]
        if missing:
            raise EdgekdError(f"{path}: missing arrays {', '.join(missing)} (format: docs/ibvs_data.md)")
        arrays = {name: data[name] for name in FIELDS}
    if len({len(a) for a in arrays.values()}) != 1:
        raise EdgekdError(f"{path}: arrays have different lengths")
    return arrays


class EpisodeFrames(Dataset):
    """(normalised frame, normalised command) pairs from one or more episode folders, all held in memory."""

    def __init__(self, folders: list[Path], augment: bool = False, seed: int = 0) -> None:
        frames, commands, scales = [], [], set()
        for folder in folders:
            index = read_index(folder)
            scales.add(tuple(index["command_scale"]))
            for entry in index["episodes"]:
                episode = load_episode(folder, entry)
                frames.append(episode["frames"])
                commands.append(episode["commands"])
        if len(scales) > 1:
            raise EdgekdError(f"episode folders use different command scales: {sorted(scales)}")
        self.frames = np.concatenate(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)
        self.scale = scales.pop() if scales else (1.0, 1.0, 1.0)
        self.targets = normalise_commands(np.concatenate(commands), self.scale) if commands else np.zeros((0, 3))
        self.augment, self.seed = augment, seed

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int):
        frame = self.frames[index]
        if self.augment:
            frame = _photometric(frame, np.random.default_rng([self.seed, index, torch.initial_seed() % 2**31]))
        return torch.from_numpy(common.normalise(frame)), torch.from_numpy(self.targets[index].astype(np.float32))


def _photometric(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The paper's augmentation: saturation, brightness, salt-and-pepper noise (geometry untouched: the
    commands depend on where things are)."""
    x = frame.astype(np.float32)
    grey = x.mean(axis=-1, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.7, 1.3)
    x = x * rng.uniform(0.8, 1.2)
    noisy = rng.random(frame.shape[:2]) < rng.uniform(0, 0.01)
    x[noisy] = rng.choice([0.0, 255.0], size=(int(noisy.sum()), 1))
    return np.clip(x, 0, 255).astype(np.uint8)
