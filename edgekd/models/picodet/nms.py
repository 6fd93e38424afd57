"""Class-aware NMS with fixed-shape outputs, traceable into an ONNX graph ("NMS inside the graph").

torchvision's `nms` exports as ONNX `NonMaxSuppression` (both torch exporters carry a translation for it), so
the detector's "graph" mode runs the same code in PyTorch and in ONNX Runtime. Classes and images are kept
apart by the coordinate trick (each (image, class) group shifted to its own region), done here rather than
through `torchvision.ops.batched_nms`, which switches to a data-dependent per-class loop above 4,000 box
coordinates on CPU and then cannot be exported.

The steps, per image: the `pre_nms_top_k` best (anchor, class) pairs by score → NMS per class at
`iou_threshold` → drop scores ≤ `score_threshold` → the `keep_top_k` best. Low-scoring candidates can only
suppress candidates that score lower still, so dropping them after NMS gives the same detections as dropping
them before (what the host-side path does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class NmsConfig:
    """PicoDet's MultiClassNMS settings (papers.md §3.1); `pre_nms_top_k` counts (anchor, class) pairs per image."""

    score_threshold: float = 0.025
    iou_threshold: float = 0.6
    pre_nms_top_k: int = 1000
    keep_top_k: int = 100


def graph_nms(boxes: torch.Tensor, scores: torch.Tensor, cfg: NmsConfig = NmsConfig(),
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, A, 4) boxes and (N, A, C) scores → boxes (N, K, 4), scores (N, K), labels (N, K), count (N,).

    K = min(keep_top_k, pre-NMS candidates). Row i holds count[i] detections sorted by score, then zero padding
    (score 0, label -1).
    """
    from torchvision.ops import nms

    batch, anchors, classes = scores.shape
    top_scores, top_index = scores.flatten(1).topk(min(cfg.pre_nms_top_k, anchors * classes), dim=1)
    candidates = top_scores.shape[1]
    labels = top_index % classes
    candidate_boxes = torch.gather(boxes, 1, (top_index // classes).unsqueeze(-1).expand(-1, -1, 4))
    groups = torch.arange(batch, device=boxes.device).unsqueeze(1) * classes + labels
    flat_boxes = candidate_boxes.reshape(-1, 4)
    # Shift each (image, class) group by more than the coordinate span so boxes of different groups never
    # overlap (the span, not just the maximum: decoded boxes may start left of or above the image).
    span = flat_boxes.max() - flat_boxes.min() + 1
    shifted = flat_boxes + groups.reshape(-1, 1).to(flat_boxes.dtype) * span
    kept = nms(shifted, top_scores.reshape(-1), cfg.iou_threshold)
    survived = torch.zeros(batch * candidates, dtype=torch.bool, device=boxes.device)
    survived[kept] = True
    survived = survived.reshape(batch, candidates) & (top_scores > cfg.score_threshold)
    ranked = torch.where(survived, top_scores, torch.full_like(top_scores, -1.0))
    out_scores, order = ranked.topk(min(cfg.keep_top_k, candidates), dim=1)
    valid = out_scores > -1.0
    out_boxes = torch.gather(candidate_boxes, 1, order.unsqueeze(-1).expand(-1, -1, 4))
    out_labels = torch.gather(labels, 1, order)
    out_boxes = torch.where(valid.unsqueeze(-1), out_boxes, torch.zeros_like(out_boxes))
    out_scores = torch.where(valid, out_scores, torch.zeros_like(out_scores))
    out_labels = torch.where(valid, out_labels, torch.full_like(out_labels, -1))
    return out_boxes, out_scores, out_labels, valid.sum(dim=1)
