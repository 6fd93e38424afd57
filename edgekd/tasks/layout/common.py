"""Pieces every layout stage shares: the detectors a recipe names, the data stage's index, padded targets.

The training loop batches with PyTorch's default collate, which needs equal shapes; detection targets have a
different number of boxes per image, so each image's targets travel as one (max_boxes, 5) tensor, rows
[x1, y1, x2, y2, label] in input pixels, padded with label -1 (`pad_targets` / `split_targets`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.utils.data import Dataset

from edgekd.artifacts import load_state_into
from edgekd.pipeline import StageContext

DATASET_INDEX = "dataset.json"
PAD_LABEL = -1
ROLES = ("teacher", "student")


def arch_name(width: float) -> str:
    """'picodet_lcnet_x2_5' for width 2.5, 'picodet_lcnet_x0_25' for 0.25 (the registered names' spelling)."""
    whole, fraction = f"{width:.2f}".split(".")
    return f"picodet_lcnet_x{whole}_{fraction.rstrip('0') or '0'}"


def model_name(recipe, role: str) -> str:
    """The name a role's detector goes by in metrics and reports: the YOLO's name for a YOLO teacher."""
    if role == "teacher" and recipe.teacher.yolo:
        return recipe.teacher.yolo
    return arch_name(getattr(recipe, role).width)


def nms_config(recipe) -> Any:
    from edgekd.models.picodet import NmsConfig

    cfg = recipe.evaluate
    return NmsConfig(score_threshold=cfg.score_threshold, iou_threshold=cfg.iou_threshold,
                     pre_nms_top_k=cfg.pre_nms_top_k, keep_top_k=cfg.keep_top_k)


def build_detector(recipe, role: str, postprocess: str = "host") -> Any:
    """The teacher or student the recipe describes, randomly initialised (no hub weights): a PicoDet, or for
    `teacher.yolo` that YOLOv8 behind PicoDet's interface (`edgekd.yolo.layout_detector`)."""
    from edgekd.models.picodet import build_picodet

    cfg = getattr(recipe, role)
    if role == "teacher" and cfg.yolo:
        from edgekd.yolo.layout_detector import YoloLayoutDetector
        from edgekd.yolo.models import build_yolo

        return YoloLayoutDetector(build_yolo(cfg.yolo, len(recipe.data.classes)), postprocess, nms_config(recipe))
    return build_picodet(width=cfg.width, num_classes=len(recipe.data.classes), neck_channels=cfg.neck_channels,
                         levels=cfg.levels, postprocess=postprocess, nms=nms_config(recipe))


def load_detector(recipe, role: str, path: Path, postprocess: str = "host") -> Any:
    model = build_detector(recipe, role, postprocess)
    load_state_into(model, path)
    return model.eval()


def input_size(recipe) -> tuple[int, int]:
    """(height, width) of the network input."""
    return recipe.data.height, recipe.data.width


def coco_split(ctx: StageContext, split: str) -> Any:
    """The COCO index of `split` ('train' | 'val') as the data stage recorded it."""
    from edgekd.tasks.layout.coco import load_coco

    folder = ctx.stage_path("data")
    entry = json.loads((folder / DATASET_INDEX).read_text())["splits"][split]
    return load_coco(folder / entry["json"], folder / entry["images"], ctx.recipe.data.classes)


class DetectionSet(Dataset):
    """(image, targets) pairs: the normalised, resized image and its padded (max_boxes, 5) targets."""

    def __init__(self, records, height: int, width: int) -> None:
        from edgekd.tasks.layout.coco import LayoutDataset

        self.images = LayoutDataset(records, height, width)
        self.max_boxes = max([len(r.labels) for r in records] + [1])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.images[index]
        return sample.image, pad_targets(sample.boxes, sample.labels, self.max_boxes)


def pad_targets(boxes: torch.Tensor, labels: torch.Tensor, max_boxes: int) -> torch.Tensor:
    """(n, 4) boxes + (n,) labels → (max_boxes, 5) rows [x1, y1, x2, y2, label], padded with label -1."""
    if len(labels) > max_boxes:
        raise ValueError(f"{len(labels)} boxes do not fit in {max_boxes} target rows")
    padded = torch.zeros(max_boxes, 5)
    padded[:, 4] = PAD_LABEL
    padded[: len(labels), :4] = boxes.reshape(-1, 4)
    padded[: len(labels), 4] = labels.to(padded.dtype)
    return padded


class Targets(NamedTuple):
    boxes: list[torch.Tensor]  # per image (n, 4) xyxy
    labels: list[torch.Tensor]  # per image (n,) int64


def split_targets(targets: torch.Tensor) -> Targets:
    """(N, max_boxes, 5) padded targets → per-image boxes and labels, padding rows dropped."""
    boxes, labels = [], []
    for rows in targets:
        real = rows[rows[:, 4] != PAD_LABEL]
        boxes.append(real[:, :4])
        labels.append(real[:, 4].long())
    return Targets(boxes, labels)
