"""The gaze task (GazeGen's DFT Gaze): stages and the hooks the shared deploy stages call."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgekd.pipeline import Stage, StageContext
from edgekd.tasks.base import TASKS, DeployModel, MetricSpec, Task
from edgekd.tasks.deploy_stages import deploy_stages
from edgekd.tasks.gaze import common
from edgekd.tasks.gaze.dataset import SPLITS
from edgekd.tasks.gaze.metrics import angular_error_deg
from edgekd.tasks.gaze.personalize import run_personalize
from edgekd.tasks.gaze.stages import (
    balanced_train,
    run_data,
    run_distill,
    run_finetune,
    run_teacher,
    student_weights,
    teacher_weights,
)


def _seeded(section):
    from edgekd.recipe.common import config_key_dump

    return lambda recipe: {"seed": recipe.seed, "section": config_key_dump(section(recipe))}


@TASKS.register("gaze")
class GazeTask(Task):
    name = "gaze"
    metric = MetricSpec(name="angular_error", unit="°", lower_is_better=True)

    def preflight(self, recipe: Any) -> None:
        """A user's data folder has its label files, and every distillation pair names real layers."""
        from edgekd.distill.hooks import resolve_module
        from edgekd.errors import EdgekdError

        if recipe.data.source == "folder":
            for split in SPLITS:
                labels = recipe.data.root / split / "labels.csv"
                if not labels.is_file():
                    raise EdgekdError(f"data.root: {labels} not found (layout: docs/gaze_data.md)")

        models = {"student": common.build_model(recipe.distill.arch), "teacher": common.build_model(recipe.teacher.arch)}
        if recipe.quant.enabled:
            from edgekd.models import deploy_copy
            from edgekd.quant.fallback import match_fallback

            match_fallback(deploy_copy(models["student"]), recipe.quant.fallback)
        for index, pair in enumerate(recipe.distill.pairs):
            for role in ("student", "teacher"):
                try:
                    resolve_module(models[role], getattr(pair, role), role)
                except EdgekdError as error:
                    raise EdgekdError(f"distill.pairs[{index}].{role}: {error}") from None

    def stages(self) -> list[Stage]:
        return [
            Stage("data", run_data, _seeded(lambda r: r.data), help="synthetic near-eye images (or your folder)"),
            Stage("teacher", run_teacher, _seeded(lambda r: r.teacher), ("data",), distributed=True,
                  help="ConvNeXt V2-Atto + adapters, L1 on gaze"),
            Stage("distill", run_distill, _seeded(lambda r: r.distill), ("data", "teacher"), distributed=True,
                  help="masked-image feature distillation into the DFT Gaze student"),
            Stage("finetune", run_finetune, _seeded(lambda r: r.finetune), ("data", "distill"), distributed=True,
                  help="student adapters + head, L1 on gaze"),
            Stage("personalize", run_personalize, _seeded(lambda r: r.personalize), ("data", "teacher", "finetune"),
                  help="k-shot last-stage adapters per held-out subject"),
            *deploy_stages(self, ("data", "teacher", "finetune"), ("teacher", "finetune", "personalize")),
        ]

    def deploy_models(self, ctx: StageContext) -> list[DeployModel]:
        size = ctx.recipe.data.image_size
        teacher = common.load_model(ctx.recipe.teacher.arch, teacher_weights(ctx))
        student = common.load_model(ctx.recipe.distill.arch, student_weights(ctx))
        return [
            DeployModel("teacher", ctx.recipe.teacher.arch, teacher, (1, 1, size, size), _tunable(teacher),
                        output_names=("gaze",)),
            DeployModel("student", ctx.recipe.distill.arch, student, (1, 1, size, size), _tunable(student),
                        output_names=("gaze",)),
        ]

    def eval_arrays(self, ctx: StageContext, limit: int) -> tuple[np.ndarray, Any]:
        test = common.load_arrays(ctx, "test")
        return common.normalise(test.images[:limit]), np.deg2rad(test.gaze_deg[:limit]).astype(np.float32)

    def score(self, outputs: np.ndarray, targets: Any) -> float:
        return float(angular_error_deg(outputs, targets).mean())

    def calibration_inputs(self, ctx: StageContext, limit: int) -> np.ndarray:
        train = common.load_arrays(ctx, "train")
        # Evenly spaced over the split, so every training subject is in the calibration set.
        picks = np.linspace(0, len(train.images) - 1, num=min(limit, len(train.images))).round().astype(int)
        return common.normalise(train.images[picks])

    def qat_dataset(self, ctx: StageContext) -> Any:
        return balanced_train(ctx, ctx.recipe.finetune.clusters)

    def qat_loss(self, outputs: Any, targets: Any) -> Any:
        import torch.nn.functional as F

        return F.l1_loss(outputs, targets)  # the fine-tuning loss (L1 on yaw/pitch in radians)

    def report_metrics(self, ctx: StageContext) -> dict[str, dict[str, float]]:
        teacher = json.loads((ctx.stage_path("teacher") / "metrics.json").read_text())
        student = json.loads((ctx.stage_path("finetune") / "metrics.json").read_text())
        personal = json.loads((ctx.stage_path("personalize") / "metrics.json").read_text())
        general = {"teacher": teacher["general"], "student": student["general"]}
        return {
            role: {
                "general": general[role],
                # held-out subjects, then new subjects before and after k-shot personalization
                "new_subjects": personal[role]["before"],
                "new_subjects_personalized": personal[role]["after"],
            }
            for role in ("teacher", "student")
        }


def _tunable(model) -> int:
    from edgekd.models import set_trainable_

    count = set_trainable_(model, "adapters")
    model.requires_grad_(False)
    return count
