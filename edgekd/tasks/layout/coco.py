"""COCO-format layout data (PubLayNet's format: one JSON file + an image folder), for torch and for results.

`load_coco` reads any such set into a light index of records (no pixels); `LayoutDataset` decodes and resizes on
demand; `collate_layout` batches samples with different numbers of boxes; `write_coco_detections` writes results in
COCO's results format for `evaluate.evaluate_coco`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from edgekd.artifacts import atomic_write_json
from edgekd.errors import EdgekdError
from edgekd.registry import closest

PUBLAYNET_CLASSES = ("text", "title", "list", "table", "figure")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LayoutRecord:
    """One image: its file, size, boxes (n, 4) float32 xyxy in its own pixels, labels (n,) int64 class indices."""

    image_id: int
    file: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class CocoIndex(Sequence[LayoutRecord]):
    """The records of a COCO file, in the file's image order, plus the class list and its COCO category ids."""

    records: tuple[LayoutRecord, ...]
    class_names: tuple[str, ...]
    category_ids: dict[int, int]  # class index -> COCO category id, for the classes the file defines
    json_path: Path

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):  # type: ignore[override]
        return self.records[index]

    def __iter__(self) -> Iterator[LayoutRecord]:
        return iter(self.records)


def load_coco(json_path: str | Path, image_dir: str | Path,
              class_names: Sequence[str] | None = None) -> CocoIndex:
    """Index a COCO detection file whose `file_name`s are relative to `image_dir`.

    Categories are matched to `class_names` (default PubLayNet's) by name; a record's labels are indices into that
    list. Crowd annotations and boxes with zero width or height are left out of the records (nothing to learn);
    bad input raises EdgekdError naming the file and the problem.

    >>> train = load_coco("data/layout/annotations/train.json", "data/layout/images/train")
    >>> train[0].boxes.shape, train.class_names
    ((12, 4), ('text', 'title', 'list', 'table', 'figure'))
    """
    json_path, image_dir = Path(json_path), Path(image_dir)
    names = tuple(class_names or PUBLAYNET_CLASSES)
    data = read_coco_json(json_path)
    label_of = _category_labels(json_path, data["categories"], names)
    images = _image_table(json_path, image_dir, data["images"])
    boxes: dict[int, list[list[float]]] = {image_id: [] for image_id in images}
    labels: dict[int, list[int]] = {image_id: [] for image_id in images}
    for number, annotation in enumerate(data["annotations"]):
        box = _annotation_box(json_path, number, annotation, images, label_of)
        if box is not None:
            boxes[annotation["image_id"]].append(box)
            labels[annotation["image_id"]].append(label_of[annotation["category_id"]])
    records = tuple(
        LayoutRecord(image_id, file, width, height, np.array(boxes[image_id], np.float32).reshape(-1, 4),
                     np.array(labels[image_id], np.int64))
        for image_id, (file, width, height) in images.items())
    category_ids = {label: category_id for category_id, label in label_of.items()}
    return CocoIndex(records, names, category_ids, json_path)


def read_coco_json(path: Path) -> dict[str, Any]:
    """A COCO detection file as a dict; a missing file, bad JSON or missing lists is an EdgekdError."""
    if not path.is_file():
        raise EdgekdError(f"{path}: COCO annotation file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EdgekdError(f"{path}: not valid JSON ({error})") from None
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(data, dict) or key not in data]
    if missing:
        raise EdgekdError(f"{path}: not a COCO detection file (no '{missing[0]}' list)")
    if not data["images"]:
        raise EdgekdError(f"{path}: lists no images; a split needs at least one")
    return data


def _category_labels(path: Path, categories: list[dict], names: tuple[str, ...]) -> dict[int, int]:
    """COCO category id -> class index, matched by name."""
    label_of = {}
    for category in categories:
        name = category.get("name")
        if name not in names:
            hint = closest(str(name), list(names))
            suggestion = f"did you mean '{hint}'?" if hint else f"classes: {', '.join(names)}"
            raise EdgekdError(f"{path}: category '{name}' is not in the class list ({suggestion})")
        label_of[category["id"]] = names.index(name)
    return label_of


def _image_table(path: Path, image_dir: Path, images: list[dict]) -> dict[int, tuple[Path, int, int]]:
    table = {}
    for number, image in enumerate(images):
        try:
            image_id, name, width, height = image["id"], image["file_name"], int(image["width"]), int(image["height"])
        except (KeyError, TypeError, ValueError):
            raise EdgekdError(f"{path}: images[{number}] needs id, file_name, width and height") from None
        file = image_dir / name
        if not file.is_file():
            raise EdgekdError(f"{path}: image '{name}' (id {image_id}) is listed but {file} is missing")
        table[image_id] = (file, width, height)
    return table


def _annotation_box(path: Path, number: int, annotation: dict, images: dict, label_of: dict) -> list[float] | None:
    """The annotation's xyxy box, None for one to skip; raises on an inconsistent one."""
    image_id = annotation.get("image_id")
    if image_id not in images:
        raise EdgekdError(f"{path}: annotations[{number}] refers to unknown image_id {image_id}")
    if annotation.get("category_id") not in label_of:
        raise EdgekdError(f"{path}: annotations[{number}] has unknown category_id {annotation.get('category_id')}")
    try:
        x, y, w, h = (float(v) for v in annotation["bbox"])
    except (KeyError, TypeError, ValueError):
        raise EdgekdError(f"{path}: annotations[{number}] needs a bbox [x, y, width, height]") from None
    if w < 0 or h < 0:
        raise EdgekdError(f"{path}: annotations[{number}] (image_id {image_id}) has a negative bbox size {w} x {h}")
    if annotation.get("iscrowd", 0) or w == 0 or h == 0:
        return None
    return [x, y, x + w, y + h]


class LayoutSample(NamedTuple):
    image: torch.Tensor  # (3, H, W) float32, ImageNet-normalised
    boxes: torch.Tensor  # (n, 4) float32 xyxy in the resized image's pixels
    labels: torch.Tensor  # (n,) int64 class indices
    image_id: int


class LayoutBatch(NamedTuple):
    images: torch.Tensor  # (N, 3, H, W)
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    image_ids: torch.Tensor  # (N,) int64


class LayoutDataset(Dataset):
    """Images resized to (height, width) without keeping the aspect ratio (as PicoDet does), boxes scaled alike."""

    def __init__(self, records: Sequence[LayoutRecord], height: int, width: int) -> None:
        self.records = records
        self.height, self.width = height, width
        self._mean = np.array(IMAGENET_MEAN, np.float32) * 255
        self._std = np.array(IMAGENET_STD, np.float32) * 255

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> LayoutSample:
        record = self.records[index]
        pixels = (_read_rgb(record.file, self.width, self.height) - self._mean) / self._std
        scale = np.array([self.width / record.width, self.height / record.height] * 2, np.float32)
        return LayoutSample(torch.from_numpy(pixels.transpose(2, 0, 1).copy()),
                            torch.from_numpy(record.boxes * scale), torch.from_numpy(record.labels), record.image_id)


def _read_rgb(file: Path, width: int, height: int) -> np.ndarray:
    try:
        with Image.open(file) as image:
            rgb = image.convert("RGB")
            if rgb.size != (width, height):
                rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(rgb, np.float32)
    except FileNotFoundError:
        raise EdgekdError(f"{file}: image file is missing") from None
    except (UnidentifiedImageError, OSError) as error:
        raise EdgekdError(f"{file}: not a readable image ({error})") from None


def collate_layout(samples: list[LayoutSample]) -> LayoutBatch:
    """Stack images; keep boxes and labels as per-image lists (their counts differ)."""
    return LayoutBatch(torch.stack([s.image for s in samples]), [s.boxes for s in samples],
                       [s.labels for s in samples], torch.tensor([s.image_id for s in samples], dtype=torch.int64))


def to_coco_detections(image_id: int, boxes: np.ndarray | torch.Tensor, scores: np.ndarray | torch.Tensor,
                       labels: np.ndarray | torch.Tensor, category_ids: dict[int, int],
                       scale: tuple[float, float] = (1.0, 1.0)) -> list[dict]:
    """One image's detections (xyxy boxes, scores, class indices) as COCO result dicts.

    `scale` = (sx, sy) multiplies x and y, e.g. (record.width / input_width, record.height / input_height) to go back
    from the network input to the original image. Classes without a COCO category in the file are dropped.
    """
    boxes, scores, labels = (np.asarray(torch.as_tensor(v).detach().cpu()) for v in (boxes, scores, labels))
    results = []
    for (x0, y0, x1, y1), score, label in zip(boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)):
        if int(label) not in category_ids:
            continue
        x0, x1, y0, y1 = x0 * scale[0], x1 * scale[0], y0 * scale[1], y1 * scale[1]
        bbox = [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)]
        results.append({"image_id": int(image_id), "category_id": category_ids[int(label)], "bbox": bbox,
                        "score": round(float(score), 5)})
    return results


def write_coco_detections(path: str | Path, detections: list[dict]) -> Path:
    """Write detections ({image_id, category_id, bbox [x, y, w, h], score}) as a COCO results JSON list."""
    for number, det in enumerate(detections):
        missing = [key for key in ("image_id", "category_id", "bbox", "score") if key not in det]
        if missing or len(det["bbox"]) != 4:
            raise EdgekdError(f"{path}: detection {number} needs image_id, category_id, bbox [x, y, w, h] and score")
    return atomic_write_json(path, [
        {"image_id": int(d["image_id"]), "category_id": int(d["category_id"]),
         "bbox": [float(v) for v in d["bbox"]], "score": float(d["score"])} for d in detections])
