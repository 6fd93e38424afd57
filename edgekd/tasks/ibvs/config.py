"""The `ibvs` recipe sections (NSER-IBVS). Pydantic only: no torch at import."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator, model_validator

from edgekd.recipe.common import (
    MAX_COUNT, MAX_EPOCHS, MAX_WIDTH, RecipeBase, StrictModel, TrainConfig, check_model_name,
)
from edgekd.recipe.inputs import InputFile

LayerWidth = Annotated[int, Field(gt=0, le=MAX_WIDTH)]


class IbvsSim(StrictModel):
    """The simulator: camera, vehicle, world and drone dynamics (docs/ibvs.md)."""

    render_width: int = Field(320, ge=64, le=1280, description="teacher input: the camera image, 16:9")
    render_height: int = Field(180, ge=36, le=720)
    altitude: float = Field(2.5, gt=0, description="metres above the ground")
    vehicle_length: float = Field(0.30, gt=0)
    vehicle_width: float = Field(0.14, gt=0)
    world_extent: float = Field(6.0, gt=0, description="metres of textured ground around the vehicle")
    distractors: int = Field(40, ge=0, le=MAX_COUNT)
    dt: float = Field(1 / 15, gt=0, description="control period, seconds")
    tau: float = Field(0.3, gt=0, description="velocity time constant, seconds")
    wind_sigma: float = Field(0.002, ge=0)
    noise: float = Field(3.0, ge=0, description="pixel noise (grey levels)")

    @model_validator(mode="after")
    def _aspect(self) -> "IbvsSim":
        if abs(self.render_width * 720 - self.render_height * 1280) > 1280:
            raise ValueError(f"render size {self.render_width}x{self.render_height} must keep the camera's 16:9")
        return self


class IbvsLaw(StrictModel):
    """The analytic controller (paper values); commands are normalised by `command_scale` for the student."""

    lam: float = Field(0.30, gt=0)
    near_gains: tuple[float, float, float] = (0.5, 0.5, 0.1)
    switch_px: float = Field(60.0, gt=0)
    estimated_depth: float = Field(1.0, gt=0)
    command_scale: tuple[float, float, float] = (24.0, 9.0, 41.0)


class IbvsStarts(StrictModel):
    """Start poses: the vehicle's offset from the image centre (sensor pixels) and the yaw offset."""

    offset_px: tuple[float, float] = (420.0, 190.0)
    yaw_deg: float = Field(20.0, ge=0)


class IbvsPerception(StrictModel):
    """The teacher's perception: segmentation net + mask splitter, trained on the simulator's masks."""

    seg_widths: tuple[LayerWidth, ...] = (16, 32, 64, 128)
    splitter_widths: tuple[LayerWidth, ...] = (16, 32, 64, 128)
    train_crops: int = Field(4000, gt=0, le=MAX_COUNT)
    eval_frames: int = Field(200, gt=0, le=MAX_COUNT)
    checkpoint: Optional[InputFile] = Field(
        None, description="a TeacherPerception state_dict to load instead of training")
    train: TrainConfig = TrainConfig(epochs=4, batch_size=32, lr=2e-3, weight_decay=1e-4)


class IbvsCollect(StrictModel):
    """The teacher flies episodes; every frame and its command is logged."""

    episodes: int = Field(160, gt=0, le=MAX_COUNT)
    val_episodes: int = Field(24, gt=0, le=MAX_COUNT)
    max_seconds: float = Field(20.0, gt=0)
    hold_seconds: float = Field(3.0, ge=0, description="keep flying this long after the goal is reached")


class IbvsStudent(StrictModel):
    arch: str = "nser_student_half_coord"
    input_size: int = Field(96, ge=32, le=512)
    train: TrainConfig = TrainConfig(epochs=10, batch_size=128, lr=1e-3, weight_decay=0.0)
    patience: int = Field(3, ge=1, le=MAX_EPOCHS, description="early stopping: epochs without validation improvement")
    min_delta: float = Field(1e-4, ge=0)
    augment: bool = True

    _arch = field_validator("arch")(lambda cls, v: check_model_name(v))


class IbvsDagger(StrictModel):
    """DAgger rounds (not in the paper): the student flies, the teacher labels what it sees, retrain."""

    rounds: int = Field(1, ge=0, le=MAX_EPOCHS)  # DAgger rounds: an epoch-like count, bounded alike
    episodes: int = Field(80, gt=0, le=MAX_COUNT)
    epochs: int = Field(4, gt=0, le=MAX_EPOCHS)


class IbvsEvaluate(StrictModel):
    """Closed-loop flights: the paper's 8 start poses plus `random_starts` more; hard-goal success."""

    random_starts: int = Field(24, ge=0, le=MAX_COUNT)
    timeout_seconds: float = Field(75.0, gt=0)
    goal_px: float = Field(40.0, gt=0)
    hold_seconds: float = Field(3.0, gt=0)
    settle_seconds: float = Field(5.0, ge=0, description="keep flying after the hard goal; the final window is the last hold")


class IbvsRecipe(RecipeBase):
    task: Literal["ibvs"]
    sim: IbvsSim = IbvsSim()
    law: IbvsLaw = IbvsLaw()
    starts: IbvsStarts = IbvsStarts()
    perception: IbvsPerception = IbvsPerception()
    collect: IbvsCollect = IbvsCollect()
    student: IbvsStudent = IbvsStudent()
    dagger: IbvsDagger = IbvsDagger()
    evaluate: IbvsEvaluate = IbvsEvaluate()
