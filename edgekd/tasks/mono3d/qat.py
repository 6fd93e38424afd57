"""The quantization-aware fine-tuning loss of the deployed student, on its exported output (maps).

The shared QAT stage applies one loss twice: against the training targets and against the float student's
outputs. Here the two differ in form, told apart by their channel count:
- ground truth (N, 11, Zh, Xh) = heatmap, box (6), yaw axis (2), direction, mask: the student's own detection loss;
- float maps (N, 10, Zh, Xh) = score, box (6), yaw axis (2), direction probability: the logit KD of TAKD (quality
  focal loss to the float scores, score-weighted regression of box and yaw axis, score-weighted cross-entropy to
  the float direction), i.e. the float student teaches its int8 copy.
"""

from __future__ import annotations

import torch

from edgekd.distill.takd import logit_kd_terms
from edgekd.tasks.mono3d.common import head_of_maps as head_of
from edgekd.tasks.mono3d.heads import MAP_CHANNELS, TARGET_CHANNELS as GT_CHANNELS
from edgekd.tasks.mono3d.objectives import split_targets
from edgekd.tasks.mono3d.targets import detection_loss


def maps_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Detection loss against GT target maps, or logit KD against reference maps (see the module docstring)."""
    if targets.shape[1] == GT_CHANNELS:
        return detection_loss(head_of(outputs), split_targets(targets))["total"]
    if targets.shape[1] == MAP_CHANNELS:
        return logit_kd_terms(head_of(outputs), head_of(targets))["total"]
    raise ValueError(f"maps_loss: targets have {targets.shape[1]} channels, expected {GT_CHANNELS} or {MAP_CHANNELS}")
