"""A YOLOv8 that stands where the layout recipe's PicoDet teacher stands (`teacher.yolo: yolov8s`).

The layout stages treat every detector alike: trained on (images, padded targets), scored by decoding its
eval outputs — (boxes (N, A, 4) xyxy in input pixels, scores (N, A, C)) with NMS on the host, or the fixed-shape
NMS rows of `graph_nms` inside the graph — and distilled from through `forward_features` and `feature_paths`.
`YoloLayoutDetector` gives a YOLOv8 that interface: its eval output (cx, cy, w, h, class scores) is turned into
PicoDet's host outputs, and the same `graph_nms` runs on them in graph mode, so evaluation, export, parity and
profiling of the teacher need no YOLO-specific code. Training mode returns Ultralytics' training outputs for
its own loss (`edgekd.yolo.teacher.YoloDetectionObjective`).

>>> detector = YoloLayoutDetector(build_yolo("yolov8n", num_classes=5))
>>> boxes, scores = detector(torch.zeros(1, 3, 64, 64))
>>> boxes.shape, scores.shape                      # A = 8·8 + 4·4 + 2·2
(torch.Size([1, 84, 4]), torch.Size([1, 84, 5]))
"""

from __future__ import annotations

import torch

from edgekd.models.picodet import NmsConfig, graph_nms
from edgekd.models.picodet.model import POSTPROCESS_MODES
from edgekd.yolo.models import YoloDetector
from edgekd.yolo.teacher import YoloTeacher


class YoloLayoutDetector(YoloTeacher):
    """A YOLOv8 with PicoDet's detector interface (see the module docstring); the YOLO is `self.yolo`."""

    def __init__(self, model: YoloDetector, postprocess: str = "host", nms: NmsConfig = NmsConfig(),
                 from_imagenet: bool = False) -> None:
        super().__init__(model, from_imagenet)
        if postprocess not in POSTPROCESS_MODES:
            raise ValueError(f"postprocess must be one of {POSTPROCESS_MODES}, got '{postprocess}'")
        self.postprocess, self.nms = postprocess, nms

    @property
    def num_classes(self) -> int:
        return self.yolo.num_classes

    def forward(self, images: torch.Tensor):
        out = self.yolo(self.yolo_inputs(images))
        if self.yolo.training:  # the inner model's mode decides what it returned (training outputs or the tensor)
            return out
        boxes, scores = yolo_to_host_outputs(out)
        if self.postprocess == "graph":
            return graph_nms(boxes, scores, self.nms)
        return boxes, scores


def yolo_to_host_outputs(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """YOLOv8's eval tensor (N, 4 + C, A), rows (cx, cy, w, h) in input pixels then sigmoid class scores
    → boxes (N, A, 4) xyxy and scores (N, A, C), PicoDet's host outputs.

    >>> yolo_to_host_outputs(torch.tensor([[[10.], [20.], [4.], [6.], [0.9]]]))[0]
    tensor([[[ 8., 17., 12., 23.]]])
    """
    rows = raw.transpose(1, 2)
    centre, size = rows[..., :2], rows[..., 2:4]
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1), rows[..., 4:]
