"""Recipe blocks shared by every task: training, export, profiling.

Kept free of torch imports so `edgekd recipe validate` stays quick; names that live in registries
(models, KD losses) are checked by validators that import the registry only when a recipe is loaded.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

RUNTIMES = ("onnxruntime", "openvino", "tensorrt", "pytorch", "tflite", "ncnn")
PRECISIONS = ("fp32", "fp16", "int8")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class StrictModel(BaseModel):
    """Every recipe block rejects unknown keys, so a typo never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TrainConfig(StrictModel):
    """One optimisation run: AdamW with linear warm-up then cosine decay, checkpointed every epoch."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    warmup_epochs: float = Field(0.0, ge=0)
    grad_clip: Optional[float] = Field(None, gt=0)
    checkpoint_every_steps: int = Field(0, ge=0, description="0: checkpoint at epoch ends only")
    num_workers: int = Field(0, ge=0)


class KDPair(StrictModel):
    """A distillation term: `loss(teacher[teacher_layer], student[student_layer])`, layers by module path."""

    loss: str
    student: str
    teacher: Optional[str] = None
    weight: float = Field(1.0, ge=0)

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, name: str) -> str:
        from edgekd.distill.losses import KD_LOSSES

        if name not in KD_LOSSES:
            from edgekd.registry import unknown_name_message

            raise ValueError(unknown_name_message("KD loss", name, KD_LOSSES.names()))
        return name


class ParityBudget(StrictModel):
    """How far a deployed artifact may drift from PyTorch before its stage fails."""

    max_abs_diff: float = Field(1e-3, ge=0)
    max_metric_delta: float = Field(0.05, ge=0)


class ExportConfig(StrictModel):
    opset: int = Field(18, ge=17, le=23)
    simplify: bool = True
    parity: ParityBudget = ParityBudget()
    eval_samples: int = Field(2000, gt=0, description="held-out samples used for the parity metric")


class ProfileConfig(StrictModel):
    runtimes: list[Literal["onnxruntime"]] = ["onnxruntime"]
    threads: int = Field(2, gt=0)
    batch_size: int = Field(1, gt=0)
    warmup: int = Field(20, ge=0)
    # Sub-3 ms models on a shared 2-core host drift by ±30% between runs; 1000 runs alternated in 10 rounds
    # keep the teacher/student ratio within a few percent (measured, docs/results.md).
    runs: int = Field(1000, ge=1)
    rounds: int = Field(10, ge=1, description="teacher and student alternate this many times")


class RecipeBase(StrictModel):
    """Fields every recipe has; each task adds its own sections."""

    name: str = Field(pattern=NAME_PATTERN)
    task: str
    seed: int = 0
    description: str = ""
    export: ExportConfig = ExportConfig()
    profile: ProfileConfig = ProfileConfig()


def check_model_name(name: str) -> str:
    """Validator body for fields that name a registered model builder."""
    from edgekd.models import MODELS
    from edgekd.registry import unknown_name_message

    if name not in MODELS:
        raise ValueError(unknown_name_message("model", name, MODELS.names()))
    return name
