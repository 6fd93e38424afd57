"""Training objectives for `fit`: the detection loss alone, and detection + feature KD from a frozen teacher.

Each takes a batch of (images, padded targets) and returns the dict `fit` optimises ('loss') and logs; the KD
objective also takes (images, padded targets, the teacher's maps by path) from a set that carries them.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from edgekd.distill.hooks import FeatureCapture
from edgekd.tasks.layout.common import split_targets
from edgekd.tasks.layout.det_losses import PicoDetLoss


def detection_loss(model) -> PicoDetLoss:
    return PicoDetLoss(num_classes=model.num_classes, strides=model.strides, reg_max=model.reg_max)


def _logged(losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"vfl": losses["loss_vfl"].detach(), "giou": losses["loss_giou"].detach(),
            "dfl": losses["loss_dfl"].detach()}


class DetectionObjective(nn.Module):
    """PicoDet's loss (VFL + GIoU + DFL, SimOTA assignment) on the ground truth."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = detection_loss(model)

    def forward(self, batch) -> dict[str, torch.Tensor]:
        images, targets = batch
        truth = split_targets(targets)
        losses = self.loss_fn(self.model(images), truth.boxes, truth.labels)
        return {"loss": losses["loss"], **_logged(losses)}


class FeatureDistillObjective(nn.Module):
    """Detection loss + `scale` × Σ_levels KD(student level, teacher level), features captured by module path.

    The teacher is frozen and stays in eval mode (its BatchNorm statistics are the ones it was trained with);
    the KD losses' own modules (FGD's global-context blocks) train with the student.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, kd_losses: Sequence[nn.Module],
                 student_paths: Sequence[str], teacher_paths: Sequence[str], image_size: tuple[int, int],
                 scale: float) -> None:
        super().__init__()
        self.student = student
        self.teacher = teacher.eval().requires_grad_(False)
        self.kd_losses = nn.ModuleList(kd_losses)
        self.loss_fn = detection_loss(student)
        self.pairs = list(zip(student_paths, teacher_paths))
        self.image_size, self.scale = image_size, scale
        self.student_features = FeatureCapture(student, student_paths, "student")
        self.teacher_features = FeatureCapture(teacher, teacher_paths, "teacher")

    def train(self, mode: bool = True) -> "FeatureDistillObjective":
        super().train(mode)
        self.teacher.eval()
        return self

    def teacher_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The frozen teacher's distilled maps for `images`, by module path (what `forward` reads from a batch's
        third element when the training set carries them, `edgekd.distill.teacher_cache`)."""
        with torch.no_grad():
            self.teacher.forward_features(images)  # the hooks record every neck level
        return {path: self.teacher_features.features[path] for _, path in self.pairs}

    def forward(self, batch) -> dict[str, torch.Tensor]:
        images, targets = batch[0], batch[1]
        truth = split_targets(targets)
        losses = self.loss_fn(self.student(images), truth.boxes, truth.labels)
        teacher = batch[2] if len(batch) > 2 else self.teacher_maps(images)
        kd = sum(loss(self.student_features.features[s], teacher[t], truth.boxes, self.image_size)["loss"]
                 for loss, (s, t) in zip(self.kd_losses, self.pairs))
        kd = self.scale * kd
        return {"loss": losses["loss"] + kd, "det": losses["loss"].detach(), "kd": kd.detach(), **_logged(losses)}

    def remove_hooks(self) -> None:
        self.student_features.remove()
        self.teacher_features.remove()
