"""What a task provides: its stages, and what the generic export/profile/report stages need from it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
from torch import nn

from edgekd.pipeline import Stage, StageContext
from edgekd.registry import Registry


@dataclass
class DeployModel:
    """A trained network ready for export, with the facts the report needs."""

    role: str
    arch: str
    module: nn.Module
    input_shape: tuple[int, ...]
    trainable_parameters: int
    input_names: tuple[str, ...] = ("input",)
    output_names: tuple[str, ...] = ("output",)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str
    lower_is_better: bool


class Task(ABC):
    name: ClassVar[str]
    metric: ClassVar[MetricSpec]

    def preflight(self, recipe: Any) -> None:
        """Checks that need the task's code (layer paths exist, ...); raise EdgekdError('field.path: why')."""

    @abstractmethod
    def stages(self) -> list[Stage]:
        """The task's stages in order, generic export/profile/report included."""

    @abstractmethod
    def deploy_models(self, ctx: StageContext) -> list[DeployModel]:
        """The trained networks to export (teacher and student)."""

    @abstractmethod
    def eval_arrays(self, ctx: StageContext, limit: int) -> tuple[np.ndarray, Any]:
        """Held-out network inputs (float32, normalised) and their targets, for parity checks."""

    @abstractmethod
    def score(self, outputs: np.ndarray, targets: Any) -> float:
        """The task metric of network outputs against targets."""

    @abstractmethod
    def calibration_inputs(self, ctx: StageContext, limit: int) -> np.ndarray:
        """Training-set network inputs (float32, normalised) for int8 calibration; never held-out data."""

    @abstractmethod
    def qat_dataset(self, ctx: StageContext) -> Any:
        """A torch Dataset of (input, target) pairs for quantization-aware fine-tuning."""

    @abstractmethod
    def qat_loss(self, outputs: Any, targets: Any) -> Any:
        """The task loss on network outputs (a tensor); QAT also applies it against the float outputs."""

    @abstractmethod
    def report_metrics(self, ctx: StageContext) -> dict[str, dict[str, float]]:
        """Per role ('teacher', 'student'): the task metrics measured by the training stages."""

    def role_eval_arrays(self, ctx: StageContext, role: str, limit: int) -> tuple[np.ndarray, Any]:
        """Held-out inputs and targets for `role`'s parity check; the same for every role unless a task's
        teacher reads different inputs than its student."""
        return self.eval_arrays(ctx, limit)

    def role_score(self, role: str) -> Callable[[Any, Any], float]:
        """The metric function for `role`'s outputs (a teacher may output something else than the student)."""
        return self.score

    def report_outcomes(self, ctx: StageContext) -> dict[str, dict[str, dict[str, Any]]]:
        """Per role: results that are not the task metric, each {"value", "unit", "lower_is_better"}."""
        return {}

    def report_extras(self, ctx: StageContext) -> dict[str, Any]:
        """Extra 'ratios' and 'notes' for the report (e.g. a teacher that is a whole pipeline, not one network)."""
        return {}


def recipe_sections(*names: str) -> Callable[[Any], dict[str, Any]]:
    """A stage's config key: the recipe seed and the named sections, so a change to any of them re-runs it
    (except the run-only fields, `edgekd.recipe.common.RUN_ONLY_FIELDS`)."""
    from edgekd.recipe.common import config_key_dump

    return lambda recipe: {"seed": recipe.seed, **{n: config_key_dump(getattr(recipe, n)) for n in names}}


TASKS: Registry[type[Task]] = Registry("task")
