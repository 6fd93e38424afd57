"""A YOLOv8 teacher for the layout student: FGD on the strides both share, and training the teacher on layout data.

The PicoDet student's neck has `neck_channels` channels at strides 8/16/32[/64]; YOLOv8's P3/P4/P5 are strides
8/16/32 with a different width per level (64/128/256 for yolov8n). Levels are paired by stride (the student's
stride-64 level has no partner and is not distilled), and each pair's FGD loss gets a trainable 1×1 conv from the
student's width to the teacher's (`FGD.align`, built because the widths differ) — the adapter; FGD's attention and
global-context terms are then computed at the teacher's width, as FGD prescribes.

Training the teacher uses Ultralytics' own detection loss (`v8DetectionLoss`: task-aligned assignment, BCE, CIoU,
DFL) inside edgekd's loop (`edgekd.distill.loop.fit`: seeded, checkpointed, resumable), on the same padded
layout targets the PicoDet stages use, converted by `ultralytics_targets`.

>>> teacher_model = build_yolo("yolov8n", num_classes=5)
>>> train_yolo_teacher(teacher_model, train_set, TrainConfig(epochs=30, batch_size=16), seed=0,
...                    checkpoint_dir=stage_dir / "checkpoints")
>>> objective = yolo_distill_objective(student, YoloTeacher(teacher_model), image_size=(320, 256))
>>> fit(objective, train_set, student_cfg, seed=0, checkpoint_dir=..., desc="student + FGD from YOLO")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.yolo.models import YoloDetector, build_yolo

# edgekd's layout images are ImageNet-normalised; Ultralytics trains on RGB in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class YoloTeacher(nn.Module):
    """P3/P4/P5 of a YOLO detector in the form the layout distill objective reads: `forward_features(images)`
    returns the maps finest first, and `feature_paths` are hookable module paths of the same maps.

    `from_imagenet=True` maps ImageNet-normalised inputs back to [0, 1] first: for weights trained by Ultralytics'
    own trainer. A teacher trained here with `train_yolo_teacher` already sees edgekd's normalisation.
    """

    def __init__(self, model: YoloDetector, from_imagenet: bool = False) -> None:
        super().__init__()
        self.yolo = model
        self.from_imagenet = from_imagenet
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)

    @property
    def strides(self) -> tuple[int, ...]:
        return self.yolo.strides

    @property
    def channels(self) -> tuple[int, ...]:
        return self.yolo.neck_channels

    @property
    def feature_paths(self) -> list[str]:
        return [f"yolo.{path}" for path in self.yolo.neck_paths]

    def yolo_inputs(self, images: torch.Tensor) -> torch.Tensor:
        """`images` as the YOLO expects them: back in [0, 1] when `from_imagenet`, else unchanged."""
        return images * self.std + self.mean if self.from_imagenet else images

    def forward_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """P3, P4, P5 for `images`; the Detect head is not run (only its inputs are needed)."""
        images = self.yolo_inputs(images)
        detector = self.yolo.detector
        outputs: list[Any] = []
        x: Any = images
        for layer in detector.model[:-1]:  # Ultralytics' layer graph: `f` names the inputs (-1: the previous one)
            if layer.f != -1:
                x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
            x = layer(x)
            outputs.append(x)
        return [outputs[index] for index in self.yolo.head.f]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_features(images)


def build_yolo_teacher(name: str, num_classes: int, weights: str | Path | None = None,
                       from_imagenet: bool = False) -> YoloTeacher:
    """A YoloTeacher from `build_yolo(name, num_classes)`, with `weights` (a state_dict of the YoloDetector, as
    `train_yolo_teacher`'s caller saves it) loaded when given; in eval mode."""
    from edgekd.artifacts import load_state_into

    model = build_yolo(name, num_classes)
    if weights is not None:
        load_state_into(model, weights)
    return YoloTeacher(model, from_imagenet).eval()


def shared_levels(student_strides: Sequence[int], teacher_strides: Sequence[int]) -> list[tuple[int, int]]:
    """(student level, teacher level) index pairs with equal strides, finest first; EdgekdError when none match.

    >>> shared_levels((8, 16, 32, 64), (8, 16, 32))
    [(0, 0), (1, 1), (2, 2)]
    """
    teacher_index = {stride: j for j, stride in enumerate(teacher_strides)}
    pairs = [(i, teacher_index[stride]) for i, stride in enumerate(student_strides) if stride in teacher_index]
    if not pairs:
        raise EdgekdError(f"no shared stride between the student {tuple(student_strides)} and the YOLO teacher "
                          f"{tuple(teacher_strides)}: nothing to distil")
    return pairs


def yolo_distill_objective(student: nn.Module, teacher: YoloTeacher, image_size: tuple[int, int], *,
                           kd: str = "fgd", scale: float = 1.0, **kd_params: Any):
    """The layout objective (PicoDet detection loss + `scale` × Σ KD) with the YOLO teacher on the shared strides.

    `kd` is a FEATURE_KD name ('fgd' or 'feature_mse'); `kd_params` go to it (e.g. FGD's `temperature`,
    `alpha_fg`); each loss aligns the student's width to the teacher's with its own trainable 1×1 conv.
    Returns `edgekd.tasks.layout.objectives.FeatureDistillObjective`, ready for `edgekd.distill.loop.fit`.
    """
    from edgekd.distill.feature_kd import build_feature_kd
    from edgekd.models.picodet import neck_output_paths
    from edgekd.tasks.layout.objectives import FeatureDistillObjective

    pairs = shared_levels(student.strides, teacher.strides)
    student_paths = [neck_output_paths(student)[i] for i, _ in pairs]
    teacher_paths = [teacher.feature_paths[j] for _, j in pairs]
    losses = [build_feature_kd(kd, student.neck.channels, teacher.channels[j], **kd_params) for _, j in pairs]
    return FeatureDistillObjective(student, teacher, losses, student_paths, teacher_paths, image_size, scale)


def adapters(objective) -> list[nn.Module]:
    """The trainable student→teacher 1×1 convs of a `yolo_distill_objective`, one per distilled level."""
    return [loss.align for loss in objective.kd_losses if getattr(loss, "align", None) is not None]


def ultralytics_targets(targets: torch.Tensor, image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Padded layout targets (N, max_boxes, 5) rows [x1, y1, x2, y2, label] in input pixels (label -1: padding)
    → Ultralytics' batch dict: `batch_idx` (K,), `cls` (K, 1), `bboxes` (K, 4) as (cx, cy, w, h) / image size.

    >>> ultralytics_targets(torch.tensor([[[0., 0., 32., 16., 2.]]]), image_size=(64, 64))["bboxes"]
    tensor([[0.2500, 0.1250, 0.5000, 0.2500]])
    """
    from edgekd.tasks.layout.common import PAD_LABEL

    height, width = image_size
    real = targets[..., 4] != PAD_LABEL
    image_index = torch.arange(targets.shape[0], device=targets.device)[:, None].expand(targets.shape[:2])[real]
    rows = targets[real]
    x1, y1, x2, y2 = rows[:, :4].unbind(dim=1)
    boxes = torch.stack([(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height], 1)
    return {"batch_idx": image_index.to(torch.float32), "cls": rows[:, 4:5], "bboxes": boxes}


class YoloDetectionObjective(nn.Module):
    """Ultralytics' v8DetectionLoss on a batch of (images, padded layout targets), for `fit`.

    'loss' is Ultralytics' box + cls + dfl (its default gains 7.5 / 0.5 / 1.5) for the batch, divided by the batch
    size that Ultralytics multiplies it by, so it reads per image like the PicoDet losses; the three terms are
    logged as 'box', 'cls' and 'dfl'.
    """

    def __init__(self, model: YoloDetector) -> None:
        super().__init__()
        from edgekd.yolo.offline import require_ultralytics

        require_ultralytics()
        from ultralytics.utils.loss import v8DetectionLoss

        self.model = model
        self._loss_class = v8DetectionLoss
        self.loss_fn = v8DetectionLoss(model.detector)

    def forward(self, batch) -> dict[str, torch.Tensor]:
        images, targets = batch
        if self.loss_fn.device != images.device:  # it keeps plain tensors on the device it was built on
            self.loss_fn = self._loss_class(self.model.detector)
        total, terms = self.loss_fn(self.model(images), ultralytics_targets(targets, tuple(images.shape[-2:])))
        # Ultralytics 8.4 returns the detached terms as a dict, 8.3 as a (3,) tensor; both in box, cls, dfl order.
        box, cls, dfl = terms.values() if isinstance(terms, dict) else terms
        return {"loss": total.sum() / images.shape[0], "box": box, "cls": cls, "dfl": dfl}


def train_yolo_teacher(model: YoloDetector, dataset, cfg, *, seed: int, checkpoint_dir: str | Path,
                       desc: str = "YOLO teacher"):
    """Train `model` on `dataset` ((image, padded targets) pairs, e.g. `layout.common.DetectionSet`) with
    Ultralytics' detection loss in edgekd's loop (`cfg`: a `TrainConfig`). Returns the `FitResult`; `model` is
    left in eval mode. Resumes from `checkpoint_dir/last.pt` when one exists, like every edgekd stage.
    """
    from edgekd.distill.loop import fit

    result = fit(YoloDetectionObjective(model), dataset, cfg, seed=seed, checkpoint_dir=Path(checkpoint_dir),
                 desc=desc)
    model.eval()
    return result
