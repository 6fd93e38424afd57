"""MonoTAKD losses (papers.md §4.2): BEV distillation through a teaching assistant, and logit KD from a LiDAR teacher.

Maps: F_T teacher (LiDAR) BEV, F_TA TA BEV, F_S student BEV, F_S' student residual branch, all (N, C, H, W).

    n(x)   = (x − min x) / (max x − min x)                     global min-max, per sample by default
    F_res  = |n(F_TA) − F_T|, entries < 0.6·max(F_res) set to 0   (F_T is not normalised, as in the official code)
    IMD    = mean((n(F_TA) − n(F_S))²)
    CMRD   = mean((F_res − F_S')²)
    BEV KD = IMD + 0.2·CMRD

Normalisation scope: the official `normalize_` takes min and max over the whole batch tensor; it trains with one
sample per GPU, where that is per sample. `scope="sample"` (default) keeps that meaning at any batch size, so a
sample's target does not depend on what else is in the batch; `scope="batch"` reproduces the code literally.

Gradients: the official `normalize_` detaches (`.cpu().detach()`), so IMD gives the student no gradient there and
only CMRD and the logit KD train it. Here IMD keeps the gradient (the paper's intent); `detach=True` is the
official behaviour. F_T and F_TA come from frozen models and are targets either way.

Logit KD (official `AnchorHeadSingleCMKD_V2`, on center-head maps here): s = sigmoid(teacher heatmap logit);
cells with s > 0.1 are positives.
    cls  2.0 × Σ QFL(student logit, s) / max(#positives, 1)      QFL = BCE(x, s)·|sigmoid(x) − s|^β, β = 2
    box  2.0 × Σ_pos s · Σ_ch smoothL1_{1/9}(student − teacher) / max(#positives, 1), over the box channels and
         the yaw axis (sin 2ry, cos 2ry) — the center-head form of the official sine-difference yaw term
    dir  0.4 × Σ_pos s · BCE(student direction logit, sigmoid(teacher direction logit)) / max(#positives, 1)
The direction is the official 2-bin direction classifier as one logit. Per-sample sums are averaged over the
batch (the official code sums cls over the batch and divides box by it; equal at its batch size of one per GPU).

Registered in `edgekd.distill.losses.KD_LOSSES` when this module is imported: imd, cmrd, bev_kd, qfl, logit_kd,
depth_focal.
"""

from __future__ import annotations

from typing import Literal, Mapping, Optional

import torch
import torch.nn.functional as F

from edgekd.compute import fp32_loss
from edgekd.distill.losses import KD_LOSSES

Scope = Literal["sample", "batch"]
RESIDUAL_THRESHOLD = 0.6
CMRD_WEIGHT = 0.2
POSITIVE_SCORE = 0.1
SMOOTH_L1_BETA = 1.0 / 9.0  # OpenPCDet's WeightedSmoothL1Loss default


def minmax_normalise(x: torch.Tensor, scope: Scope = "sample", detach: bool = False,
                     eps: float = 1e-12) -> torch.Tensor:
    """Global min-max normalisation to [0, 1]: over each sample's C·H·W values, or over the whole batch.

    >>> minmax_normalise(torch.tensor([[[[1.0, 3.0]]]]))
    tensor([[[[0., 1.]]]])
    """
    if detach:
        x = x.detach()
    dims = tuple(range(1, x.dim())) if scope == "sample" else tuple(range(x.dim()))
    low = x.amin(dim=dims, keepdim=True)
    high = x.amax(dim=dims, keepdim=True)
    return (x - low) / (high - low).clamp_min(eps)


def residual_target(assistant: torch.Tensor, teacher: torch.Tensor, threshold: float = RESIDUAL_THRESHOLD,
                    scope: Scope = "sample") -> torch.Tensor:
    """F_res = |n(F_TA) − F_T| with entries below threshold·max(F_res) (same scope) set to zero; no gradient."""
    with torch.no_grad():
        residual = (minmax_normalise(assistant, scope) - teacher).abs()
        dims = tuple(range(1, residual.dim())) if scope == "sample" else tuple(range(residual.dim()))
        peak = residual.amax(dim=dims, keepdim=True)
        return torch.where(residual < threshold * peak, torch.zeros_like(residual), residual)


def _masked_mean(squared: torch.Tensor, weight_map: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean over all elements; with an (N, 1, H, W) mask, Σ(err·mask) / (C·Σmask), the official normaliser."""
    if weight_map is None:
        return squared.mean()
    weights = weight_map.to(squared.dtype).expand_as(squared)
    return (squared * weights).sum() / weights.sum().clamp_min(1e-8)


@KD_LOSSES.register("imd")
@fp32_loss
def imd(student: torch.Tensor, teacher: torch.Tensor, weight_map: Optional[torch.Tensor] = None, *,
        detach: bool = False, scope: Scope = "sample") -> torch.Tensor:
    """Intra-modal distillation: mean((n(F_TA) − n(F_S))²); `student` is F_S, `teacher` is the TA's F_TA."""
    target = minmax_normalise(teacher, scope, detach=True)
    return _masked_mean((target - minmax_normalise(student, scope, detach=detach)) ** 2, weight_map)


@KD_LOSSES.register("cmrd")
@fp32_loss
def cmrd(student: torch.Tensor, teacher: torch.Tensor, weight_map: Optional[torch.Tensor] = None, *,
         assistant: torch.Tensor, threshold: float = RESIDUAL_THRESHOLD, scope: Scope = "sample") -> torch.Tensor:
    """Cross-modal residual distillation: mean((F_res − F_S')²); student F_S', teacher F_T, assistant F_TA."""
    return _masked_mean((residual_target(assistant, teacher, threshold, scope) - student) ** 2, weight_map)


@KD_LOSSES.register("bev_kd")
@fp32_loss
def bev_kd(student: torch.Tensor, teacher: torch.Tensor, weight_map: Optional[torch.Tensor] = None, *,
           student_residual: torch.Tensor, assistant: torch.Tensor, cmrd_weight: float = CMRD_WEIGHT,
           detach: bool = False, scope: Scope = "sample") -> torch.Tensor:
    """L_bev = IMD(F_S, F_TA) + 0.2·CMRD(F_S', F_T, F_TA); `student` F_S, `teacher` F_T."""
    intra = imd(student, assistant, weight_map, detach=detach, scope=scope)
    return intra + cmrd_weight * cmrd(student_residual, teacher, weight_map, assistant=assistant, scope=scope)


def _per_sample_mean(per_cell: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Σ over each sample's cells / max(#positives in the sample, 1), averaged over the batch."""
    total = per_cell.flatten(1).sum(dim=1)
    count = positives.flatten(1).sum(dim=1).clamp_min(1.0)
    return (total / count).mean()


@KD_LOSSES.register("qfl")
@fp32_loss
def quality_focal(student: torch.Tensor, teacher: torch.Tensor, weight_map: Optional[torch.Tensor] = None, *,
                  beta: float = 2.0, positive_score: float = POSITIVE_SCORE) -> torch.Tensor:
    """Quality focal loss of student logits to sigmoid(teacher logits), normalised by teacher positives."""
    soft = torch.sigmoid(teacher.detach())
    scale = (torch.sigmoid(student) - soft).abs().pow(beta)
    per_cell = F.binary_cross_entropy_with_logits(student, soft, reduction="none") * scale
    return _per_sample_mean(per_cell, (soft > positive_score).to(per_cell.dtype))


@fp32_loss
def score_weighted_regression(student: torch.Tensor, teacher: torch.Tensor, teacher_logits: torch.Tensor,
                              positive_score: float = POSITIVE_SCORE, beta: float = SMOOTH_L1_BETA) -> torch.Tensor:
    """Σ_cells [s > 0.1]·s·Σ_ch smoothL1(student − teacher) / max(#positives, 1), batch mean.

    s = sigmoid(teacher_logits), summed over classes (one class here).
    """
    error = F.smooth_l1_loss(student, teacher.detach(), reduction="none", beta=beta)
    return _score_weighted(error, teacher_logits, positive_score)


def _score_weighted(error: torch.Tensor, teacher_logits: torch.Tensor, positive_score: float) -> torch.Tensor:
    """Σ_cells [s > positive_score]·s·Σ_ch error / max(#positives, 1), batch mean; s = Σ_classes sigmoid(logits)."""
    score = torch.sigmoid(teacher_logits.detach()).sum(dim=1, keepdim=True)
    positives = (score > positive_score).to(error.dtype)
    return _per_sample_mean(error.sum(dim=1, keepdim=True) * score * positives, positives)


@fp32_loss
def score_weighted_bce(student: torch.Tensor, teacher: torch.Tensor, teacher_logits: torch.Tensor,
                       positive_score: float = POSITIVE_SCORE) -> torch.Tensor:
    """Σ_cells [s > 0.1]·s·BCE(student logit, sigmoid(teacher logit)) / max(#positives, 1), batch mean; s as in
    `score_weighted_regression`."""
    error = F.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher.detach()), reduction="none")
    return _score_weighted(error, teacher_logits, positive_score)


@fp32_loss
def logit_kd_terms(student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor], *,
                   cls_weight: float = 2.0, box_weight: float = 2.0, dir_weight: float = 0.4,
                   beta: float = 2.0) -> dict[str, torch.Tensor]:
    """Weighted cls / box / dir terms of the logit KD between head dicts {"heatmap", "box", "rot", "dir"}, and
    'total'."""
    logits = teacher["heatmap"]
    student_box = torch.cat([student["box"], student["rot"]], dim=1)
    teacher_box = torch.cat([teacher["box"], teacher["rot"]], dim=1)
    terms = {
        "cls": cls_weight * quality_focal(student["heatmap"], logits, beta=beta),
        "box": box_weight * score_weighted_regression(student_box, teacher_box, logits),
        "dir": dir_weight * score_weighted_bce(student["dir"], teacher["dir"], logits),
    }
    terms["total"] = terms["cls"] + terms["box"] + terms["dir"]
    return terms


@KD_LOSSES.register("logit_kd")
@fp32_loss
def logit_kd(student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor],
             weight_map: Optional[torch.Tensor] = None, **weights: float) -> torch.Tensor:
    """MonoTAKD's head KD (2.0 QFL + 2.0 box + 0.4 direction) between head dicts; see `logit_kd_terms`."""
    return logit_kd_terms(student, teacher, **weights)["total"]


@KD_LOSSES.register("depth_focal")
@fp32_loss
def depth_focal(student: torch.Tensor, teacher: torch.Tensor, weight_map: Optional[torch.Tensor] = None, *,
                foreground: Optional[torch.Tensor] = None, alpha: float = 0.25, gamma: float = 2.0,
                fg_weight: float = 13.0, bg_weight: float = 1.0) -> torch.Tensor:
    """CaDDN's depth loss: focal loss of depth logits (N, D, H, W) to target bins (N, H, W), fg/bg balanced.

    Per pixel −α(1 − p_t)^γ log p_t (softmax over bins), times fg_weight inside 2D boxes (`foreground`, bool
    (N, H, W)) and bg_weight elsewhere, summed and divided by the number of pixels that have a target. A target
    of −1 marks a pixel without one (no LiDAR return) and is ignored; `weight_map` is unused.
    """
    valid = teacher >= 0
    log_p = F.log_softmax(student, dim=1).gather(1, teacher.clamp_min(0).unsqueeze(1)).squeeze(1)
    per_pixel = -alpha * (1 - log_p.exp()).pow(gamma) * log_p
    weights = torch.full_like(per_pixel, bg_weight)
    if foreground is not None:
        weights = torch.where(foreground, torch.full_like(per_pixel, fg_weight), weights)
    weights = weights * valid.to(per_pixel.dtype)
    return (per_pixel * weights).sum() / valid.sum().clamp_min(1)
