"""The `postprocess` stage: NMS outside the exported graph vs inside it, both measured on the same images.

The export stage ships the student in the recipe's mode (`postprocess: host | graph`); this stage exports the
float student in the other mode too, scores both files on the held-out images (ONNX Runtime) and times them
image in → detections out, side by side in alternating rounds: the host mode's time includes its NMS on this
CPU (`postprocess.postprocess_detections`), the graph mode's NMS runs inside ONNX Runtime.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edgekd.artifacts import atomic_write_json
from edgekd.pipeline import StageContext
from edgekd.profile.pipelines import time_pipelines
from edgekd.profile.stats import LatencyStats
from edgekd.tasks.export_stage import load_artifacts
from edgekd.tasks.layout import common

MODES_FILE = "modes.json"
MODES = ("host", "graph")


def other_mode(mode: str) -> str:
    return MODES[1 - MODES.index(mode)]


def run_modes(task, ctx: StageContext) -> dict[str, Any]:
    recipe = ctx.recipe
    files = {recipe.postprocess: _configured_file(ctx), other_mode(recipe.postprocess): _export_other(task, ctx)}
    inputs, truths = task.eval_arrays(ctx, recipe.export.eval_samples)
    pipelines = {mode: _pipeline(path, mode, recipe) for mode, path in files.items()}
    ap50 = {mode: task.score(_outputs(run, inputs), truths) for mode, run in pipelines.items()}
    per_image = {mode: (lambda image, run=run: run(image[None])) for mode, run in pipelines.items()}
    samples = time_pipelines(per_image, inputs, runs=max(recipe.profile.runs // 4, 1), rounds=recipe.profile.rounds,
                            warmup=recipe.profile.warmup)
    stats = {mode: LatencyStats.from_samples(values) for mode, values in samples.items()}
    result = {
        "configured": recipe.postprocess,
        "files": {mode: path.resolve().relative_to(ctx.run_dir.resolve()).as_posix() for mode, path in files.items()},
        "AP50": ap50,
        "p50_ms": {mode: s.p50_ms for mode, s in stats.items()},
        "stats": {mode: s.model_dump(mode="json") for mode, s in stats.items()},
        "graph_over_host_p50": stats["graph"].p50_ms / stats["host"].p50_ms if stats["host"].p50_ms > 0 else None,
        "images": int(len(inputs)), "threads": recipe.profile.threads,
    }
    atomic_write_json(ctx.stage_dir / MODES_FILE, result)
    for mode in MODES:
        ctx.console.print(f"student NMS {'in the graph' if mode == 'graph' else 'on the host':12}: p50 "
                          f"{result['p50_ms'][mode]:.3f} ms image → detections, AP50 {ap50[mode]:.4f}")
    return {"p50_ms": result["p50_ms"], "AP50": ap50}


def _configured_file(ctx: StageContext):
    row = next(r for r in load_artifacts(ctx) if r["role"] == "student" and r["variant"] == "float"
               and r["backend"] == "onnx" and r["precision"] == "fp32")
    return ctx.run_dir / row["path"]


def _export_other(task, ctx: StageContext):
    """The float student's fp32 ONNX with the other post-processing mode."""
    from edgekd.export import EXPORTERS
    from edgekd.models import deploy_copy
    from edgekd.models.picodet import output_names

    mode, cfg = other_mode(ctx.recipe.postprocess), ctx.recipe.export
    model = deploy_copy(task.student_model(ctx, mode)).eval()
    path = ctx.stage_dir / f"student.{mode}.onnx"
    height, width = common.input_size(ctx.recipe)
    EXPORTERS.get("onnx").export(model, torch.zeros(1, 3, height, width), path, precision="fp32", opset=cfg.opset,
                                 input_names=("input",), output_names=output_names(mode), simplify=cfg.simplify)
    return path


def _pipeline(path, mode: str, recipe):
    """image (1, 3, H, W) → (network outputs, per-image detections) through ONNX Runtime; the host mode's NMS
    runs here, the graph mode's padded rows are only unpacked."""
    from edgekd.profile.sessions import open_session
    from edgekd.tasks.layout.metrics import detections_of

    session = open_session(path, "onnxruntime", threads=recipe.profile.threads)
    nms = common.nms_config(recipe)

    def run(x: np.ndarray):
        outputs = tuple(session.run(x))
        return outputs, detections_of(outputs, nms)

    return run


def _outputs(run, inputs: np.ndarray) -> tuple[np.ndarray, ...]:
    """The network outputs of every held-out image, one at a time (as deployed), concatenated per output."""
    per_image = [run(inputs[i:i + 1])[0] for i in range(len(inputs))]
    return tuple(np.concatenate([outputs[k] for outputs in per_image]) for k in range(len(per_image[0])))
