"""Host-side post-processing for a detector exported with NMS outside the graph (papers.md §3.1).

The model gives decoded boxes (N, A, 4) xyxy in input pixels and scores (N, A, C). Per image: (anchor, class)
pairs scoring above `score_threshold` → the `pre_nms_top_k` best → NMS per class at `iou_threshold` → the
`keep_top_k` best → divided by the resize scale, back to original-image pixels. The same `NmsConfig` drives the
in-graph path (`edgekd.models.picodet.graph_nms`), whose outputs `detections_from_graph` converts alike.

>>> dets = postprocess_detections(boxes, scores, scales=[(320 / 1100, 256 / 850)])
>>> dets[0].boxes.shape, dets[0].scores.shape, dets[0].labels.shape      # K detections, best first
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch

from edgekd.models.picodet.nms import NmsConfig

# A resize scale per image: one factor for both axes, or (scale_y, scale_x) = input size / original size.
Scale = Union[float, tuple[float, float]]


@dataclass
class Detections:
    """One image's detections, best first, in original-image pixels."""

    boxes: np.ndarray  # (K, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (K,) float32
    labels: np.ndarray  # (K,) int64, 0-based class index


def postprocess_detections(boxes, scores, cfg: NmsConfig = NmsConfig(), scales: Sequence[Scale] | None = None,
                           original_sizes: Sequence[tuple[int, int]] | None = None) -> list[Detections]:
    """Class-aware NMS of decoded outputs (numpy or torch); boxes clipped to `original_sizes` (h, w) if given."""
    boxes_t, scores_t = _as_tensor(boxes), _as_tensor(scores)
    results = []
    for i in range(boxes_t.shape[0]):
        kept_boxes, kept_scores, kept_labels = _image_nms(boxes_t[i], scores_t[i], cfg)
        results.append(_finish(kept_boxes, kept_scores, kept_labels, _scale_at(scales, i), _size_at(original_sizes, i)))
    return results


def detections_from_graph(boxes, scores, labels, counts, scales: Sequence[Scale] | None = None,
                          original_sizes: Sequence[tuple[int, int]] | None = None) -> list[Detections]:
    """The padded outputs of the in-graph NMS mode → the same per-image `Detections` as the host path."""
    boxes_t, scores_t, labels_t, counts_t = (_as_tensor(t) for t in (boxes, scores, labels, counts))
    results = []
    for i in range(boxes_t.shape[0]):
        n = int(counts_t[i])
        results.append(_finish(boxes_t[i, :n].float(), scores_t[i, :n].float(), labels_t[i, :n].long(),
                               _scale_at(scales, i), _size_at(original_sizes, i)))
    return results


def _image_nms(boxes: torch.Tensor, scores: torch.Tensor, cfg: NmsConfig):
    from torchvision.ops import batched_nms

    anchor_index, labels = torch.nonzero(scores > cfg.score_threshold, as_tuple=True)
    candidate_scores = scores[anchor_index, labels]
    if candidate_scores.numel() > cfg.pre_nms_top_k:
        best = candidate_scores.topk(cfg.pre_nms_top_k).indices
        anchor_index, labels, candidate_scores = anchor_index[best], labels[best], candidate_scores[best]
    candidate_boxes = boxes[anchor_index]
    keep = batched_nms(candidate_boxes, candidate_scores, labels, cfg.iou_threshold)[: cfg.keep_top_k]
    return candidate_boxes[keep], candidate_scores[keep], labels[keep]


def _finish(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, scale: tuple[float, float],
            size: tuple[int, int] | None) -> Detections:
    scale_y, scale_x = scale
    boxes = boxes / boxes.new_tensor([scale_x, scale_y, scale_x, scale_y])
    if size is not None:
        height, width = size
        boxes = torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                             boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], dim=1)
    return Detections(boxes.numpy().astype(np.float32), scores.numpy().astype(np.float32),
                      labels.numpy().astype(np.int64))


def _scale_at(scales: Sequence[Scale] | None, i: int) -> tuple[float, float]:
    if scales is None:
        return (1.0, 1.0)
    scale = scales[i]
    return (float(scale), float(scale)) if np.ndim(scale) == 0 else (float(scale[0]), float(scale[1]))


def _size_at(sizes: Sequence[tuple[int, int]] | None, i: int) -> tuple[int, int] | None:
    return None if sizes is None else (int(sizes[i][0]), int(sizes[i][1]))


def _as_tensor(array) -> torch.Tensor:
    return array.detach().cpu() if isinstance(array, torch.Tensor) else torch.from_numpy(np.asarray(array))
