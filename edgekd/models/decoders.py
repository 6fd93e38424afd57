"""Distillation-only decoders for the student (papers.md §1.2): feature decoder Ψ and a pixel decoder.

Both are built from timm's ConvNeXt V2 block (dwconv 7×7 → LayerNorm → 1×1 conv ×4 → GELU → GRN → 1×1 conv →
residual), used here in its NCHW (`conv_mlp=True`) form. They are dropped after distillation.

>>> psi = FeatureDecoder(40, 160)                       # student stage 3 → teacher stage 3
>>> psi(torch.zeros(1, 40, 4, 4)).shape
torch.Size([1, 160, 4, 4])
"""

from __future__ import annotations

import torch
from timm.models.convnext import ConvNeXtBlock
from torch import nn


def convnextv2_block(dim: int) -> nn.Module:
    """One ConvNeXt V2 block on NCHW tensors, no layer scale, no drop path."""
    return ConvNeXtBlock(dim, conv_mlp=True, use_grn=True, ls_init_value=None)


class FeatureDecoder(nn.Module):
    """Ψ(z) = FC(z + Conv1×1(GRN(GELU(Conv1×1(LN(DWConv7×7(z))))))), FC a 1×1 conv from student to teacher width."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = convnextv2_block(in_channels)
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.proj(self.block(z))


class PixelDecoder(nn.Module):
    """Reconstructs the (N, out_chans, H, W) image from a stride-`stride` feature map.

    1×1 embed to `hidden` → ConvNeXt V2 block → 1×1 conv to stride²·out_chans per position → PixelShuffle.
    Kept narrow: it only has to carry the masked-autoencoding signal during distillation.

    >>> PixelDecoder(80, stride=32)(torch.zeros(1, 80, 2, 2)).shape
    torch.Size([1, 1, 64, 64])
    """

    def __init__(self, in_channels: int, stride: int, out_chans: int = 1, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Conv2d(in_channels, hidden, kernel_size=1)
        self.block = convnextv2_block(hidden)
        self.pred = nn.Conv2d(hidden, stride * stride * out_chans, kernel_size=1)
        self.shuffle = nn.PixelShuffle(stride)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.pred(self.block(self.embed(z))))
