"""PicoDet detection losses (papers.md §3.1): Varifocal (1.0), Distribution Focal (0.25) and GIoU (2.0).

Normalised as PaddleDetection's PicoHead does: the varifocal loss is summed over all points and classes and
divided by the number of positives; GIoU and DFL are weighted per positive by its (detached) best class score
and divided by the sum of those weights (at least 1); DFL is also averaged over the four sides.

>>> loss_fn = PicoDetLoss(num_classes=5, strides=model.strides)
>>> losses = loss_fn(model(images), gt_boxes, gt_labels)   # lists per image, boxes xyxy in input pixels
>>> losses["loss"].backward()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.compute import fp32_loss
from edgekd.models.picodet.decode import anchor_points, box_to_distance, decode_boxes, flatten_levels
from edgekd.models.picodet.model import RawOutputs
from edgekd.tasks.layout.assigner import SimOTAConfig, simota_assign

BOX_EPS = 1e-9
# Paddle's bbox2distance keeps DFL targets this far below reg_max, so the right-hand bin always exists.
DFL_TARGET_MARGIN = 0.1


def varifocal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.75, gamma: float = 2.0) -> torch.Tensor:
    """Element-wise VFL: BCE(logit, q) weighted by q where q > 0 (IoU-aware positives), else α·σ(logit)^γ."""
    prob = logits.sigmoid()
    weight = torch.where(target > 0, target, alpha * (prob - target).abs().pow(gamma))
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight


def distribution_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(…, reg_max+1) bin logits, (…) continuous target in [0, reg_max) → (…) DFL.

    Cross-entropy towards the two bins around the target, each weighted by its nearness to it.
    """
    left = target.floor().long()
    right_weight = target - left.to(target.dtype)
    log_probs = F.log_softmax(logits, dim=-1)
    left_term = -log_probs.gather(-1, left.unsqueeze(-1)).squeeze(-1)
    right_term = -log_probs.gather(-1, (left + 1).unsqueeze(-1)).squeeze(-1)
    return left_term * (1 - right_weight) + right_term * right_weight


def aligned_iou(pred: torch.Tensor, target: torch.Tensor, generalized: bool = False) -> torch.Tensor:
    """IoU (or GIoU) of pred[i] with target[i], boxes xyxy, shape (P, 4) → (P,)."""
    wh = (torch.min(pred[:, 2:], target[:, 2:]) - torch.max(pred[:, :2], target[:, :2])).clamp(min=0)
    overlap = wh[:, 0] * wh[:, 1]
    area_p = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    union = area_p + area_t - overlap + BOX_EPS
    iou = overlap / union
    if not generalized:
        return iou
    enclose = (torch.max(pred[:, 2:], target[:, 2:]) - torch.min(pred[:, :2], target[:, :2])).clamp(min=0)
    enclose_area = enclose[:, 0] * enclose[:, 1] + BOX_EPS
    return iou - (enclose_area - union) / enclose_area


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − GIoU per aligned box pair, (P, 4) → (P,); in [0, 2)."""
    return 1 - aligned_iou(pred, target, generalized=True)


@dataclass(frozen=True)
class PicoDetLossConfig:
    """Loss weights and shapes of PicoDet's GFL head (papers.md §3.1)."""

    vfl_weight: float = 1.0
    vfl_alpha: float = 0.75
    vfl_gamma: float = 2.0
    dfl_weight: float = 0.25
    giou_weight: float = 2.0
    assigner: SimOTAConfig = field(default_factory=SimOTAConfig)


class PicoDetLoss(nn.Module):
    """Raw head outputs + per-image GT (boxes (M, 4) xyxy in input pixels, labels (M,)) → dict of losses.

    Keys: 'loss' (the sum), 'loss_vfl', 'loss_giou', 'loss_dfl', and 'num_pos' (detached, for logging).
    """

    def __init__(self, num_classes: int, strides: Sequence[int], reg_max: int = 7,
                 cfg: PicoDetLossConfig = PicoDetLossConfig()) -> None:
        super().__init__()
        self.num_classes, self.strides, self.reg_max, self.cfg = num_classes, tuple(strides), reg_max, cfg

    @fp32_loss
    def forward(self, raw: RawOutputs, gt_boxes: Sequence[torch.Tensor],
                gt_labels: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        class_maps, box_maps = raw
        cls_logits, box_logits = flatten_levels(class_maps), flatten_levels(box_maps)
        centers, strides = anchor_points([tuple(m.shape[-2:]) for m in class_maps], self.strides, cls_logits.device)
        pred_boxes = decode_boxes(box_logits, centers, strides, self.reg_max)
        images, anchors, targets, labels = self._assign(cls_logits, centers, strides, pred_boxes, gt_boxes, gt_labels)
        num_pos = max(images.numel(), 1)

        vfl_target = torch.zeros_like(cls_logits)
        if images.numel():
            ious = aligned_iou(pred_boxes[images, anchors].detach(), targets).clamp(min=0)
            vfl_target[images, anchors, labels] = ious
        loss_vfl = varifocal_loss(cls_logits, vfl_target, self.cfg.vfl_alpha, self.cfg.vfl_gamma).sum() / num_pos
        loss_giou, loss_dfl = self._box_losses(cls_logits, box_logits, pred_boxes, centers, strides,
                                               images, anchors, targets)
        losses = {
            "loss_vfl": self.cfg.vfl_weight * loss_vfl,
            "loss_giou": self.cfg.giou_weight * loss_giou,
            "loss_dfl": self.cfg.dfl_weight * loss_dfl,
        }
        losses["loss"] = losses["loss_vfl"] + losses["loss_giou"] + losses["loss_dfl"]
        losses["num_pos"] = torch.tensor(float(images.numel()), device=cls_logits.device)
        return losses

    def _assign(self, cls_logits, centers, strides, pred_boxes, gt_boxes, gt_labels):
        """Positives as flat index tensors: image, anchor, matched GT box (P, 4) and its label."""
        scores, boxes = cls_logits.detach().sigmoid(), pred_boxes.detach()
        images, anchors, targets, labels = [], [], [], []
        for i, (gt_b, gt_l) in enumerate(zip(gt_boxes, gt_labels)):
            gt_b = gt_b.to(boxes.device, boxes.dtype).reshape(-1, 4)
            gt_l = gt_l.to(boxes.device).long().reshape(-1)
            assigned = simota_assign(scores[i], centers, strides, boxes[i], gt_b, gt_l, self.cfg.assigner)
            positive = torch.nonzero(assigned >= 0).squeeze(1)
            images.append(torch.full_like(positive, i))
            anchors.append(positive)
            targets.append(gt_b[assigned[positive]])
            labels.append(gt_l[assigned[positive]])
        return torch.cat(images), torch.cat(anchors), torch.cat(targets), torch.cat(labels)

    def _box_losses(self, cls_logits, box_logits, pred_boxes, centers, strides, images, anchors, targets):
        if images.numel() == 0:
            zero = box_logits.sum() * 0  # keeps the graph connected so DDP sees every parameter used
            return zero, zero
        weights = cls_logits.detach()[images, anchors].sigmoid().max(dim=-1).values
        normaliser = weights.sum().clamp(min=1)
        loss_giou = (giou_loss(pred_boxes[images, anchors], targets) * weights).sum() / normaliser
        stride = strides[anchors][:, None]
        target_bins = box_to_distance(centers[anchors] / stride, targets / stride, self.reg_max - DFL_TARGET_MARGIN)
        bin_logits = box_logits[images, anchors].unflatten(-1, (4, self.reg_max + 1))
        dfl = distribution_focal_loss(bin_logits, target_bins).mean(dim=-1)  # the four sides averaged
        loss_dfl = (dfl * weights).sum() / normaliser
        return loss_giou, loss_dfl
