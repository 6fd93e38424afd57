"""Feature-distillation losses that need boxes or own parameters (alignment convs, attention blocks).

Unlike the plain functions in `losses.KD_LOSSES`, these are nn.Modules, one per distilled feature level:

    loss = FEATURE_KD.get("fgd")(student_channels=96, teacher_channels=96, temperature=0.5)
    terms = loss(student_nchw, teacher_nchw, boxes=[xyxy per image], image_size=(320, 256))
    terms["loss"].backward()

`forward(student, teacher, boxes, image_size)` returns a dict with 'loss' (the weighted total) and one key per term.
Boxes are xyxy in input-image pixels; `image_size` is the input's (H, W). The teacher side never receives gradients.
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.compute import fp32_loss
from edgekd.errors import EdgekdError
from edgekd.registry import Registry, closest

FEATURE_KD: Registry[type[nn.Module]] = Registry("feature KD loss")


def build_feature_kd(name: str, student_channels: int, teacher_channels: int, **params: Any) -> nn.Module:
    """Instantiate a registered feature KD loss; unknown parameters get a did-you-mean.

    >>> fgd = build_feature_kd("fgd", 96, 96, alpha_fg=2e-3)
    """
    cls = FEATURE_KD.get(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "student_channels",
                                                                                  "teacher_channels")]
    for key in params:
        if key not in accepted:
            hint = closest(key, accepted)
            suggestion = f"did you mean '{hint}'?" if hint else f"parameters: {', '.join(accepted) or 'none'}"
            raise EdgekdError(f"feature KD loss '{name}' has no parameter '{key}' ({suggestion})")
    return cls(student_channels, teacher_channels, **params)


def align_conv(student_channels: int, teacher_channels: int) -> nn.Conv2d | None:
    """A 1x1 conv mapping student channels to teacher channels, or None when they already match."""
    if student_channels == teacher_channels:
        return None
    return nn.Conv2d(student_channels, teacher_channels, kernel_size=1)


def check_pair(student: torch.Tensor, teacher: torch.Tensor, name: str) -> None:
    if student.dim() != 4 or teacher.dim() != 4 or student.shape[0] != teacher.shape[0] \
            or student.shape[-2:] != teacher.shape[-2:]:
        raise ValueError(f"{name}: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} must be NCHW "
                         "with the same batch and spatial size")


@FEATURE_KD.register("feature_mse")
class FeatureMSE(nn.Module):
    """Plain mean squared error between the (aligned) student and teacher features: FGD's comparison baseline."""

    def __init__(self, student_channels: int, teacher_channels: int, weight: float = 1.0) -> None:
        super().__init__()
        self.align = align_conv(student_channels, teacher_channels)
        self.weight = weight

    @fp32_loss
    def forward(self, student: torch.Tensor, teacher: torch.Tensor, boxes: Sequence[torch.Tensor] | None = None,
                image_size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
        check_pair(student, teacher, "feature_mse")
        aligned = self.align(student) if self.align is not None else student
        mse = F.mse_loss(aligned, teacher.detach())
        return {"loss": self.weight * mse, "mse": mse}


from edgekd.distill import fgd as _fgd  # noqa: E402,F401  (registers "fgd"; imported here so users never need to)
