"""SimOTA label assignment for PicoDet (papers.md §3.1: candidate_topk 10, iou_weight 6).

Follows the semantics of PaddleDetection's `SimOTAAssigner` (itself after YOLOX / mmdetection), per image:
1. Candidates: anchor points whose centre lies inside some GT box or within `center_radius`·stride of some GT
   centre (strict inequalities).
2. Cost (candidates × GTs): classification cost + `iou_weight`·box cost + 1e8 unless the point is both inside
   that GT and inside its centre region. With `use_vfl` (PicoDet's default) the classification cost is the
   varifocal loss of the predicted scores against the GT class one-hot scaled by the IoU, and the box cost is
   1 − GIoU; without it, BCE against the one-hot and −log IoU (YOLOX).
3. Dynamic k per GT: ⌊sum of its `candidate_topk` largest IoUs⌋, at least 1; each GT takes its k cheapest
   candidates.
4. A point taken by several GTs keeps only the GT of least cost (over all GTs, as in the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

OUTSIDE_PENALTY = 1e8
LOG_EPS = 1e-7


@dataclass(frozen=True)
class SimOTAConfig:
    """SimOTA settings; the defaults are PicoDet's (PaddleDetection `picodet_esnet.yml` + class defaults)."""

    center_radius: float = 2.5
    candidate_topk: int = 10
    iou_weight: float = 6.0
    cls_weight: float = 1.0
    use_vfl: bool = True
    vfl_alpha: float = 0.75
    vfl_gamma: float = 2.0


@torch.no_grad()
def simota_assign(scores: torch.Tensor, centers: torch.Tensor, strides: torch.Tensor, pred_boxes: torch.Tensor,
                  gt_boxes: torch.Tensor, gt_labels: torch.Tensor, cfg: SimOTAConfig = SimOTAConfig()) -> torch.Tensor:
    """Assign anchor points of one image to GT boxes.

    scores (A, C) class probabilities; centers (A, 2) and strides (A,) of the anchor points; pred_boxes (A, 4)
    and gt_boxes (M, 4) xyxy in the same pixels; gt_labels (M,). Returns (A,) long: the GT index, −1 = background.
    """
    assigned = torch.full((centers.shape[0],), -1, dtype=torch.long, device=centers.device)
    if gt_boxes.numel() == 0:
        return assigned
    in_box, in_center = candidate_masks(centers, strides, gt_boxes, cfg.center_radius)
    candidates = torch.nonzero((in_box | in_center).any(dim=1)).squeeze(1)
    if candidates.numel() == 0:
        return assigned
    ious, cost = matching_cost(scores[candidates], pred_boxes[candidates], gt_boxes, gt_labels, cfg)
    cost = cost + OUTSIDE_PENALTY * (~(in_box & in_center)[candidates]).to(cost.dtype)
    assigned[candidates] = dynamic_k_matching(cost, ious, cfg.candidate_topk)
    return assigned


def candidate_masks(centers: torch.Tensor, strides: torch.Tensor, gt_boxes: torch.Tensor,
                    radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, M) masks: point strictly inside the GT box; point strictly within radius·stride of the GT centre."""
    x, y = centers[:, 0:1], centers[:, 1:2]
    inside = torch.stack([x - gt_boxes[:, 0], y - gt_boxes[:, 1], gt_boxes[:, 2] - x, gt_boxes[:, 3] - y], dim=-1)
    gt_cx = (gt_boxes[:, 0] + gt_boxes[:, 2]) / 2
    gt_cy = (gt_boxes[:, 1] + gt_boxes[:, 3]) / 2
    reach = radius * strides[:, None]
    near = torch.stack([x - (gt_cx - reach), y - (gt_cy - reach), gt_cx + reach - x, gt_cy + reach - y], dim=-1)
    return inside.min(dim=-1).values > 0, near.min(dim=-1).values > 0


def matching_cost(scores: torch.Tensor, pred_boxes: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
                  cfg: SimOTAConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise IoU (K, M) and classification + weighted box cost (K, M) for K candidate points."""
    from torchvision.ops import box_iou, generalized_box_iou

    ious = box_iou(pred_boxes, gt_boxes)
    onehot = F.one_hot(gt_labels.long(), scores.shape[1]).to(scores.dtype)  # (M, C)
    probs = scores[:, None, :].expand(-1, gt_boxes.shape[0], -1)  # (K, M, C)
    if cfg.use_vfl:
        target = onehot[None] * ious[..., None]
        focal = torch.where(target > 0, target, cfg.vfl_alpha * (probs - target).abs().pow(cfg.vfl_gamma))
        cls_cost = (F.binary_cross_entropy(probs, target, reduction="none") * focal).sum(-1)
        box_cost = 1 - generalized_box_iou(pred_boxes, gt_boxes)
    else:
        cls_cost = F.binary_cross_entropy(probs, onehot[None].expand_as(probs), reduction="none").sum(-1)
        box_cost = -torch.log(ious + LOG_EPS)
    return ious, cfg.cls_weight * cls_cost + cfg.iou_weight * box_cost


def dynamic_k_matching(cost: torch.Tensor, ious: torch.Tensor, candidate_topk: int) -> torch.Tensor:
    """(K, M) cost and IoU → (K,) GT index per candidate, −1 when no GT takes it."""
    num_candidates = cost.shape[0]
    top_ious = ious.topk(min(candidate_topk, num_candidates), dim=0).values
    dynamic_k = top_ious.sum(dim=0).to(torch.long).clamp(min=1)  # (M,), truncated like an int cast
    order = cost.argsort(dim=0, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(0, order, torch.arange(num_candidates, device=cost.device)[:, None].expand_as(order))
    matched = rank < dynamic_k[None, :]
    contested = matched.sum(dim=1) > 1
    if contested.any():
        cheapest = F.one_hot(cost.argmin(dim=1), cost.shape[1]).bool()
        matched = torch.where(contested[:, None], cheapest, matched)
    return torch.where(matched.any(dim=1), matched.to(torch.uint8).argmax(dim=1), torch.full_like(order[:, 0], -1))
