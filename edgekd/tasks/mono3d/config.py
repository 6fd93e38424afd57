"""The `mono3d` recipe sections (MonoTAKD at edge scale, papers.md §4 and §6.4). Pydantic only: no torch at import."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from edgekd.recipe.common import (
    MAX_BATCH,
    MAX_COUNT,
    MAX_EPOCHS,
    MAX_WIDTH,
    MAX_WORKERS,
    RecipeBase,
    StrictModel,
    TrainConfig,
)
from edgekd.recipe.inputs import InputFile, InputFolder


class Mono3dData(StrictModel):
    """Synthetic driving scenes in the KITTI object layout (the default), or a KITTI folder of your own.

    With `source: kitti`, `root` holds `train_dir` and `val_dir`, each with image_2 / label_2 / calib / velodyne
    (docs/mono3d.md). Either way the same loader reads the folder; images are resized to `width`×`height`.
    """

    source: Literal["synthetic", "kitti"] = "synthetic"
    root: Optional[InputFolder] = Field(None, description="KITTI folder when source is 'kitti'")
    train_dir: str = "train"
    val_dir: str = "val"
    train: int = Field(3000, gt=0, le=MAX_COUNT, description="synthetic training scenes")
    val: int = Field(500, gt=0, le=MAX_COUNT, description="synthetic held-out scenes")
    width: int = Field(320, ge=64, le=1280, description="network input width (KITTI ¼: 320)")
    height: int = Field(96, ge=32, le=384, description="network input height (KITTI ¼: 96)")
    beams: Literal[32, 64] = 32
    workers: int = Field(2, gt=0, le=MAX_WORKERS, description="processes rendering synthetic scenes")

    @model_validator(mode="after")
    def _checks(self) -> "Mono3dData":
        if self.source == "kitti" and self.root is None:
            raise ValueError("source 'kitti' needs data.root")
        if self.width % 8 or self.height % 8:
            raise ValueError(f"width and height must be multiples of 8 (the camera network's stride), "
                             f"got {self.width}x{self.height}")
        return self


class Mono3dModel(StrictModel):
    """Widths and geometry shared by the teacher, the TA and the student (NetConfig; paper widths in docs)."""

    depth_bins: int = Field(32, ge=4, le=160, description="LID depth bins (paper 120)")
    depth_min: float = Field(2.0, gt=0)
    depth_max: float = Field(46.8, gt=0)
    x_range: tuple[float, float] = (-20.0, 20.0)
    z_range: tuple[float, float] = (0.0, 40.0)
    y_range: tuple[float, float] = (-1.0, 2.0)
    cell: float = Field(0.625, gt=0, description="lift / pillar grid cell, metres")
    bev_stride: int = Field(2, ge=1, le=4)
    bev_channels: int = Field(64, gt=0, le=MAX_WIDTH, description="F_T, F_TA, F_S, F_S' width (paper 128)")
    backbone_width: int = Field(64, gt=0, le=MAX_WIDTH)
    backbone_layers: tuple[int, int] = (2, 2)
    head_width: int = Field(32, gt=0, le=MAX_WIDTH)
    image_channels: int = Field(32, gt=0, le=MAX_WIDTH)
    camera_width: int = Field(48, gt=0, le=MAX_WIDTH)
    lift_reduce: Literal["sum", "mean"] = "mean"
    depth_samples: int = Field(4, ge=1, le=16)
    # "rows" scatters whole rows (ScatterND, about ten times faster in ONNX Runtime than "elements"); both export
    # through either ONNX exporter (edgekd.export.backends.onnx.exact_index_add), "dense" is a matmul for checking them.
    lift_backend: Literal["rows", "elements", "dense"] = "rows"

    @model_validator(mode="after")
    def _checks(self) -> "Mono3dModel":
        if self.depth_max <= self.depth_min:
            raise ValueError(f"depth_max {self.depth_max} must exceed depth_min {self.depth_min}")
        for name in ("x_range", "z_range", "y_range"):
            low, high = getattr(self, name)
            if high <= low:
                raise ValueError(f"{name}: {high} must exceed {low}")
        step = self.cell * self.bev_stride * 2  # the BEV backbone's stride-2 stage needs even head grids
        for name in ("x_range", "z_range"):
            low, high = getattr(self, name)
            cells = (high - low) / step
            if abs(cells - round(cells)) > 1e-6:
                raise ValueError(f"{name} span {high - low} m must be a multiple of 2·cell·bev_stride = {step} m")
        return self


class Mono3dTeacher(StrictModel):
    """The LiDAR teacher (pillar BEV CNN + center head), trained on ground-truth boxes, or loaded."""

    checkpoint: Optional[InputFile] = Field(None, description="a LidarDetector state_dict to load instead of training")
    train: TrainConfig = TrainConfig(epochs=20, batch_size=32, lr=2e-3, weight_decay=1e-4, grad_clip=10.0)
    mirror: float = Field(0.5, ge=0, le=1, description="probability of SECOND's random left-right flip of the "
                          "point cloud and boxes (without it the teacher memorises the training scenes)")


class Mono3dAssistant(StrictModel):
    """The teaching assistant: camera features lifted with one-hot LiDAR depth, trained on ground-truth boxes."""

    checkpoint: Optional[InputFile] = Field(None, description="a CameraDetector(depth_source='lidar') state_dict")
    train: TrainConfig = TrainConfig(epochs=15, batch_size=16, lr=2e-3, weight_decay=1e-4, grad_clip=10.0)


class Mono3dKD(StrictModel):
    """Which TAKD terms train the student, with the paper's weights (papers.md §4.2)."""

    imd: bool = True
    cmrd: bool = True
    logit_kd: bool = True
    imd_detach: bool = Field(False, description="True: the official code's detached IMD (no gradient)")
    imd_weight: float = Field(1.0, ge=0)
    cmrd_weight: float = Field(0.2, ge=0)
    cls_weight: float = Field(2.0, ge=0, description="quality focal loss to the teacher's heatmap")
    box_weight: float = Field(2.0, ge=0)
    dir_weight: float = Field(0.4, ge=0)


class Mono3dStudent(StrictModel):
    """The camera student. Both students (plain and TAKD) train on the same data for the same epochs.

    `gt_weight` / `depth_weight` add the ground-truth detection loss and CaDDN's depth loss (focal, from the
    LiDAR depth) to both; the paper's TAKD student has neither (set gt_weight 0 for its loss exactly); with
    them on, plain vs TAKD shows exactly what the distillation adds.
    """

    train: TrainConfig = TrainConfig(epochs=15, batch_size=16, lr=2e-3, weight_decay=1e-4, grad_clip=10.0)
    kd: Mono3dKD = Mono3dKD()
    gt_weight: float = Field(1.0, ge=0)
    depth_weight: float = Field(0.0, ge=0, description="CaDDN depth focal loss (papers.md §6.4: 3.0)")
    fuse_residual: bool = Field(False, description="MonoTAKD's FFM: the residual branch joins the deployed graph")
    init: Literal["assistant", "scratch"] = Field(
        "assistant", description="start the TAKD student from the TA's weights (the official code's "
        "--pretrained_img_model: camera backbone, collapse, BEV backbone, head) or from scratch")

    @model_validator(mode="after")
    def _some_loss(self) -> "Mono3dStudent":
        kd = self.kd
        trains = (kd.imd and not kd.imd_detach and kd.imd_weight > 0) or (kd.cmrd and kd.cmrd_weight > 0) or (
            kd.logit_kd and kd.cls_weight + kd.box_weight + kd.dir_weight > 0)
        if not trains and self.gt_weight == 0 and self.depth_weight == 0:
            raise ValueError("the TAKD student has no loss with a gradient: turn on a kd term, gt_weight or "
                             "depth_weight")
        return self


class Mono3dArm(StrictModel):
    """One ablation arm: KD switches applied to `student.kd`."""

    name: str = Field(pattern=r"^[A-Za-z0-9_+-]+$")
    imd: bool = True
    cmrd: bool = True
    logit_kd: bool = True
    imd_detach: bool = False
    init: Optional[Literal["assistant", "scratch"]] = Field(None, description="None: the student's `init`")

    def kd_switches(self) -> dict[str, bool]:
        return self.model_dump(include={"imd", "cmrd", "logit_kd", "imd_detach"})


def _default_arms() -> list[Mono3dArm]:
    return [
        Mono3dArm(name="no_kd", imd=False, cmrd=False, logit_kd=False, init="scratch"),  # the plain student
        Mono3dArm(name="ta_init_no_kd", imd=False, cmrd=False, logit_kd=False),  # what starting from the TA gives
        Mono3dArm(name="imd_only", cmrd=False),
        Mono3dArm(name="cmrd_only", imd=False),
        Mono3dArm(name="imd+cmrd"),
        Mono3dArm(name="imd+cmrd_no_logit", logit_kd=False),
        Mono3dArm(name="imd_detached+cmrd", imd_detach=True),
    ]


class Mono3dAblation(StrictModel):
    """Optional: every arm trains a TAKD student with the same shorter schedule on the same scenes."""

    enabled: bool = False
    epochs: int = Field(4, gt=0, le=MAX_EPOCHS)
    train_scenes: Optional[int] = Field(None, gt=0, le=MAX_COUNT, description="a seeded subset of the training scenes")
    arms: list[Mono3dArm] = Field(default_factory=_default_arms)

    @model_validator(mode="after")
    def _unique(self) -> "Mono3dAblation":
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arms: names must be unique, got {names}")
        if self.enabled and not names:
            raise ValueError("arms: an enabled ablation needs at least one arm")
        return self


class Mono3dEvaluate(StrictModel):
    """Decoding and the KITTI evaluation of every model on the held-out scenes."""

    score_threshold: float = Field(0.05, ge=0, lt=1, description="detections kept in the result files")
    top_k: int = Field(32, gt=0, le=MAX_COUNT, description="heatmap peaks decoded per scene")
    batch_size: int = Field(32, gt=0, le=MAX_BATCH)


class Mono3dRecipe(RecipeBase):
    task: Literal["mono3d"]
    data: Mono3dData = Mono3dData()
    model: Mono3dModel = Mono3dModel()
    teacher: Mono3dTeacher = Mono3dTeacher()
    assistant: Mono3dAssistant = Mono3dAssistant()
    student: Mono3dStudent = Mono3dStudent()
    ablation: Mono3dAblation = Mono3dAblation()
    evaluate: Mono3dEvaluate = Mono3dEvaluate()
