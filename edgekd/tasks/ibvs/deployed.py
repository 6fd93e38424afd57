"""After export: the exported students fly the same closed loop, and the whole teacher pipeline is timed
against the student, side by side.

"Pipeline" means frame in, command out: for the teacher, normalising the camera image, the exported
perception network (ONNX Runtime), corner extraction and the law; for the student, resizing and
normalising, the exported network and scaling its outputs. Both run on the same held-out frames in
alternating rounds, so the ratio comes from the same minutes of the same machine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekd.artifacts import atomic_write_json
from edgekd.pipeline import StageContext
from edgekd.profile.pipelines import time_pipelines
from edgekd.profile.stats import LatencyStats
from edgekd.tasks.export_stage import load_artifacts
from edgekd.tasks.ibvs import common
from edgekd.tasks.ibvs.controllers import StudentController, TeacherController, session_runner
from edgekd.tasks.ibvs.stages import EVAL_FRAMES, sim_goal
from edgekd.tasks.ibvs.student_stages import fly_all

FLOWN = {("float", "fp32"), ("qat", "int8")}


def _rows(ctx: StageContext, role: str) -> list[dict[str, Any]]:
    return [row for row in load_artifacts(ctx) if row["role"] == role and row["status"] == "passed"
            and row["runtime"] in ctx.recipe.profile.runtimes and (row["variant"], row["precision"]) in FLOWN]


def student_runners(ctx: StageContext) -> dict[str, Any]:
    size, threads = ctx.recipe.student.input_size, ctx.recipe.profile.threads
    return {f"{row['runtime']}/{row['precision']}": session_runner(ctx.run_dir / row["path"], threads, row["runtime"],
                                                                  row["precision"], (1, 3, size, size))
            for row in _rows(ctx, "student")}


def teacher_runner(ctx: StageContext):
    camera = common.camera(ctx.recipe)
    row = next(r for r in _rows(ctx, "teacher") if r["runtime"] == "onnxruntime")
    return session_runner(ctx.run_dir / row["path"], ctx.recipe.profile.threads,
                          shape=(1, 3, camera.render_height, camera.render_width))


def run_flight(ctx: StageContext) -> dict[str, Any]:
    recipe = ctx.recipe
    size, scale = recipe.student.input_size, recipe.law.command_scale
    flights = {f"student/{key}": fly_all(ctx, lambda goal, r=runner: StudentController(r, size, scale),
                                         f"closed loop: exported student {key}")
               for key, runner in student_runners(ctx).items()}
    latency = pipeline_latency(ctx)
    atomic_write_json(ctx.stage_dir / "flights.json", flights)
    atomic_write_json(ctx.stage_dir / "pipeline_latency.json", latency)
    for key, result in flights.items():
        paper = result["paper_starts"]
        ctx.console.print(f"{key:28} 8 paper starts: success {paper['success_rate']:.0%}, "
                          f"final error {paper['error_mean_px']:.1f} px")
    for key, value in latency["p50_ms"].items():
        ctx.console.print(f"pipeline {key:28} p50 {value:8.3f} ms")
    return {"ratios": latency["teacher_over_student_p50"]}


def pipeline_latency(ctx: StageContext) -> dict[str, Any]:
    recipe, cfg = ctx.recipe, ctx.recipe.profile
    with np.load(ctx.stage_path("data") / EVAL_FRAMES) as data:
        frames = data["frames"]
    camera, goal = common.camera(recipe), sim_goal(recipe)
    pipelines = {"teacher/onnxruntime/fp32": TeacherController(teacher_runner(ctx), goal, camera, common.gains(recipe))}
    for key, runner in student_runners(ctx).items():
        pipelines[f"student/{key}"] = StudentController(runner, recipe.student.input_size, recipe.law.command_scale)
    acts = {key: controller.act for key, controller in pipelines.items()}
    samples = time_pipelines(acts, frames, runs=max(cfg.runs // 4, 1), rounds=cfg.rounds, warmup=cfg.warmup)
    stats = {key: LatencyStats.from_samples(values) for key, values in samples.items()}
    p50 = {key: s.p50_ms for key, s in stats.items()}
    teacher = p50.pop("teacher/onnxruntime/fp32")
    return {"p50_ms": {"teacher/onnxruntime/fp32": teacher, **p50},
            "stats": {key: s.model_dump(mode="json") for key, s in stats.items()},
            "teacher_over_student_p50": {key: teacher / value for key, value in p50.items() if value > 0},
            "frames": int(len(frames)), "threads": cfg.threads}
