"""COCO box AP with pycocotools: AP@[.50:.95], AP50, AP75 and per-class AP, as a plain dict.

pycocotools prints as it works; its output is captured and returned under 'log' instead of reaching the terminal.
"""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import EdgekdError

_AREA_ALL, _MAX_DETS_100 = 0, -1  # COCOeval's precision array: area range 'all', the last maxDets (100)


def evaluate_coco(ground_truth: str | Path | dict, detections: list[dict]) -> dict[str, Any]:
    """Box AP of `detections` ({image_id, category_id, bbox [x, y, w, h], score}) against a COCO ground truth.

    Returns {'AP', 'AP50', 'AP75', 'per_class': {name: {'AP', 'AP50'}}, 'num_detections', 'log'}. A class with no
    ground-truth box has None for its APs; no detections at all gives 0.0 everywhere that has ground truth.

    >>> metrics = evaluate_coco("data/layout/annotations/val.json", detections)
    >>> metrics["AP50"], metrics["per_class"]["table"]["AP"]
    """
    gt_data = _load_ground_truth(ground_truth)
    names = {c["id"]: c["name"] for c in gt_data["categories"]}
    with_gt = {a["category_id"] for a in gt_data["annotations"] if not a.get("iscrowd", 0)}
    if not detections:
        return _no_detections(names, with_gt)
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise EdgekdError("COCO evaluation needs pycocotools: pip install pycocotools") from None
    _check_detections(detections, gt_data)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        coco_gt = COCO()
        coco_gt.dataset = gt_data
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(detections))  # loadRes writes ids and areas into the dicts
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {"AP": _stat(stats[0]), "AP50": _stat(stats[1]), "AP75": _stat(stats[2]),
            "per_class": _per_class(evaluator, names), "num_detections": len(detections), "log": log.getvalue()}


def _load_ground_truth(ground_truth: str | Path | dict) -> dict:
    from edgekd.tasks.layout.coco import read_coco_json

    if not isinstance(ground_truth, dict):
        data = read_coco_json(Path(ground_truth))
    elif all(key in ground_truth for key in ("images", "annotations", "categories")):
        data = copy.deepcopy(ground_truth)
    else:
        raise EdgekdError("ground truth: not a COCO detection file (needs images, annotations and categories)")
    for number, annotation in enumerate(data["annotations"]):
        # COCOeval reads these three keys; COCO files written by other tools sometimes leave them out.
        annotation.setdefault("id", number + 1)
        annotation.setdefault("iscrowd", 0)
        annotation.setdefault("area", float(annotation["bbox"][2]) * float(annotation["bbox"][3]))
    return data


def _check_detections(detections: list[dict], gt_data: dict) -> None:
    image_ids = {image["id"] for image in gt_data["images"]}
    for number, det in enumerate(detections):
        if any(key not in det for key in ("image_id", "category_id", "bbox", "score")):
            raise EdgekdError(f"detection {number} needs image_id, category_id, bbox [x, y, w, h] and score")
        if det["image_id"] not in image_ids:
            raise EdgekdError(f"detection {number} refers to image_id {det['image_id']}, not in the ground truth")


def _stat(value: float) -> float | None:
    return None if value < 0 else float(value)  # pycocotools writes -1 where there is no ground truth


def _per_class(evaluator: Any, names: dict[int, str]) -> dict[str, dict[str, float | None]]:
    precision = evaluator.eval["precision"]  # (IoU thresholds, recall points, classes, areas, maxDets)
    results = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        curves = precision[:, :, k, _AREA_ALL, _MAX_DETS_100]
        at_50 = curves[0]  # IoU thresholds start at 0.50
        results[names[category_id]] = {"AP": _mean_defined(curves), "AP50": _mean_defined(at_50)}
    return results


def _mean_defined(values: np.ndarray) -> float | None:
    defined = values[values > -1]
    return float(defined.mean()) if defined.size else None


def _no_detections(names: dict[int, str], with_gt: set[int]) -> dict[str, Any]:
    """pycocotools cannot load an empty result list; with ground truth present every AP is simply 0."""
    any_gt = bool(with_gt)
    zero = 0.0 if any_gt else None
    per_class = {name: {"AP": 0.0, "AP50": 0.0} if cid in with_gt else {"AP": None, "AP50": None}
                 for cid, name in sorted(names.items())}
    return {"AP": zero, "AP50": zero, "AP75": zero, "per_class": per_class, "num_detections": 0,
            "log": "no detections: every AP is 0"}
