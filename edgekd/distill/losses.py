"""Registered KD losses. Each takes (student, teacher, weight_map=None) and returns a scalar tensor.

`weight_map` is (N, 1, H, W) or broadcastable: the share of each position that counts (GazeGen counts only
masked positions; a fractional weight covers feature cells that are partly masked).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from edgekd.compute import fp32_loss
from edgekd.registry import Registry

KDLoss = Callable[..., torch.Tensor]
KD_LOSSES: Registry[KDLoss] = Registry("KD loss")


def _weighted_mean(per_position: torch.Tensor, weight_map: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean of a (N, H, W) error map, weighted by `weight_map`; plain mean without one."""
    if weight_map is None:
        return per_position.mean()
    weights = weight_map.reshape(per_position.shape).to(per_position.dtype)
    return (per_position * weights).sum() / weights.sum().clamp_min(1e-8)


@KD_LOSSES.register("mse")
@fp32_loss
def mse(student: torch.Tensor, teacher: torch.Tensor, weight_map: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean squared error over every element (weight_map ignored)."""
    return F.mse_loss(student, teacher)


@KD_LOSSES.register("l1")
@fp32_loss
def l1(student: torch.Tensor, teacher: torch.Tensor, weight_map: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean absolute error over every element (weight_map ignored)."""
    return F.l1_loss(student, teacher)


@KD_LOSSES.register("masked_mse")
@fp32_loss
def masked_mse(student: torch.Tensor, teacher: torch.Tensor, weight_map: Optional[torch.Tensor] = None) -> torch.Tensor:
    """GazeGen Eq. 1 term: squared error averaged over channels, then over masked positions.

    student/teacher are (N, C, H, W); the result is (1/phi(K)) * sum_{k in K} mean_c (t_k - s_k)^2.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"masked_mse: student {tuple(student.shape)} vs teacher {tuple(teacher.shape)}")
    per_position = (student - teacher).pow(2).mean(dim=1)
    return _weighted_mean(per_position, weight_map)
from edgekd.distill import takd as _takd  # noqa: E402,F401  (registers imd, cmrd, bev_kd, qfl, logit_kd, depth_focal)
