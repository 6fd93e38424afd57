"""COCO AP of a detector: on the validation split (training stages), and of exported outputs (parity checks).

Both go through the same path: network outputs → NMS (host) or the graph's own NMS rows → COCO results →
`evaluate_coco`. The parity score works in the network's input pixels (ground truth scaled alike); box IoU is
unchanged by scaling x and y, so AP is the same as in the original pixels.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

from edgekd.tasks.layout.coco import CocoIndex, LayoutDataset, collate_layout, to_coco_detections


class ImageTruth(NamedTuple):
    """One held-out image's ground truth in input pixels: boxes (n, 4) xyxy, labels (n,) class indices."""

    boxes: np.ndarray
    labels: np.ndarray


def detections_of(outputs: Sequence[Any], nms, scales=None, original_sizes=None) -> list[Any]:
    """Per-image `Detections` from a detector's eval outputs in either mode: (boxes, scores) are NMSed here,
    (boxes, scores, labels, count) already were inside the graph."""
    from edgekd.tasks.layout.postprocess import detections_from_graph, postprocess_detections

    if len(outputs) == 2:
        return postprocess_detections(outputs[0], outputs[1], nms, scales, original_sizes)
    if len(outputs) == 4:
        return detections_from_graph(*outputs, scales=scales, original_sizes=original_sizes)
    raise ValueError(f"a detector gives 2 outputs (host NMS) or 4 (NMS in the graph), got {len(outputs)}")


def ap50_of_outputs(outputs: Sequence[Any], truths: Sequence[ImageTruth], num_classes: int, nms) -> float:
    """COCO AP50 of network outputs (either mode) against per-image ground truth in input pixels.

    >>> ap50_of_outputs((boxes, scores), [ImageTruth(gt_boxes, gt_labels)], num_classes=5, nms=NmsConfig())
    """
    from edgekd.tasks.layout.evaluate import evaluate_coco

    category_ids = {label: label + 1 for label in range(num_classes)}
    ground_truth = truth_document(truths, num_classes)
    results = []
    for image_id, found in enumerate(detections_of(outputs, nms), start=1):
        results += to_coco_detections(image_id, found.boxes, found.scores, found.labels, category_ids)
    return float(evaluate_coco(ground_truth, results)["AP50"] or 0.0)


def truth_document(truths: Sequence[ImageTruth], num_classes: int) -> dict[str, Any]:
    """A COCO ground-truth dict: image ids 1.., category id = label + 1."""
    annotations = []
    for image_id, truth in enumerate(truths, start=1):
        for (x0, y0, x1, y1), label in zip(np.asarray(truth.boxes).reshape(-1, 4), np.asarray(truth.labels)):
            width, height = float(x1 - x0), float(y1 - y0)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                                "bbox": [float(x0), float(y0), width, height], "area": width * height, "iscrowd": 0})
    return {"images": [{"id": i} for i in range(1, len(truths) + 1)], "annotations": annotations,
            "categories": [{"id": k + 1, "name": str(k)} for k in range(num_classes)]}


def evaluate_on_split(model: torch.nn.Module, index: CocoIndex, height: int, width: int, nms,
                      batch_size: int = 32) -> dict[str, Any]:
    """AP, AP50, AP75 and per-class AP of a detector (host mode, eval) on a COCO split, in the split's pixels."""
    from edgekd.tasks.layout.evaluate import evaluate_coco

    data = LayoutDataset(index.records, height, width)
    results: list[dict] = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            batch = collate_layout([data[i] for i in range(start, min(start + batch_size, len(data)))])
            records = index.records[start:start + len(batch.images)]
            scales = [(height / r.height, width / r.width) for r in records]
            found = detections_of(model(batch.images), nms, scales, [(r.height, r.width) for r in records])
            for record, image in zip(records, found):
                results += to_coco_detections(record.image_id, image.boxes, image.scores, image.labels,
                                              index.category_ids)
    metrics = evaluate_coco(index.json_path, results)
    metrics.pop("log", None)
    return metrics
