"""Networks of the ibvs task: the NSER-IBVS student and the teacher's perception (segmentation + mask splitter).

`DroneCommandRegressor` is the paper's student: six convolutions (16→512 channels; 5×5 then 3×3, two
max-pools, the last two unpadded), global average pool, 512→256→3 with tanh — 1,715,843 parameters at
width 1.0. `width` scales every channel count for a CPU-sized variant. `coords` appends two channels holding
each pixel's x and y in [−1, 1] (CoordConv): after the global average pool the paper's network knows *where*
something is only through zero-padding at the borders, which is enough for a target that fills much of the
frame but not for a small one; measured in docs/decisions.md. `pools=3` adds a third max-pool before the two
unpadded convolutions, where the paper's network spends most of its compute at ÷4 resolution: the same layers
at ÷8, about a third of the MACs.

The teacher's perception follows the paper's split: a segmentation network finds the vehicle, and a U-Net
"mask splitter" reads RGB + that mask (4 channels) and separates the front half from the back half. Both
are fully convolutional, so they train on crops and run on the whole frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.models import MODELS


def _conv(cin: int, cout: int, kernel: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=padding), nn.BatchNorm2d(cout), nn.GELU())


class DroneCommandRegressor(nn.Module):
    """Image (N, 3, H, W), ImageNet-normalised → normalised piloting commands (N, 3) in [−1, 1]."""

    def __init__(self, width: float = 1.0, in_chans: int = 3, num_outputs: int = 3, coords: bool = False,
                 pools: int = 2) -> None:
        super().__init__()
        if pools not in (2, 3):
            raise ValueError(f"pools must be 2 (the paper's) or 3, got {pools}")
        c = [max(4, int(round(n * width))) for n in (16, 32, 64, 128, 256, 512)]
        self.coords = coords
        self.features = nn.Sequential(
            _conv(in_chans + (2 if coords else 0), c[0], 5, 1), nn.MaxPool2d(2),
            _conv(c[0], c[1], 5, 1), nn.MaxPool2d(2),
            _conv(c[1], c[2], 3, 1), _conv(c[2], c[3], 3, 1),
            *([nn.MaxPool2d(2)] if pools == 3 else []),
            _conv(c[3], c[4], 3, 0), _conv(c[4], c[5], 3, 0),
        )
        hidden = max(8, int(round(256 * width)))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c[5], hidden), nn.GELU(),
                                  nn.Linear(hidden, num_outputs), nn.Tanh())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.coords:
            images = torch.cat([images, coordinate_channels(images)], dim=1)
        return self.head(self.features(images))


def coordinate_channels(images: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W): x and y of every pixel, −1 at the left/top edge, +1 at the right/bottom."""
    n, _, height, width = images.shape
    ys = torch.linspace(-1.0, 1.0, height, dtype=images.dtype, device=images.device).view(1, 1, height, 1).expand(n, 1, height, width)
    xs = torch.linspace(-1.0, 1.0, width, dtype=images.dtype, device=images.device).view(1, 1, 1, width).expand(n, 1, height, width)
    return torch.cat([xs, ys], dim=1)


@MODELS.register("nser_student")
def nser_student(in_chans: int = 3, num_outputs: int = 3) -> DroneCommandRegressor:
    """The paper's student (1,715,843 parameters)."""
    return DroneCommandRegressor(1.0, in_chans, num_outputs)


@MODELS.register("nser_student_half")
def nser_student_half(in_chans: int = 3, num_outputs: int = 3) -> DroneCommandRegressor:
    """Half the channels of every layer (about a quarter of the compute): the CPU-sized variant."""
    return DroneCommandRegressor(0.5, in_chans, num_outputs)


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


@MODELS.register("nser_student_coord")
def nser_student_coord(in_chans: int = 3, num_outputs: int = 3) -> DroneCommandRegressor:
    """The paper's student with two coordinate input channels (+800 parameters)."""
    return DroneCommandRegressor(1.0, in_chans, num_outputs, coords=True)


@MODELS.register("nser_student_half_coord")
def nser_student_half_coord(in_chans: int = 3, num_outputs: int = 3) -> DroneCommandRegressor:
    """Half width with coordinate channels: the CPU-sized student the ibvs recipe deploys."""
    return DroneCommandRegressor(0.5, in_chans, num_outputs, coords=True)


@MODELS.register("nser_student_half_coord_lite")
def nser_student_half_coord_lite(in_chans: int = 3, num_outputs: int = 3) -> DroneCommandRegressor:
    """`nser_student_half_coord` with a third max-pool before its two unpadded convolutions (same weights' shapes,
    about a third of the MACs)."""
    return DroneCommandRegressor(0.5, in_chans, num_outputs, coords=True, pools=3)


class _Double(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """A plain U-Net: `widths` per level (max-pool down, bilinear up + skip concat), logits at full resolution."""

    def __init__(self, in_chans: int, num_classes: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.down = nn.ModuleList([_Double(cin, cout) for cin, cout in zip((in_chans, *widths[:-1]), widths)])
        self.up = nn.ModuleList([_Double(widths[i] + widths[i + 1], widths[i]) for i in range(len(widths) - 1)])
        self.classify = nn.Conv2d(widths[0], num_classes, 1)
        self.stride = 2 ** (len(widths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for index, block in enumerate(self.down):
            x = block(x if index == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for index in reversed(range(len(self.up))):
            skip = skips[index]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = self.up[index](torch.cat([skip, x], dim=1))
        return self.classify(x)


class SegmentationNet(nn.Module):
    """Vehicle segmentation: a strided encoder (÷16) and a light decoder to ÷4, logits upsampled to the input."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        stages, cin = [], 3
        for cout in widths:
            stages.append(nn.Sequential(_conv_bn_relu(cin, cout, stride=2), _conv_bn_relu(cout, cout)))
            cin = cout
        self.encoder = nn.ModuleList(stages)
        self.lateral = nn.ModuleList([nn.Conv2d(w, widths[1], 1) for w in widths[1:]])
        self.head = nn.Sequential(_conv_bn_relu(widths[1], widths[1]), nn.Conv2d(widths[1], 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        features = []
        for stage in self.encoder:
            x = stage(x)
            features.append(x)
        top = self.lateral[-1](features[-1])
        for index in reversed(range(len(self.lateral) - 1)):  # top-down path to stride 4
            lateral = self.lateral[index](features[index + 1])
            top = lateral + F.interpolate(top, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(self.head(top), size=size, mode="bilinear", align_corners=False)


class TeacherPerception(nn.Module):
    """Image → (vehicle logit (N,1,H,W), split logits (N,3,H,W): ground / front / back), one graph to export.

    The splitter sees the segmentation as a probability map, so the exported teacher is a single static
    graph; frames whose size is not a multiple of the networks' stride are padded and cropped back.
    """

    def __init__(self, segmenter: nn.Module, splitter: UNet, stride: int = 16) -> None:
        super().__init__()
        self.segmenter = segmenter
        self.splitter = splitter
        self.stride = stride

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = images.shape[-2:]
        pad_h, pad_w = (-height) % self.stride, (-width) % self.stride
        x = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else images
        vehicle = self.segmenter(x)
        split = self.splitter(torch.cat([x, torch.sigmoid(vehicle)], dim=1))
        return vehicle[..., :height, :width], split[..., :height, :width]


def build_perception(seg_widths: tuple[int, ...], splitter_widths: tuple[int, ...]) -> TeacherPerception:
    return TeacherPerception(SegmentationNet(seg_widths), UNet(4, 3, splitter_widths),
                             stride=max(2 ** len(seg_widths), 2 ** (len(splitter_widths) - 1)))
