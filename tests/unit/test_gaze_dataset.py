"""The gaze data set on disk: generate → load round trip, determinism across workers, user data, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgekd.errors import EdgekdError
from edgekd.tasks.gaze.dataset import (
    LABEL_COLUMNS,
    PIXEL_MEAN,
    PIXEL_STD,
    GazeArrays,
    GazeTorchDataset,
    generate_dataset,
    load_split,
)

TINY = dict(image_size=32, train_subjects=2, train_per_subject=3, test_subjects=1, test_per_subject=3,
            personal_subjects=1, personal_adapt=2, personal_eval=3, seed=5)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gaze")
    generate_dataset(root, workers=1, **TINY)
    return root


def test_generate_writes_the_documented_layout(tiny: Path) -> None:
    info = json.loads((tiny / "info.json").read_text())
    assert info["counts"] == {"train": 6, "test": 3, "personal": 5}
    assert info["image_size"] == 32 and info["seed"] == 5 and info["format_version"] == 1
    with open(tiny / "personal" / "labels.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == LABEL_COLUMNS
    assert [r[4] for r in rows[1:]] == ["adapt", "adapt", "eval", "eval", "eval"]
    image = Image.open(tiny / "personal" / rows[1][0])
    assert image.mode == "L" and image.size == (32, 32)
    subjects = {split: set(load_split(tiny, split).subjects.tolist()) for split in ("train", "test", "personal")}
    assert subjects == {"train": {"s000", "s001"}, "test": {"s002"}, "personal": {"s003"}}
    assert set(info["kappa_deg"]) == {"s000", "s001", "s002", "s003"}


def test_round_trip_and_cache(tmp_path: Path) -> None:
    generate_dataset(tmp_path, workers=1, **{**TINY, "test_subjects": 0, "personal_subjects": 0})
    tiny = tmp_path
    train = load_split(tiny, "train", image_size=32)
    assert train.images.shape == (6, 32, 32) and train.images.dtype == np.uint8
    assert train.gaze_deg.shape == (6, 2) and train.gaze_deg.dtype == np.float32
    assert train.roles.tolist() == ["train"] * 6 and train.subjects.tolist() == ["s000"] * 3 + ["s001"] * 3
    first = np.asarray(Image.open(tiny / "train" / "images" / "000000.png"))
    np.testing.assert_array_equal(train.images[0], first)
    cache = tiny / "train" / "cache-32.npz"
    assert cache.is_file()  # written by generate_dataset: the first load needs no decoding
    # Without the cache, decoding the PNGs gives the same arrays, and writes the cache again.
    cache.unlink()
    decoded = load_split(tiny, "train", image_size=32)
    assert cache.is_file()
    for name in ("images", "gaze_deg", "subjects", "roles"):
        np.testing.assert_array_equal(getattr(decoded, name), getattr(train, name))
    # The cache is used: poison it (same key) and the loader returns the poisoned pixels.
    with np.load(cache) as data:
        poisoned = {name: data[name] for name in data.files}
    poisoned["images"] = np.zeros_like(poisoned["images"])
    with open(cache, "wb") as handle:
        np.savez(handle, **poisoned)
    assert load_split(tiny, "train", image_size=32).images.max() == 0
    # Editing labels.csv changes the key: the images are decoded again.
    labels = tiny / "train" / "labels.csv"
    labels.write_text(labels.read_text() + "\n")
    np.testing.assert_array_equal(load_split(tiny, "train", image_size=32).images[0], first)


def test_workers_do_not_change_the_files(tiny: Path, tmp_path: Path) -> None:
    seen = []
    generate_dataset(tmp_path, workers=2, progress=seen.append, **TINY)
    assert sum(seen) == 14
    generated = {name: data for name, data in _files(tiny).items() if "cache-native" not in name}  # other tests' loads
    assert generated == _files(tmp_path)  # images, labels, info.json and the array caches


def test_regenerating_smaller_removes_stale_images(tmp_path: Path) -> None:
    generate_dataset(tmp_path, workers=1, **{**TINY, "train_per_subject": 4})
    generate_dataset(tmp_path, workers=1, **TINY)
    assert len(list((tmp_path / "train" / "images").glob("*.png"))) == 6


def _user_folder(root: Path, header: str = ",".join(LABEL_COLUMNS)) -> Path:
    """A real-data style folder: RGB JPEGs of another size, nested paths."""
    folder = root / "test"
    (folder / "eyes" / "p1").mkdir(parents=True)
    lines = [header]
    for i in range(3):
        rgb = np.zeros((40, 60, 3), np.uint8)
        rgb[..., 0] = 50 * i + 20  # a flat colour per image: checks the gray conversion survives JPEG
        Image.fromarray(rgb).save(folder / "eyes" / "p1" / f"{i}.jpg", quality=95)
        lines.append(f"eyes/p1/{i}.jpg,p1,{i * 2.5},-1.0,test")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_user_data_is_converted_and_resized(tmp_path: Path) -> None:
    arrays = load_split(_user_folder(tmp_path), "test", image_size=32)
    assert arrays.images.shape == (3, 32, 32) and arrays.images.dtype == np.uint8
    np.testing.assert_allclose(arrays.gaze_deg[:, 0], [0.0, 2.5, 5.0])
    # ITU-R 601 luma of pure red is 0.299·R.
    assert abs(float(arrays.images[2].mean()) - 0.299 * 120) < 3
    assert load_split(tmp_path, "test").images.shape == (3, 40, 60)  # native size when none is asked


def test_missing_folder_and_labels_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(EdgekdError, match="train"):
        load_split(tmp_path, "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(EdgekdError, match="labels.csv"):
        load_split(tmp_path, "train")


def test_bad_header_and_missing_image(tmp_path: Path) -> None:
    _user_folder(tmp_path, header="file,subject,yaw,pitch,role")
    with pytest.raises(EdgekdError, match=r"labels\.csv.*missing yaw_deg,pitch_deg"):
        load_split(tmp_path, "test")
    labels = tmp_path / "test" / "labels.csv"
    labels.write_text(",".join(LABEL_COLUMNS) + "\nnope.png,p1,0,0,test\n")
    with pytest.raises(EdgekdError, match="nope.png"):
        load_split(tmp_path, "test")
    labels.write_text(",".join(LABEL_COLUMNS) + "\neyes/p1/0.jpg,p1,left,0,test\n")
    with pytest.raises(EdgekdError, match=r"labels\.csv:2"):
        load_split(tmp_path, "test")
    labels.write_text(",".join(LABEL_COLUMNS) + "\neyes/p1/0.jpg,p1,0,0,training\n")
    with pytest.raises(EdgekdError, match="role"):
        load_split(tmp_path, "test")


def test_subset_and_torch_dataset(tiny: Path) -> None:
    personal = load_split(tiny, "personal")
    shots = personal.subset(personal.roles == "adapt")
    assert isinstance(shots, GazeArrays) and len(shots) == 2
    np.testing.assert_array_equal(personal.subset([4, 0]).gaze_deg, personal.gaze_deg[[4, 0]])
    dataset = GazeTorchDataset(personal)
    assert isinstance(dataset, torch.utils.data.Dataset) and len(dataset) == 5
    image, target = dataset[1]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32 and target.dtype == torch.float32
    expected = (personal.images[1].astype(np.float32) / 255 - PIXEL_MEAN) / PIXEL_STD
    np.testing.assert_allclose(image[0].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(target.numpy(), np.radians(personal.gaze_deg[1]), rtol=1e-6)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch[0].shape == (4, 1, 32, 32) and batch[1].shape == (4, 2)
