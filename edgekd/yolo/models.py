"""YOLOv8 detectors built from Ultralytics' bundled model YAMLs (random weights, nothing downloaded).

`YoloDetector` wraps Ultralytics' `DetectionModel` as a plain nn.Module:
- eval mode: `forward(images)` returns the raw head tensor (N, 4 + nc, A), what Ultralytics' own ONNX export
  returns — boxes as (cx, cy, w, h) in input pixels, then the per-class sigmoid scores, for A anchor points over
  the P3/P4/P5 grids (A = Σ (H/s)·(W/s), s = 8, 16, 32);
- training mode: Ultralytics' training outputs (a dict), what `ultralytics.utils.loss.v8DetectionLoss` takes.

The neck maps the Detect head reads (P3/P4/P5) are hookable at `neck_paths`; `neck_features` returns them.

>>> model = build_yolo("yolov8n", num_classes=5)
>>> model(torch.zeros(1, 3, 64, 64)).shape          # A = 8·8 + 4·4 + 2·2
torch.Size([1, 9, 84])
>>> [f.shape[1] for f in neck_features(model, torch.zeros(1, 3, 64, 64))]
[64, 128, 256]
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.distill.hooks import FeatureCapture
from edgekd.errors import EdgekdError
from edgekd.registry import unknown_name_message
from edgekd.yolo.offline import require_ultralytics

YOLOV8_SCALES = ("n", "s", "m", "l", "x")
MODEL_NAMES = tuple(f"yolov8{scale}" for scale in YOLOV8_SCALES)


class YoloDetector(nn.Module):
    """An Ultralytics YOLO detection model behind edgekd's conventions (see the module docstring)."""

    def __init__(self, detector: nn.Module, name: str) -> None:
        super().__init__()
        self.detector = detector
        self.name = name

    @property
    def head(self) -> nn.Module:
        return self.detector.model[-1]

    @property
    def num_classes(self) -> int:
        return int(self.head.nc)

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides of the levels the head reads, finest first (8, 16, 32 for YOLOv8)."""
        return tuple(int(s) for s in self.detector.stride.tolist())

    @property
    def neck_paths(self) -> list[str]:
        """Module paths (from this wrapper) of the layers whose outputs the Detect head reads: P3, P4, P5."""
        return [f"detector.model.{index}" for index in self.head.f]

    @property
    def neck_channels(self) -> tuple[int, ...]:
        """Channels of P3/P4/P5: the input width of each level's box branch."""
        return tuple(int(branch[0].conv.in_channels) for branch in self.head.cv2)

    def forget_traced_anchors(self) -> None:
        """Drop the anchor grid the head cached during a trace (export): it may hold tracer tensors that cannot
        be copied. The head is built with `dynamic = True`, so eager calls recompute the grid anyway."""
        self.head.anchors = self.head.strides = torch.empty(0)
        self.head.shape = None

    def forward(self, images: torch.Tensor):
        out = self.detector(images)
        if self.training:
            return out
        # Eval-mode Ultralytics returns (decoded tensor, training outputs); the exported graph keeps only the first.
        return out[0] if isinstance(out, tuple) else out


def check_model_name(name: str) -> None:
    """EdgekdError with a did-you-mean unless `name` is one of MODEL_NAMES."""
    if name not in MODEL_NAMES:
        raise EdgekdError(unknown_name_message("YOLO model", name, list(MODEL_NAMES)))


def build_yolo(name: str = "yolov8n", num_classes: int = 80) -> YoloDetector:
    """YOLOv8 `name` ('yolov8n' … 'yolov8x') with `num_classes` classes, random init, in eval mode.

    Built from the YAML that ships inside the Ultralytics package; no weights file is read or downloaded.
    The model carries Ultralytics' default hyperparameters (`detector.args`), which its loss reads.
    """
    check_model_name(name)
    if num_classes < 1:
        raise EdgekdError(f"num_classes must be >= 1, got {num_classes}")
    require_ultralytics()
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    detector = DetectionModel(f"{name}.yaml", nc=num_classes, verbose=False)
    detector.args = get_cfg()  # box / cls / dfl gains for v8DetectionLoss, as Ultralytics' trainer sets them
    detector.task = "detect"
    # Recompute the anchor grid on every call instead of caching it per input shape: a grid cached while tracing
    # (export) would otherwise be reused by the next eager call of the same shape.
    detector.model[-1].dynamic = True
    return YoloDetector(detector, name).eval()


def neck_features(model: YoloDetector, images: torch.Tensor) -> list[torch.Tensor]:
    """P3, P4, P5 (finest first) for `images`, captured with forward hooks; no gradients.

    >>> p3, p4, p5 = neck_features(build_yolo("yolov8n"), torch.zeros(2, 3, 64, 64))
    """
    capture = FeatureCapture(model, model.neck_paths, "YOLO")
    try:
        with torch.no_grad():
            model(images)
    finally:
        capture.remove()
    return [capture.features[path] for path in model.neck_paths]
