"""The `yolo` stage: the exported student and teacher against an Ultralytics YOLOv8 at the same input size.

The question a detection user asks first is "how does this compare with the YOLO I would otherwise deploy?".
With `compare_yolo: yolov8s` (the optional `yolo` extra) this stage builds that YOLO from Ultralytics' model YAML
with the layout classes (random weights: latency does not depend on them), exports it with edgekd's ONNX
exporter at the recipe's input size, and times it side by side with the float student's and teacher's fp32
ONNX files in one run (alternating rounds, the profile settings). All three graphs end before NMS when the recipe
exports with `postprocess: host`, so the comparison is network against network.

Without `compare_yolo` the stage records that no comparison was asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from edgekd.artifacts import atomic_write_json
from edgekd.pipeline import StageContext
from edgekd.tasks.export_stage import load_artifacts
from edgekd.tasks.layout import common

YOLO_FILE = "yolo_latency.json"


def yolo_config(recipe) -> dict[str, Any]:
    return {"compare_yolo": recipe.compare_yolo, "input": list(common.input_size(recipe)),
            "classes": list(recipe.data.classes), "profile": recipe.profile.model_dump(mode="json")}


def check_yolo_request(recipe) -> None:
    """Preflight of every YOLO the recipe names (`compare_yolo`, `teacher.yolo`): a known YOLOv8. Ultralytics is
    not imported: validating a recipe needs no optional extra, the stages that build a YOLO do (`needs_ultralytics`).
    (The data section already holds the input sides to multiples of 32, which YOLOv8's coarsest level needs too.)"""
    from edgekd.yolo.models import check_model_name

    for name in (recipe.compare_yolo, recipe.teacher.yolo):
        if name is not None:
            check_model_name(name)


def needs_ultralytics(yolo_name: Callable[[Any], Optional[str]]) -> Callable[[Any], None]:
    """A stage's `needs`: Ultralytics installed when the recipe names a YOLO there (checked before any stage runs,
    so a missing extra stops a run before hours of training, not at the stage that builds the YOLO)."""
    def check(recipe: Any) -> None:
        if yolo_name(recipe) is not None:
            from edgekd.yolo.offline import require_ultralytics

            require_ultralytics()

    return check


def run_yolo(ctx: StageContext) -> dict[str, Any]:
    recipe = ctx.recipe
    if recipe.compare_yolo is None:
        atomic_write_json(ctx.stage_dir / YOLO_FILE, {"model": None})
        ctx.console.print("no YOLO comparison requested (compare_yolo)")
        return {"model": None}
    files = {**_layout_files(ctx), recipe.compare_yolo: _export_yolo(ctx)}
    result = _time(files, ctx)
    atomic_write_json(ctx.stage_dir / YOLO_FILE, result)
    for name, p50 in result["p50_ms"].items():
        ctx.console.print(f"{name:10} ONNX Runtime fp32 p50 {p50:.3f} ms")
    ctx.console.print(f"{recipe.compare_yolo} / student p50: {result['yolo_over_student_p50']:.2f}×")
    return {"p50_ms": result["p50_ms"], "yolo_over_student_p50": result["yolo_over_student_p50"]}


def _layout_files(ctx: StageContext) -> dict[str, Path]:
    rows = [r for r in load_artifacts(ctx) if r["variant"] == "float" and r["backend"] == "onnx"
            and r["precision"] == "fp32"]
    return {r["role"]: ctx.run_dir / r["path"] for r in rows if r["role"] in common.ROLES}


def _export_yolo(ctx: StageContext) -> Path:
    import torch

    from edgekd.export import EXPORTERS
    from edgekd.yolo.models import build_yolo

    recipe, cfg = ctx.recipe, ctx.recipe.export
    torch.manual_seed(recipe.seed)
    model = build_yolo(recipe.compare_yolo, len(recipe.data.classes))
    height, width = common.input_size(recipe)
    path = ctx.stage_dir / f"{recipe.compare_yolo}.onnx"
    EXPORTERS.get("onnx").export(model, torch.zeros(1, 3, height, width), path, precision="fp32", opset=cfg.opset,
                                 input_names=("input",), output_names=("output0",), simplify=cfg.simplify)
    return path


def _time(files: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    from edgekd.profile.local import profile_side_by_side
    from edgekd.profile.stats import median_ratio

    recipe, prof = ctx.recipe, ctx.recipe.profile
    height, width = common.input_size(recipe)
    results = profile_side_by_side(files, input_shape=(1, 3, height, width), threads=prof.threads,
                                   warmup=prof.warmup, runs=prof.runs, rounds=prof.rounds)
    yolo = recipe.compare_yolo
    ratio = median_ratio(results[yolo].samples_ms, results["student"].samples_ms)
    return {
        "model": yolo,
        "input": [1, 3, height, width],
        "files": {name: path.resolve().relative_to(ctx.run_dir.resolve()).as_posix() for name, path in files.items()},
        "p50_ms": {name: r.stats.p50_ms for name, r in results.items()},
        "p90_ms": {name: r.stats.p90_ms for name, r in results.items()},
        "yolo_over_student_p50": ratio.ratio,
        "yolo_over_student_p50_interval": [ratio.low, ratio.high],
        "results": {name: r.model_dump(mode="json", exclude={"samples_ms"}) for name, r in results.items()},
    }
