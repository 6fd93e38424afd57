"""The ibvs task (NSER-IBVS): stages and the hooks the shared deploy stages call.

The teacher is a pipeline, not one network: its exported part is the perception graph (segmentation +
mask splitter, reading the whole camera frame), and its score runs the corner extraction and the law on
that graph's outputs. Both roles are scored the same way: the mean absolute error of their piloting
commands against the law on the exact corners (the oracle), in command units (% of full speed).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgekd.pipeline import Stage, StageContext
from edgekd.tasks.base import TASKS, DeployModel, MetricSpec, Task, recipe_sections
from edgekd.tasks.deploy_stages import deploy_stages
from edgekd.tasks.ibvs import common
from edgekd.tasks.ibvs.corners import corners_from_logits
from edgekd.tasks.ibvs.law import denormalise_commands, to_commands, velocities

TEACHER_EVAL_LIMIT = 256  # whole camera frames are large; parity on this many is plenty


def _collect_config(recipe) -> dict[str, Any]:
    # The teacher's flights depend on the student only through the size of the frames they log: another student
    # architecture or schedule reuses them.
    return {**recipe_sections("sim", "law", "starts", "collect", "evaluate")(recipe),
            "student_input_size": recipe.student.input_size}


@TASKS.register("ibvs")
class IbvsTask(Task):
    name = "ibvs"
    metric = MetricSpec(name="command_mae", unit="%", lower_is_better=True)

    def stages(self) -> list[Stage]:
        from edgekd.tasks.ibvs.deployed import run_flight
        from edgekd.tasks.ibvs.stages import run_collect, run_data, run_teacher
        from edgekd.tasks.ibvs.student_stages import run_dagger, run_distill, run_evaluate

        flight = Stage("flight", run_flight, recipe_sections("evaluate", "profile"), ("data", "collect", "export"),
                       help="exported students fly the closed loop; whole teacher pipeline vs student latency")
        return [
            Stage("data", run_data, recipe_sections("sim", "starts", "perception"),
                  help="simulator crops + masks for the teacher's perception, held-out frames"),
            Stage("teacher", run_teacher, recipe_sections("sim", "perception"), ("data",),
                  help="segmentation net + mask splitter on the simulator's masks"),
            Stage("collect", run_collect, _collect_config, ("teacher",),
                  help="the teacher flies episodes; frames + commands logged"),
            Stage("distill", run_distill, recipe_sections("student"), ("collect",),
                  help="student CNN regresses the teacher's commands (MSE, early stopping)"),
            Stage("dagger", run_dagger, recipe_sections("dagger", "student"), ("teacher", "collect", "distill"),
                  help="the student flies, the teacher labels, the student retrains"),
            Stage("evaluate", run_evaluate, recipe_sections("evaluate", "starts"), ("teacher", "distill", "dagger"),
                  help="closed-loop flights: oracle, teacher, student(s) from the same starts"),
            *deploy_stages(self, ("data", "teacher", "collect", "dagger"), ("evaluate",), (flight,)),
        ]

    def deploy_models(self, ctx: StageContext) -> list[DeployModel]:
        from edgekd.models import count_parameters
        from edgekd.tasks.ibvs.stages import load_teacher
        from edgekd.tasks.ibvs.student_stages import STUDENT, load_student

        camera, size = common.camera(ctx.recipe), ctx.recipe.student.input_size
        teacher = load_teacher(ctx)
        student = load_student(ctx.recipe, ctx.stage_path("dagger") / STUDENT)
        return [
            DeployModel("teacher", "nser_perception", teacher, (1, 3, camera.render_height, camera.render_width),
                        count_parameters(teacher), output_names=("vehicle", "split")),
            DeployModel("student", ctx.recipe.student.arch, student, (1, 3, size, size), count_parameters(student),
                        output_names=("commands",)),
        ]

    def eval_arrays(self, ctx: StageContext, limit: int) -> tuple[np.ndarray, Any]:
        """Validation-episode frames (the student's view) and the oracle's commands for them."""
        from edgekd.tasks.ibvs.episodes import load_episode, read_index

        folder = ctx.stage_path("collect") / "val"
        frames, corners = [], []
        for entry in read_index(folder)["episodes"]:
            episode = load_episode(folder, entry)
            frames.append(episode["frames"])
            corners.append(episode["corners"])
        frames_all, corners_all = np.concatenate(frames), np.concatenate(corners)
        picks = np.linspace(0, len(frames_all) - 1, num=min(limit, len(frames_all))).round().astype(int)
        return common.normalise(frames_all[picks]), self._oracle(ctx, corners_all[picks])

    def role_eval_arrays(self, ctx: StageContext, role: str, limit: int) -> tuple[np.ndarray, Any]:
        if role != "teacher":
            return self.eval_arrays(ctx, limit)
        from edgekd.tasks.ibvs.stages import EVAL_FRAMES, teacher_goal

        with np.load(ctx.stage_path("data") / EVAL_FRAMES) as data:
            frames, corners = data["frames"][:TEACHER_EVAL_LIMIT], data["corners"][:TEACHER_EVAL_LIMIT]
        # The teacher steers to its own reference goal; the oracle it is scored against, to the exact one.
        self._teacher_context = (common.camera(ctx.recipe), common.gains(ctx.recipe), teacher_goal(ctx))
        return common.normalise(frames), self._oracle(ctx, corners)

    def _oracle(self, ctx: StageContext, corners: np.ndarray) -> np.ndarray:
        camera, gains, goal = common.camera(ctx.recipe), common.gains(ctx.recipe), _goal(ctx)
        self._scale = ctx.recipe.law.command_scale
        return np.stack([to_commands(velocities(c, goal, camera.sensor_K, gains)[0]) for c in corners])

    def score(self, outputs: np.ndarray, targets: Any) -> float:
        return float(np.abs(denormalise_commands(outputs, self._scale) - targets).mean())

    def role_score(self, role: str):
        return self.score if role != "teacher" else self._teacher_score

    def _teacher_score(self, outputs: Any, targets: Any) -> float:
        camera, gains, goal = self._teacher_context
        vehicle, split = outputs
        commands = []
        for v, s in zip(vehicle, split):
            found = corners_from_logits(v, s)
            commands.append(np.zeros(3) if found is None else
                            to_commands(velocities(camera.to_sensor(found), goal, camera.sensor_K, gains)[0]))
        return float(np.abs(np.stack(commands) - targets).mean())

    def calibration_inputs(self, ctx: StageContext, limit: int) -> np.ndarray:
        data = self.qat_dataset(ctx)
        picks = np.linspace(0, len(data) - 1, num=min(limit, len(data))).round().astype(int)
        return common.normalise(data.frames[picks])

    def qat_dataset(self, ctx: StageContext) -> Any:
        from edgekd.tasks.ibvs.episodes import EpisodeFrames

        rounds = sorted(ctx.stage_path("dagger").glob("round_*"))
        self._scale = ctx.recipe.law.command_scale
        return EpisodeFrames([ctx.stage_path("collect") / "train", *rounds])

    def qat_loss(self, outputs: Any, targets: Any) -> Any:
        import torch.nn.functional as F

        return F.mse_loss(outputs, targets)

    def report_metrics(self, ctx: StageContext) -> dict[str, dict[str, float]]:
        """command_mae of the float models on the held-out parity set (the export stage measured it)."""
        models = json.loads((ctx.stage_path("export") / "onnx" / "models.json").read_text())
        return {role: {"held_out": info["parity"]["metric_torch"]} for role, info in models.items()}

    def report_outcomes(self, ctx: StageContext) -> dict[str, dict[str, dict[str, Any]]]:
        """Closed-loop flights: PyTorch models from the evaluate stage, exported students from the flight stage."""
        flights = json.loads((ctx.stage_path("evaluate") / "flights.json").read_text())
        deployed = json.loads((ctx.stage_path("flight") / "flights.json").read_text())
        outcomes = {role: _outcomes(flights[role]) for role in ("teacher", "student")}
        for key, result in deployed.items():
            runtime = key.split("/", 1)[1].replace("/", " ")
            outcomes["student"].update({f"{name} [{runtime}]": value for name, value in _outcomes(result).items()
                                        if name.startswith("paper")})
        if "student_bc" in flights:
            outcomes["student"].update({f"{name} [behaviour cloning only]": value
                                        for name, value in _outcomes(flights["student_bc"]).items()})
        return outcomes

    def report_extras(self, ctx: StageContext) -> dict[str, Any]:
        latency = json.loads((ctx.stage_path("flight") / "pipeline_latency.json").read_text())
        ratios = {f"pipeline_latency_p50_{k.split('/', 1)[1].replace('/', '_')}": v
                  for k, v in latency["teacher_over_student_p50"].items()}
        teacher = latency["p50_ms"]["teacher/onnxruntime/fp32"]
        students = "; ".join(f"{k} p50 {v:.2f} ms" for k, v in latency["p50_ms"].items() if k.startswith("student/"))
        notes = [f"Whole pipelines, frame in → command out, timed side by side on {latency['frames']} held-out "
                 f"frames: teacher (perception + corners + law) p50 {teacher:.2f} ms; {students}"]
        return {"ratios": ratios, "notes": notes}


def _goal(ctx: StageContext) -> np.ndarray:
    from edgekd.tasks.ibvs.stages import sim_goal

    return sim_goal(ctx.recipe)


OUTCOME_UNITS = {"success_rate": ("", False), "error_mean_px": ("px", True), "error_median_px": ("px", True),
                 "iou": ("", False), "seconds": ("s", True)}


def _outcomes(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Flight summaries as report outcomes: '<starts> <quantity>' with unit and direction."""
    out = {}
    for group, label in (("paper_starts", "paper 8 starts"), ("all_starts", "all starts")):
        for key, (unit, lower) in OUTCOME_UNITS.items():
            out[f"{label}: {key.replace('_', ' ')}"] = {"value": float(result[group][key]), "unit": unit,
                                                        "lower_is_better": lower}
    return out
