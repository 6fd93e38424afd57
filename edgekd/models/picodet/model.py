"""PP-PicoDet detector: LCNet backbone → CSP-PAN neck → PicoHead (papers.md §3.1, §6.3).

`forward(images)` depends on the mode:
- training: the raw head outputs (class logits per level, box-bin logits per level), for `PicoDetLoss`;
- eval, `postprocess="host"`: decoded boxes (N, A, 4) xyxy in input pixels and sigmoid scores (N, A, C),
  fixed shapes — post-processing (NMS) runs outside the graph;
- eval, `postprocess="graph"`: NMS inside the graph — boxes (N, K, 4), scores (N, K), labels (N, K),
  count (N,), K = keep_top_k (see `graph_nms`).

>>> model = build_picodet(width=1.0, num_classes=5, neck_channels=96, levels=4, postprocess="host").eval()
>>> boxes, scores = model(torch.zeros(1, 3, 320, 256))
>>> boxes.shape, scores.shape          # A = 40·32 + 20·16 + 10·8 + 5·4
(torch.Size([1, 1700, 4]), torch.Size([1, 1700, 5]))
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.models.picodet.backbone import DETECTION_STRIDES, build_lcnet, lcnet_channels
from edgekd.models.picodet.decode import anchor_points, decode_boxes, flatten_levels
from edgekd.models.picodet.head import PicoHead
from edgekd.models.picodet.neck import CSPPAN
from edgekd.models.picodet.nms import NmsConfig, graph_nms

POSTPROCESS_MODES = ("host", "graph")
RawOutputs = tuple[list[torch.Tensor], list[torch.Tensor]]


class PicoDet(nn.Module):
    """Backbone → neck → head. Neck levels are hookable at `neck.outputs.{i}` (strides 8, 16, 32[, 64])."""

    def __init__(self, backbone: nn.Module, neck: CSPPAN, head: PicoHead, postprocess: str = "host",
                 nms: NmsConfig = NmsConfig()) -> None:
        super().__init__()
        if postprocess not in POSTPROCESS_MODES:
            raise ValueError(f"postprocess must be one of {POSTPROCESS_MODES}, got '{postprocess}'")
        self.backbone, self.neck, self.head = backbone, neck, head
        self.postprocess, self.nms = postprocess, nms

    @property
    def strides(self) -> tuple[int, ...]:
        return self.head.strides

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def reg_max(self) -> int:
        return self.head.reg_max

    def forward_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The neck outputs, finest first: the maps FGD distils."""
        return self.neck(self.backbone(images))

    def forward_raw(self, images: torch.Tensor) -> RawOutputs:
        """Raw head outputs in any mode (e.g. a validation loss in eval mode)."""
        return self.head(self.forward_features(images))

    def decode(self, raw: RawOutputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw outputs → boxes (N, A, 4) xyxy in input pixels and scores (N, A, C) in [0, 1]."""
        class_logits, box_logits = raw
        sizes = [tuple(m.shape[-2:]) for m in class_logits]
        centers, strides = anchor_points(sizes, self.strides, device=class_logits[0].device)
        boxes = decode_boxes(flatten_levels(box_logits), centers, strides, self.reg_max)
        return boxes, flatten_levels(class_logits).sigmoid()

    def forward(self, images: torch.Tensor) -> RawOutputs | tuple[torch.Tensor, ...]:
        raw = self.forward_raw(images)
        if self.training:
            return raw
        boxes, scores = self.decode(raw)
        if self.postprocess == "graph":
            return graph_nms(boxes, scores, self.nms)
        return boxes, scores


def output_names(postprocess: str) -> tuple[str, ...]:
    """ONNX output names of an eval-mode detector in the given mode."""
    return ("boxes", "scores") if postprocess == "host" else ("boxes", "scores", "labels", "num_detections")


def build_picodet(width: float = 1.0, num_classes: int = 5, neck_channels: int = 128, levels: int = 4,
                  postprocess: str = "host", reg_max: int = 7, nms: NmsConfig = NmsConfig()) -> PicoDet:
    """PicoDet with an LCNet ×`width` backbone (1.0 student, 2.5 teacher); random init, no hub weights.

    The neck width does not depend on `width`, so teacher and student neck maps match for FGD without adapters.
    """
    backbone = build_lcnet(width)
    neck = CSPPAN(lcnet_channels(backbone), neck_channels, levels)
    strides = (*DETECTION_STRIDES, 64)[:levels]
    head = PicoHead(neck_channels, num_classes, strides, reg_max)
    return PicoDet(backbone, neck, head, postprocess, nms)


def picodet_lcnet_x1_0(num_classes: int = 5, neck_channels: int = 96, levels: int = 4,
                       postprocess: str = "host") -> PicoDet:
    """The layout student: PicoDet with LCNet ×1.0."""
    return build_picodet(1.0, num_classes, neck_channels, levels, postprocess)


def picodet_lcnet_x2_5(num_classes: int = 5, neck_channels: int = 96, levels: int = 4,
                       postprocess: str = "host") -> PicoDet:
    """The layout teacher: PicoDet with LCNet ×2.5 (same neck width as the student)."""
    return build_picodet(2.5, num_classes, neck_channels, levels, postprocess)


def neck_output_paths(model: PicoDet) -> list[str]:
    """Module paths of the neck levels, finest first, e.g. ["neck.outputs.0", …, "neck.outputs.3"]."""
    return [f"neck.outputs.{i}" for i in range(model.neck.levels)]
