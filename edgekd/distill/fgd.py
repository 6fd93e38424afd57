"""FGD: Focal and Global Distillation for detectors (Yang et al., CVPR 2022), as in PP-StructureV2 (papers.md §3.2).

Per feature level, with F_T the teacher's and f(F_S) the (aligned) student's N x C x H x W features:

    A^S = H*W * softmax_ij(mean_c |F| / T)        A^C = C * softmax_c(mean_ij |F| / T)
    M_fg(i, j) = 1 / (cells of box r)  inside box r (largest value where boxes overlap: small boxes win)
    M_bg(i, j) = 1[M_fg(i, j) = 0] / N_bg          (per image)
    L_fg = sum M_fg * A^S_T * A^C_T * (F_T - f(F_S))^2 / N       (sum over C, H, W and the batch)
    L_bg = the same with M_bg
    L_at = (sum |A^C_S - A^C_T| + sum |A^S_S - A^S_T|) / N
    L_global = sum (R_T(F_T) - R_S(f(F_S)))^2 / N,  R(F) = F + W_v2(ReLU(LN(W_v1(sum_j softmax_j(W_k F)_j F_j))))
    loss = alpha * L_fg + beta * L_bg + gamma * L_at + lambda * L_global

Choices where the official implementations (yzd-v/FGD for mmdet, PaddleDetection's FGDFeatureLoss) leave room, each
also noted where it is made:
- Box to cells: a box scaled to the map covers cells floor(x0)..ceil(x1)-1 (every cell it touches). Both official
  versions mark floor(x0)..ceil(x1) inclusive, one extra row and column; here 1/(cells) makes each lone box's mask
  sum to exactly 1, which is what "1 / box area" intends. Cell counts are taken after clipping to the map, and a
  box thinner than a cell still marks one cell.
- An image without boxes is all background (as in the mmdet code; PaddleDetection drops such images instead).
- The teacher's features are detached (the teacher is frozen), but the teacher-side GcBlock is a trainable part of
  this loss, as in both official versions: its parameters get gradients through R_T(F_T).
- W_k is Kaiming-initialised (fan-in) and W_v2 zero-initialised, as in the mmdet code, so R(F) = F at the start and
  L_global starts as a plain sum of squared differences; W_v1 keeps PyTorch's default initialisation.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from edgekd.compute import fp32_loss
from edgekd.distill.feature_kd import FEATURE_KD, align_conv, check_pair


class GcBlock(nn.Module):
    """Global-context block (GCNet) of FGD's global term: R(F) = F + W_v2(ReLU(LN(W_v1(context(F)))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"GcBlock needs at least 2 channels (it squeezes to channels // 2), got {channels}")
        self.context_mask = nn.Conv2d(channels, 1, kernel_size=1)  # W_k
        self.transform = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=1),  # W_v1
            nn.LayerNorm([channels // 2, 1, 1]),
            nn.ReLU(),
            nn.Conv2d(channels // 2, channels, kernel_size=1),  # W_v2
        )
        nn.init.kaiming_normal_(self.context_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.context_mask.bias)
        nn.init.zeros_(self.transform[-1].weight)
        nn.init.zeros_(self.transform[-1].bias)

    def context(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C, 1, 1): the features averaged over positions with weights softmax_j(W_k F_j)."""
        n, c, h, w = features.shape
        weights = torch.softmax(self.context_mask(features).reshape(n, 1, h * w), dim=2)  # (N, 1, HW)
        return torch.einsum("nck,nok->nc", features.reshape(n, c, h * w), weights).reshape(n, c, 1, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.transform(self.context(features))


def attention(features: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial (N, H, W) and channel (N, C) attention: H*W * softmax(mean_c|F| / T), C * softmax(mean_hw|F| / T)."""
    n, c, h, w = features.shape
    magnitude = features.abs()
    spatial = h * w * torch.softmax((magnitude.mean(dim=1) / temperature).reshape(n, -1), dim=1)
    channel = c * torch.softmax(magnitude.mean(dim=(2, 3)) / temperature, dim=1)
    return spatial.reshape(n, h, w), channel


def box_cells(boxes: torch.Tensor, image_size: tuple[int, int], map_size: tuple[int, int]) -> torch.Tensor:
    """(n, 4) int64 cell ranges [col0, row0, col1, row1) (ends exclusive) covered by xyxy pixel boxes on the map."""
    (image_h, image_w), (h, w) = image_size, map_size
    scale = torch.tensor([w / image_w, h / image_h, w / image_w, h / image_h], dtype=torch.float64, device=boxes.device)
    scaled = boxes.to(torch.float64) * scale  # float64: exact floor/ceil on cell edges
    # Every cell the box touches: floor of the start, ceil of the end (the official code adds one more cell).
    start = scaled[:, :2].floor().long()
    end = scaled[:, 2:].ceil().long()
    limit = torch.tensor([w, h], device=boxes.device)
    start = torch.minimum(start.clamp(min=0), limit - 1)
    end = torch.maximum(end.clamp(max=limit), start + 1)  # a box thinner than a cell still marks one
    return torch.cat([start, end], dim=1)


def focal_masks(boxes: Sequence[torch.Tensor], image_size: tuple[int, int], map_size: tuple[int, int],
                dtype: torch.dtype = torch.float32,
                device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground and background masks, each (N, H, W), for one feature map of the batch."""
    h, w = map_size
    foreground = torch.zeros(len(boxes), h, w, dtype=dtype, device=device)
    rows, cols = torch.arange(h, device=device), torch.arange(w, device=device)
    for i, image_boxes in enumerate(boxes):
        if len(image_boxes) == 0:
            continue
        cells = box_cells(image_boxes.reshape(-1, 4).to(device), image_size, map_size)
        in_rows = (rows >= cells[:, 1:2]) & (rows < cells[:, 3:4])  # (n, H)
        in_cols = (cols >= cells[:, 0:1]) & (cols < cells[:, 2:3])  # (n, W)
        # Cells counted after clipping, so an isolated box's mask sums to 1 (the official code counts the unclipped,
        # one-cell-larger range).
        value = 1.0 / ((cells[:, 3] - cells[:, 1]) * (cells[:, 2] - cells[:, 0])).to(dtype)
        per_box = (in_rows[:, :, None] & in_cols[:, None, :]).to(dtype) * value[:, None, None]
        foreground[i] = per_box.amax(dim=0)  # overlaps keep the larger value: the smaller box wins
    background = (foreground == 0).to(dtype)
    counts = background.sum(dim=(1, 2), keepdim=True)
    background = torch.where(counts > 0, background / counts.clamp_min(1), background)
    return foreground, background


@FEATURE_KD.register("fgd")
class FGD(nn.Module):
    """Focal and Global Distillation loss for one feature level (defaults: PP-StructureV2 layout, papers.md §3.2)."""

    def __init__(self, student_channels: int, teacher_channels: int, temperature: float = 0.5,
                 alpha_fg: float = 1e-3, beta_bg: float = 5e-4, gamma_at: float = 5e-4, lambda_global: float = 5e-6,
                 normalize: bool = False) -> None:
        super().__init__()
        self.align = align_conv(student_channels, teacher_channels)  # identity when the widths already match
        self.temperature = temperature
        self.weights = {"fg": alpha_fg, "bg": beta_bg, "attention": gamma_at, "global": lambda_global}
        self.normalize = normalize
        self.student_gc = GcBlock(teacher_channels)
        self.teacher_gc = GcBlock(teacher_channels)

    @fp32_loss
    def forward(self, student: torch.Tensor, teacher: torch.Tensor, boxes: Sequence[torch.Tensor],
                image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        check_pair(student, teacher, "fgd")
        if len(boxes) != student.shape[0]:
            raise ValueError(f"fgd: {len(boxes)} box lists for a batch of {student.shape[0]}")
        teacher = teacher.detach()  # the teacher is frozen; only this loss's own modules and the student learn
        if self.align is not None:
            student = self.align(student)
        if self.normalize:
            student, teacher = _channel_norm(student), _channel_norm(teacher)
        terms = self._terms(student, teacher, boxes, image_size)
        terms["loss"] = sum(self.weights[name] * terms[name] for name in self.weights)
        return terms

    def _terms(self, student: torch.Tensor, teacher: torch.Tensor, boxes: Sequence[torch.Tensor],
               image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        n = student.shape[0]
        spatial_s, channel_s = attention(student, self.temperature)
        spatial_t, channel_t = attention(teacher, self.temperature)
        map_size = (student.shape[2], student.shape[3])
        foreground, background = focal_masks(boxes, image_size, map_size, student.dtype, student.device)
        # The teacher's attention weights both the student's and the teacher's features.
        weighted = (teacher - student).pow(2) * spatial_t[:, None] * channel_t[:, :, None, None]
        return {
            "fg": (weighted * foreground[:, None]).sum() / n,
            "bg": (weighted * background[:, None]).sum() / n,
            "attention": ((channel_s - channel_t).abs().sum() + (spatial_s - spatial_t).abs().sum()) / n,
            "global": (self.teacher_gc(teacher) - self.student_gc(student)).pow(2).sum() / n,
        }


def _channel_norm(features: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per channel over batch and positions (PaddleDetection's `normalize` option)."""
    mean = features.mean(dim=(0, 2, 3), keepdim=True)
    std = features.std(dim=(0, 2, 3), keepdim=True)
    return (features - mean) / (std + 1e-6)
