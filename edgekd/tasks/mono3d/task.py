"""The mono3d task (MonoTAKD): stages and the hooks the shared deploy stages call.

Only the camera student is deployed. The LiDAR teacher is exported too, for size and latency context only: its
input is a pillar grid (4 × Zb × Xb, built from the point cloud outside the graph), not an image, so the
teacher/student ratios of the report compare two different sensors' networks, not a distillation speed-up. The TA
needs LiDAR depth at run time and is not exported. Both exported graphs output the same maps (common.py) and are
scored the same way: decoded, written as KITTI objects and evaluated on the held-out frames.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgekd.pipeline import Stage, StageContext
from edgekd.tasks.base import TASKS, DeployModel, MetricSpec, Task, recipe_sections
from edgekd.tasks.deploy_stages import deploy_stages


@TASKS.register("mono3d")
class Mono3dTask(Task):
    name = "mono3d"
    metric = MetricSpec(name="ap3d_r40_moderate_iou0.5", unit="%", lower_is_better=False)

    def preflight(self, recipe: Any) -> None:
        from edgekd.errors import EdgekdError

        if recipe.data.source == "kitti":
            from edgekd.tasks.mono3d.kitti_io import index_frames

            for name in (recipe.data.train_dir, recipe.data.val_dir):
                if not (recipe.data.root / name).is_dir():
                    raise EdgekdError(f"data.root: {recipe.data.root / name} not found (layout: docs/mono3d.md)")
                index_frames(recipe.data.root / name, labels=True, velodyne=True)  # every frame has its 4 files

    def stages(self) -> list[Stage]:
        from edgekd.tasks.mono3d.evaluate import run_ablation, run_evaluate
        from edgekd.tasks.mono3d.stages import run_assistant, run_data, run_distill, run_student_plain, run_teacher

        return [
            Stage("data", run_data, recipe_sections("data", "model"),
                  help="synthetic driving scenes in the KITTI layout (or your KITTI folder), cached at network size"),
            Stage("teacher", run_teacher, recipe_sections("data", "model", "teacher"), ("data",),
                  help="LiDAR BEV detector on ground-truth boxes"),
            Stage("assistant", run_assistant, recipe_sections("data", "model", "assistant"), ("data",),
                  help="teaching assistant: camera features lifted with LiDAR depth, on ground-truth boxes"),
            Stage("student_plain", run_student_plain, _plain_student, ("data",),
                  help="camera student without distillation (the baseline)"),
            Stage("distill", run_distill, recipe_sections("data", "model", "student"), ("data", "teacher", "assistant"),
                  help="camera student with TAKD: IMD + 0.2·CMRD + logit KD"),
            Stage("evaluate", run_evaluate, recipe_sections("evaluate"),
                  ("data", "teacher", "assistant", "student_plain", "distill"),
                  help="KITTI result files and AP3D / APBEV (R40) of every model on the held-out scenes"),
            Stage("ablation", run_ablation, recipe_sections("data", "model", "student", "ablation", "evaluate"),
                  ("data", "teacher", "assistant"), help="TAKD terms switched on and off (ablation.enabled)"),
            *deploy_stages(self, ("data", "teacher", "distill"), ("evaluate", "ablation")),
        ]

    def deploy_models(self, ctx: StageContext) -> list[DeployModel]:
        from edgekd.models import count_parameters
        from edgekd.tasks.mono3d import common

        cfg = common.ctx_net_config(ctx)
        teacher = common.TeacherMaps(common.load("teacher", cfg, ctx.stage_path("teacher") / common.WEIGHTS)).eval()
        student = common.StudentMaps(common.load("student", cfg, ctx.stage_path("distill") / common.WEIGHTS,
                                                 fuse_residual=ctx.recipe.student.fuse_residual)).eval()
        rows, cols = cfg.grid.shape
        return [
            DeployModel("teacher", "mono3d_lidar_bev", teacher, (1, 4, rows, cols), count_parameters(teacher),
                        input_names=("pillars",), output_names=("maps",)),
            DeployModel("student", "mono3d_camera_takd", student, (1, 3, ctx.recipe.data.height, ctx.recipe.data.width),
                        count_parameters(student), input_names=("image",), output_names=("maps",)),
        ]

    def _held_out(self, ctx: StageContext, limit: int):
        from edgekd.tasks.mono3d import common
        from edgekd.tasks.mono3d.kitti_io import read_label_file

        arrays = common.load_split(ctx, "val")
        count = min(limit, len(arrays))
        labels = common.split_dir(ctx, "val") / "label_2"
        ev = ctx.recipe.evaluate
        held_out = common.HeldOut([read_label_file(labels / f"{i}.txt") for i in arrays.frame_ids[:count]],
                                  arrays.P2[:count], arrays.image_size[:count], common.camera_info(ctx)["height_scale"],
                                  common.head_grid(common.ctx_net_config(ctx)), ev.score_threshold, ev.top_k)
        return arrays, count, held_out

    def eval_arrays(self, ctx: StageContext, limit: int) -> tuple[np.ndarray, Any]:
        """Held-out images (normalised) and their frames' ground truth."""
        from edgekd.tasks.mono3d.dataset import normalise

        arrays, count, held_out = self._held_out(ctx, limit)
        return normalise(arrays.images[:count]), held_out

    def role_eval_arrays(self, ctx: StageContext, role: str, limit: int) -> tuple[np.ndarray, Any]:
        if role != "teacher":
            return self.eval_arrays(ctx, limit)
        arrays, count, held_out = self._held_out(ctx, limit)
        return arrays.pillars[:count].astype(np.float32), held_out

    def score(self, outputs: np.ndarray, targets: Any) -> float:
        from edgekd.tasks.mono3d.common import score_maps

        return score_maps(outputs, targets)

    def calibration_inputs(self, ctx: StageContext, limit: int) -> np.ndarray:
        from edgekd.tasks.mono3d import common
        from edgekd.tasks.mono3d.dataset import normalise

        images = common.load_split(ctx, "train").images
        picks = np.linspace(0, len(images) - 1, num=min(limit, len(images))).round().astype(int)
        return normalise(images[picks])

    def qat_dataset(self, ctx: StageContext) -> Any:
        from edgekd.tasks.mono3d import common
        from edgekd.tasks.mono3d.dataset import QatScenes

        return QatScenes(common.scenes(ctx, "train", common.ctx_net_config(ctx)))

    def qat_loss(self, outputs: Any, targets: Any) -> Any:
        from edgekd.tasks.mono3d.qat import maps_loss

        return maps_loss(outputs, targets)

    def report_metrics(self, ctx: StageContext) -> dict[str, dict[str, float]]:
        """AP3D|R40 at IoU 0.5 per difficulty ('moderate' is the task metric) from the evaluate stage."""
        models = _evaluation(ctx)["models"]
        return {role: {level: models[name][f"AP3D_R40@0.5/{level}"] for level in ("moderate", "easy", "hard")}
                for role, name in (("teacher", "teacher"), ("student", "student"))}

    def report_outcomes(self, ctx: StageContext) -> dict[str, dict[str, dict[str, Any]]]:
        """AP3D / APBEV moderate at IoU 0.7 and 0.5 of every model: the TA beside the teacher (both need LiDAR),
        the plain student beside the TAKD one."""
        models = _evaluation(ctx)["models"]
        outcomes: dict[str, dict[str, dict[str, Any]]] = {"teacher": {}, "student": {}}
        for role, name, suffix in (("teacher", "teacher", ""), ("teacher", "assistant", " [teaching assistant]"),
                                   ("student", "student", ""), ("student", "student_plain", " [plain student]")):
            outcomes[role].update(_ap_outcomes(models[name], suffix))
        return outcomes

    def report_extras(self, ctx: StageContext) -> dict[str, Any]:
        from edgekd.tasks.mono3d.evaluate import LABELS

        models = _evaluation(ctx)["models"]
        notes = [
            "The teacher is a LiDAR network: its input is a pillar grid built from the point cloud outside the graph, "
            "so its latency leaves voxelisation out and the teacher/student ratios compare two sensors' networks. "
            "The teaching assistant needs LiDAR depth at run time and is not exported.",
            "Held-out KITTI evaluation, Car AP3D|R40 moderate at IoU 0.7 / 0.5: "
            + "; ".join(_ap_pair(label, models[name]) for name, label in LABELS.items()),
        ]
        ablation = json.loads((ctx.stage_path("ablation") / "metrics.json").read_text())
        if ablation.get("enabled"):
            arms = [arm["name"] for arm in ablation["arms"]]
            notes.append(f"TAKD ablation ({ablation['epochs']} epochs, {ablation['train_scenes']} scenes), AP3D|R40 "
                         "moderate at IoU 0.7 / 0.5: " + "; ".join(_ap_pair(a, ablation["models"][a]) for a in arms))
        return {"notes": notes}


def _ap_pair(label: str, result: dict[str, float]) -> str:
    return f"{label} {result['AP3D_R40@0.7/moderate']:.2f} / {result['AP3D_R40@0.5/moderate']:.2f}"


def _plain_student(recipe) -> dict[str, Any]:
    # What the plain student reads: not the KD switches, so an ablation of them does not retrain the baseline.
    student = recipe.student.model_dump(mode="json", include={"train", "depth_weight"})
    return {**recipe_sections("data", "model")(recipe), "student": student}


def _evaluation(ctx: StageContext) -> dict[str, Any]:
    return json.loads((ctx.stage_path("evaluate") / "metrics.json").read_text())


def _ap_outcomes(result: dict[str, float], suffix: str) -> dict[str, dict[str, Any]]:
    return {f"{metric} R40 @{iou} moderate{suffix}": {"value": float(result[f"{metric}_R40@{iou}/moderate"]),
                                                      "unit": "%", "lower_is_better": False}
            for metric in ("AP3D", "APBEV") for iou in ("0.7", "0.5")}
