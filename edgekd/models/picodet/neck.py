"""CSP-PAN neck of PP-PicoDet: depthwise, one CSP block per fusion, one width for every level (papers.md §3.1).

Inputs are the backbone's stride-8/16/32 maps; each is first squeezed to `channels` by a 1×1 conv, then fused
top-down and bottom-up. With `levels=4` a stride-64 level is added as in PaddleDetection's CSPPAN: two
stride-2 depthwise-separable convs, one on the squeezed top input and one on the stride-32 output, summed.

Every output passes through `outputs.{i}` (an identity), so distillation hooks name the neck levels as
`neck.outputs.0` … `neck.outputs.3` (strides 8 … 64) without model surgery.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def conv_bn_act(in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (no bias) → BatchNorm → hard-swish."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_ch), nn.Hardswish())


class DepthwiseSeparable(nn.Sequential):
    """Depthwise k×k (stride s) → BN → hard-swish → pointwise 1×1 → BN → hard-swish (PicoDet's DPModule)."""

    def __init__(self, channels: int, kernel: int = 5, stride: int = 1) -> None:
        super().__init__(conv_bn_act(channels, channels, kernel, stride, groups=channels),
                         conv_bn_act(channels, channels, 1))


class CSPLayer(nn.Module):
    """Cross-stage-partial fusion: half the channels go through `blocks`, half skip; a 1×1 conv merges them."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 5, num_blocks: int = 1) -> None:
        super().__init__()
        mid = out_ch // 2
        self.main_conv = conv_bn_act(in_ch, mid)
        self.short_conv = conv_bn_act(in_ch, mid)
        # A Darknet bottleneck without its identity (as in PicoDet): 1×1 then depthwise-separable k×k.
        self.blocks = nn.Sequential(
            *(nn.Sequential(conv_bn_act(mid, mid), DepthwiseSeparable(mid, kernel)) for _ in range(num_blocks))
        )
        self.final_conv = conv_bn_act(2 * mid, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_conv(torch.cat([self.blocks(self.main_conv(x)), self.short_conv(x)], dim=1))


class CSPPAN(nn.Module):
    """Path aggregation over three backbone maps → `levels` (3 or 4) maps of `channels` channels each.

    Input sides must be multiples of 32 (nearest ×2 upsampling has to land on the next finer map).
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 128, levels: int = 4, kernel: int = 5,
                 num_csp_blocks: int = 1) -> None:
        super().__init__()
        if len(in_channels) != 3 or levels not in (3, 4):
            raise ValueError(f"CSPPAN takes 3 inputs and gives 3 or 4 levels, got {len(in_channels)} → {levels}")
        self.channels, self.levels = channels, levels
        self.squeeze = nn.ModuleList(conv_bn_act(c, channels) for c in in_channels)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.top_down = nn.ModuleList(CSPLayer(2 * channels, channels, kernel, num_csp_blocks) for _ in range(2))
        self.downsample = nn.ModuleList(DepthwiseSeparable(channels, kernel, stride=2) for _ in range(2))
        self.bottom_up = nn.ModuleList(CSPLayer(2 * channels, channels, kernel, num_csp_blocks) for _ in range(2))
        if levels == 4:
            self.extra_from_input = DepthwiseSeparable(channels, kernel, stride=2)
            self.extra_from_output = DepthwiseSeparable(channels, kernel, stride=2)
        self.outputs = nn.ModuleList(nn.Identity() for _ in range(levels))

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        inputs = [squeeze(f) for squeeze, f in zip(self.squeeze, features)]
        # Top-down: coarse to fine, each fused with the next finer input.
        inner = [inputs[2]]
        for step, finer in enumerate((inputs[1], inputs[0])):
            inner.insert(0, self.top_down[step](torch.cat([self.upsample(inner[0]), finer], dim=1)))
        # Bottom-up: fine to coarse, each fused with the top-down map of the same stride.
        outs = [inner[0]]
        for step in range(2):
            outs.append(self.bottom_up[step](torch.cat([self.downsample[step](outs[-1]), inner[step + 1]], dim=1)))
        if self.levels == 4:
            outs.append(self.extra_from_input(inputs[2]) + self.extra_from_output(outs[-1]))
        return [tap(out) for tap, out in zip(self.outputs, outs)]
