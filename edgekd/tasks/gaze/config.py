"""The `gaze` recipe sections (GazeGen / DFT Gaze). Pydantic only: no torch at import."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from edgekd.recipe.common import (
    MAX_BATCH,
    MAX_COUNT,
    MAX_LR,
    MAX_WORKERS,
    KDPair,
    RecipeBase,
    StrictModel,
    TrainConfig,
    check_model_name,
)
from edgekd.recipe.inputs import InputFile, InputFolder


class GazeData(StrictModel):
    """Synthetic near-eye images (the default) or a folder in the same on-disk format (docs/gaze_data.md)."""

    source: Literal["synthetic", "folder"] = "synthetic"
    root: Optional[InputFolder] = Field(None, description="data folder when source is 'folder'")
    image_size: int = Field(64, ge=32, le=512)
    train_subjects: int = Field(30, gt=0, le=MAX_COUNT)
    train_per_subject: int = Field(800, gt=0, le=MAX_COUNT)
    test_subjects: int = Field(6, gt=0, le=MAX_COUNT)
    test_per_subject: int = Field(1000, gt=0, le=MAX_COUNT)
    personal_subjects: int = Field(10, gt=0, le=MAX_COUNT)
    personal_adapt: int = Field(5, gt=0, le=MAX_COUNT)
    personal_eval: int = Field(200, gt=0, le=MAX_COUNT)
    workers: int = Field(2, gt=0, le=MAX_WORKERS)

    @field_validator("image_size")
    @classmethod
    def _multiple_of_32(cls, size: int) -> int:
        if size % 32:
            raise ValueError(f"must be a multiple of 32 (the network's stride), got {size}")
        return size

    @model_validator(mode="after")
    def _folder_needs_root(self) -> "GazeData":
        if self.source == "folder" and self.root is None:
            raise ValueError("source 'folder' needs data.root")
        return self


class GazeTeacher(StrictModel):
    """The teacher is trained here (no hub weights) or loaded from a local state_dict checkpoint."""

    arch: str = "convnextv2_atto_gaze"
    checkpoint: Optional[InputFile] = None
    train: TrainConfig = TrainConfig(epochs=10, batch_size=64, lr=2e-3)

    _arch = field_validator("arch")(lambda cls, v: check_model_name(v))


def _default_pairs() -> list[KDPair]:
    # GazeGen Eq. 1: reconstruct the teacher's stage-3 and stage-4 features (gamma = 0.5 each).
    return [
        KDPair(loss="masked_mse", student="stages.2", teacher="stages.2", weight=0.5),
        KDPair(loss="masked_mse", student="stages.3", teacher="stages.3", weight=0.5),
    ]


class GazeDistill(StrictModel):
    """Masked-image distillation: the student reconstructs masked pixels and the teacher's late features."""

    arch: str = "dft_gaze_student"
    inherit_stage1: bool = True
    freeze_inherited: bool = True
    mask_ratio: float = Field(0.6, gt=0, lt=1)
    mask_patch: int = Field(8, gt=0, le=512)  # the largest image_size
    pixel_weight: float = Field(1.0, ge=0)
    pairs: list[KDPair] = Field(default_factory=_default_pairs)
    train: TrainConfig = TrainConfig(epochs=20, batch_size=64, lr=2e-3)

    _arch = field_validator("arch")(lambda cls, v: check_model_name(v))

    @field_validator("pairs")
    @classmethod
    def _pairs_name_teacher(cls, pairs: list[KDPair]) -> list[KDPair]:
        # Pixel reconstruction is built in (pixel_weight); every listed pair matches a teacher layer.
        for pair in pairs:
            if not pair.teacher:
                raise ValueError(f"pair for student layer '{pair.student}' needs a teacher layer")
        return pairs


class GazeFinetune(StrictModel):
    """Gaze regression (L1 on yaw/pitch) on the K-means-balanced general set; teacher and student alike."""

    trainable: Literal["adapters", "all"] = "adapters"
    clusters: int = Field(15, gt=0, le=MAX_COUNT)
    train: TrainConfig = TrainConfig(epochs=10, batch_size=64, lr=3e-3, weight_decay=0.0)


class GazePersonalize(StrictModel):
    """k-shot personalization: only the last-stage adapters, with replay of the general set."""

    trainable: Literal["last_stage_adapters", "adapters"] = "last_stage_adapters"
    steps: int = Field(60, gt=0, le=MAX_COUNT)
    lr: float = Field(1e-3, gt=0, le=MAX_LR)
    replay_per_step: int = Field(16, ge=0, le=MAX_BATCH, description="general-set images mixed into each step")
    replay_weight: float = Field(0.25, ge=0, description="weight of the replay term next to the subject's own shots")


class GazeRecipe(RecipeBase):
    task: Literal["gaze"]
    data: GazeData = GazeData()
    teacher: GazeTeacher = GazeTeacher()
    distill: GazeDistill = GazeDistill()
    finetune: GazeFinetune = GazeFinetune()
    personalize: GazePersonalize = GazePersonalize()
