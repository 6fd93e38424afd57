"""The `layout` recipe sections (PP-StructureV2: PicoDet + FGD). Pydantic only: no torch at import."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from edgekd.recipe.common import MAX_COUNT, MAX_WORKERS, RecipeBase, StrictModel, TrainConfig
from edgekd.recipe.inputs import InputFile, InputFolder

PUBLAYNET_CLASSES = ("text", "title", "list", "table", "figure")  # the synthetic pages draw exactly these
COCO_PATHS = ("train_json", "train_images", "val_json", "val_images")
MAX_STRIDE = 32  # the backbone's deepest map; a fourth neck level (stride 64) is a stride-2 conv of it


class LayoutData(StrictModel):
    """Synthetic pages (the default) or your own COCO detection set, e.g. PubLayNet (docs/layout.md).

    Pages are rendered at, and every image is resized to, `height` × `width` (no aspect kept, as PicoDet does).
    """

    source: Literal["synthetic", "coco"] = "synthetic"
    train_json: Optional[InputFile] = Field(None, description="COCO annotation file of the training split "
                                                          "(source coco)")
    train_images: Optional[InputFolder] = Field(None, description="folder the train file_names are relative to")
    val_json: Optional[InputFile] = None
    val_images: Optional[InputFolder] = None
    classes: tuple[str, ...] = Field(PUBLAYNET_CLASSES, description="COCO category names, in label order")
    height: int = Field(320, ge=64, le=1280, description="network input height (800×608 in the paper)")
    width: int = Field(256, ge=64, le=1280)
    train: int = Field(4000, gt=0, le=MAX_COUNT, description="synthetic training pages")
    val: int = Field(500, gt=0, le=MAX_COUNT, description="synthetic validation pages")
    workers: int = Field(2, gt=0, le=MAX_WORKERS, description="processes rendering pages")

    @field_validator("height", "width")
    @classmethod
    def _multiple_of_stride(cls, size: int) -> int:
        if size % MAX_STRIDE:
            raise ValueError(f"must be a multiple of {MAX_STRIDE} (the backbone's stride), got {size}")
        return size

    @model_validator(mode="after")
    def _source_fields(self) -> "LayoutData":
        missing = [name for name in COCO_PATHS if getattr(self, name) is None]
        if self.source == "coco" and missing:
            raise ValueError(f"source 'coco' needs data.{missing[0]} (and {', '.join(COCO_PATHS)})")
        if self.source == "synthetic" and tuple(self.classes) != PUBLAYNET_CLASSES:
            raise ValueError(f"synthetic pages carry the PubLayNet classes {list(PUBLAYNET_CLASSES)}; "
                             "set data.source: coco to train other classes")
        return self


class LayoutDetector(StrictModel):
    """A PicoDet: LCNet ×`width` backbone, CSP-PAN neck of `neck_channels` × `levels`, GFL head."""

    width: float = Field(1.0, gt=0, le=4.0, description="LCNet width multiplier")
    neck_channels: int = Field(96, ge=8, le=512)
    levels: Literal[3, 4] = 4
    train: TrainConfig = TrainConfig(epochs=8, batch_size=16, lr=2e-3, weight_decay=1e-4, warmup_epochs=0.3,
                                     grad_clip=10.0)


class LayoutTeacher(LayoutDetector):
    """The teacher: trained here on the detection loss, or loaded from a local state_dict.

    `yolo` puts an Ultralytics YOLOv8 in the PicoDet's place (the optional `yolo` extra; docs/yolo.md): it is
    built from Ultralytics' model YAML, trained here with Ultralytics' own detection loss, and teaches through the
    same KD loss on the strides both share (8/16/32), each level with a 1×1 adapter to the YOLO's width. `width`,
    `neck_channels` and `levels` then describe nothing and are ignored.
    """

    width: float = Field(2.5, gt=0, le=4.0)
    yolo: Optional[str] = Field(None, description="an Ultralytics YOLOv8 (yolov8n … yolov8x) as the teacher")
    checkpoint: Optional[InputFile] = Field(None, description="a state_dict of the teacher (PicoDet, or the YOLO as "
                                                         "edgekd saves it) to load instead of training")


class LayoutStudent(LayoutDetector):
    """The student; `student_plain` and `distill` both train it with this `train` config (same data, epochs)."""


class LayoutDistill(StrictModel):
    """Feature KD on every neck level, the teacher frozen; PP-StructureV2's FGD weights (papers.md §3.2).

    FGD's terms are raw sums over channels and positions, so their size moves with the feature maps: `scale`
    multiplies the whole KD term. papers.md §6.3: it should start at about 0.5–2× the detection loss. 'auto'
    measures both on one batch of training images with the initial weights and sets the scale to give
    `start_ratio`; a number is used as given (1.0: the paper's raw weights). The distill stage records the scale
    and the first epoch's ratio.
    """

    kd: Literal["fgd", "feature_mse", "none"] = "fgd"
    temperature: float = Field(0.5, gt=0)
    alpha_fg: float = Field(1e-3, ge=0)
    beta_bg: float = Field(5e-4, ge=0)
    gamma_at: float = Field(5e-4, ge=0)
    lambda_global: float = Field(5e-6, ge=0)
    scale: Union[float, Literal["auto"]] = Field(
        "auto", description="multiplies the KD term; 'auto': KD = start_ratio × detection loss at the start")
    start_ratio: float = Field(1.0, gt=0, description="scale 'auto': the KD / detection loss ratio to start at")
    mse_weight: float = Field(1.0, ge=0, description="feature_mse: weight per level")

    @field_validator("scale")
    @classmethod
    def _non_negative(cls, scale: float | str) -> float | str:
        if scale != "auto" and scale < 0:
            raise ValueError(f"must be 'auto' or a number >= 0, got {scale}")
        return scale


class LayoutEvaluate(StrictModel):
    """Post-processing and scoring: PicoDet's MultiClassNMS settings, COCO AP on the validation split."""

    score_threshold: float = Field(0.025, ge=0, lt=1)
    iou_threshold: float = Field(0.6, gt=0, le=1)
    pre_nms_top_k: int = Field(1000, gt=0, le=MAX_COUNT)
    keep_top_k: int = Field(100, gt=0, le=MAX_COUNT, description="detections kept per image (COCO counts 100)")


class LayoutRecipe(RecipeBase):
    task: Literal["layout"]
    data: LayoutData = LayoutData()
    teacher: LayoutTeacher = LayoutTeacher()
    student: LayoutStudent = LayoutStudent()
    distill: LayoutDistill = LayoutDistill()
    evaluate: LayoutEvaluate = LayoutEvaluate()
    postprocess: Literal["host", "graph"] = Field(
        "host", description="NMS outside the exported graph (host) or inside it (graph); the other is timed too")
    compare_yolo: Optional[str] = Field(
        None, description="an Ultralytics YOLOv8 (e.g. yolov8s) timed beside the exported models at the same input "
                          "size (the optional `yolo` extra)")

    @model_validator(mode="after")
    def _levels_match(self) -> "LayoutRecipe":
        # Feature KD pairs neck levels one to one, so both PicoDets need the same strides (a YOLO teacher is
        # paired by stride instead).
        if self.distill.kd != "none" and self.teacher.yolo is None and self.teacher.levels != self.student.levels:
            raise ValueError(f"student.levels {self.student.levels} must equal teacher.levels {self.teacher.levels} "
                             "for feature distillation (or set distill.kd: none)")
        return self
