"""Training objectives for the gaze task: gaze regression and masked-image feature distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.hooks import FeatureCapture
from edgekd.distill.losses import KD_LOSSES
from edgekd.models import FeatureDecoder, PixelDecoder, eval_frozen_batchnorm_


class GazeRegression(nn.Module):
    """L1 on (yaw, pitch) in radians, as GazeGen trains its adapters."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def train(self, mode: bool = True) -> "GazeRegression":
        super().train(mode)
        eval_frozen_batchnorm_(self.model)  # frozen adapters keep their statistics too
        return self

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, targets = batch
        return {"loss": F.l1_loss(self.model(images), targets)}


def random_patch_mask(batch: int, height: int, width: int, patch: int, ratio: float) -> torch.Tensor:
    """(N, 1, H/patch, W/patch) with exactly round(ratio * cells) ones per image (1 = masked)."""
    rows, cols = height // patch, width // patch
    cells = rows * cols
    masked = max(1, round(ratio * cells))
    order = torch.rand(batch, cells).argsort(dim=1)
    mask = torch.zeros(batch, cells)
    mask.scatter_(1, order[:, :masked], 1.0)
    return mask.view(batch, 1, rows, cols)


def mask_weights_at(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The masked share of each cell of a (h, w) grid: exactly 0/1 where patches align with the grid."""
    return F.adaptive_avg_pool2d(mask, size) if mask.shape[-2:] != size else mask


class MaskedFeatureDistillation(nn.Module):
    """GazeGen Eq. 1: the student sees a masked image and reconstructs the masked pixels and, through
    decoders Ψ, the teacher's features at the named layers (captured by module path)."""

    def __init__(self, student: nn.Module, teacher: nn.Module, recipe_distill, student_channels, teacher_channels):
        super().__init__()
        self.student, self.teacher = student, teacher
        self.cfg = recipe_distill
        self.pairs = list(recipe_distill.pairs)
        self.student_capture = FeatureCapture(student, [p.student for p in self.pairs], role="student")
        self.teacher_capture = FeatureCapture(teacher, [p.teacher for p in self.pairs if p.teacher], role="teacher")
        self.decoders = nn.ModuleList(
            FeatureDecoder(student_channels[p.student], teacher_channels[p.teacher]) for p in self.pairs
        )
        self.pixel_decoder = PixelDecoder(student_channels["final"], stride=32, out_chans=1)
        self.teacher.requires_grad_(False)

    def train(self, mode: bool = True) -> "MaskedFeatureDistillation":
        super().train(mode)
        self.teacher.eval()  # the teacher is a fixed target: no BatchNorm updates
        eval_frozen_batchnorm_(self.student)  # the inherited, frozen stage 1 keeps the teacher's statistics
        return self

    def teacher_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The frozen teacher's features at the paired layers for the unmasked `images`, by module path (what
        `forward` reads from a batch's third element when the training set carries them)."""
        self.teacher.eval()  # a fixed target, also when called before training starts
        with torch.no_grad():
            self.teacher(images)
        return {p.teacher: self.teacher_capture.features[p.teacher] for p in self.pairs if p.teacher}

    def forward(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        images = batch[0]
        n, _, h, w = images.shape
        mask = random_patch_mask(n, h, w, self.cfg.mask_patch, self.cfg.mask_ratio).to(images)
        pixel_mask = F.interpolate(mask, size=(h, w), mode="nearest")
        teacher = batch[2] if len(batch) > 2 else self.teacher_maps(images)
        final = self.student.forward_features(images * (1.0 - pixel_mask))
        terms = {"pixel": KD_LOSSES.get("masked_mse")(self.pixel_decoder(final), images, pixel_mask)}
        loss = self.cfg.pixel_weight * terms["pixel"]
        for i, (pair, decoder) in enumerate(zip(self.pairs, self.decoders)):
            target = teacher[pair.teacher]
            weights = mask_weights_at(mask, tuple(target.shape[-2:]))
            term = KD_LOSSES.get(pair.loss)(decoder(self.student_capture.features[pair.student]), target, weights)
            terms[f"kd{i}"] = term
            loss = loss + pair.weight * term
        return {"loss": loss, **terms}
