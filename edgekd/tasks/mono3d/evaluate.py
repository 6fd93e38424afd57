"""The KITTI evaluation of every model, and the TAKD ablation.

Each model's detections on the held-out split are written as KITTI result files (`results/<model>/NNNNNN.txt`,
16 fields with the score) and scored from those files with `evaluate_kitti_folders`, exactly as a user would
score real outputs: Car AP3D / APBEV / AP2D at |R40 and |R11, IoU 0.7 and 0.5, easy / moderate / hard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.table import Table

from edgekd.artifacts import atomic_write_json
from edgekd.pipeline import StageContext
from edgekd.tasks.mono3d import common
from edgekd.tasks.mono3d.kitti_eval import evaluate_kitti_folders
from edgekd.tasks.mono3d.kitti_io import write_result_file
from edgekd.tasks.mono3d.objectives import run_model

# (stage holding the weights, network role, inputs it reads)
MODELS = {
    "teacher": ("teacher", "teacher", "lidar"),
    "assistant": ("assistant", "assistant", "assistant"),
    "student_plain": ("student_plain", "student", "camera"),
    "student": ("distill", "student", "camera"),
}
LABELS = {"teacher": "LiDAR teacher", "assistant": "teaching assistant", "student_plain": "plain student",
          "student": "TAKD student"}
TABLE_KEYS = tuple(f"{m}_R40@{iou}/{level}" for m in ("AP3D", "APBEV") for iou in ("0.7", "0.5")
                   for level in ("easy", "moderate", "hard"))


def predict_maps(model: torch.nn.Module, inputs: str, dataset, batch_size: int) -> np.ndarray:
    """Maps (N, 9, Zh, Xh) of a training-form network over a SceneDataset, in order."""
    model.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            batch = [torch.stack(column) for column in zip(*items)]
            chunks.append(common.maps_of(run_model(model, inputs, batch)["head"]).numpy())
    return np.concatenate(chunks)


def write_results(maps: np.ndarray, arrays, folder: Path, cfg) -> None:
    """One KITTI result file per held-out frame (an empty file: no detections)."""
    grid = common.head_grid(cfg["net"])
    boxes, scores = common.decode_maps(maps, grid, cfg["top_k"])
    for k, frame_id in enumerate(arrays.frame_ids):
        objects = common.to_objects(boxes[k], scores[k], arrays.P2[k], arrays.image_size[k], cfg["threshold"])
        write_result_file(folder / f"{frame_id}.txt", objects)


def evaluate_model(ctx: StageContext, model: torch.nn.Module, inputs: str, name: str) -> dict[str, float]:
    """Detections of `model` on the held-out split → result files under this stage → KITTI metrics."""
    net = common.ctx_net_config(ctx)
    dataset = common.scenes(ctx, "val", net)
    ev = ctx.recipe.evaluate
    maps = predict_maps(model, inputs, dataset, ev.batch_size)
    folder = ctx.stage_dir / "results" / name
    write_results(maps, dataset.arrays, folder, {"net": net, "top_k": ev.top_k, "threshold": ev.score_threshold})
    return evaluate_kitti_folders(common.split_dir(ctx, "val"), folder, common.camera_info(ctx)["height_scale"])


def run_evaluate(ctx: StageContext) -> dict[str, Any]:
    net = common.ctx_net_config(ctx)
    results = {}
    for name, (stage, role, inputs) in MODELS.items():
        model = common.load(role, net, ctx.stage_path(stage) / common.WEIGHTS)
        results[name] = evaluate_model(ctx, model, inputs, name)
    atomic_write_json(ctx.stage_dir / "metrics.json", {"metric": common.TASK_METRIC, "models": results,
                                                       "table": table_rows(results)})
    print_table(ctx, results, "held-out KITTI evaluation (Car, R40, %)")
    return {name: {common.TASK_METRIC: r[common.TASK_METRIC]} for name, r in results.items()}


def table_rows(results: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    return [{"model": name, **{key: round(r[key], 2) for key in TABLE_KEYS}} for name, r in results.items()]


def print_table(ctx: StageContext, results: dict[str, dict[str, float]], title: str) -> None:
    table = Table(title=title)
    table.add_column("model")
    for metric in ("AP3D", "APBEV"):
        for iou in ("0.7", "0.5"):
            table.add_column(f"{metric} @{iou} E / M / H", justify="right")
    for name, r in results.items():
        cells = [" / ".join(f"{r[f'{m}_R40@{iou}/{lv}']:.1f}" for lv in ("easy", "moderate", "hard"))
                 for m in ("AP3D", "APBEV") for iou in ("0.7", "0.5")]
        table.add_row(LABELS.get(name, name), *cells)
    ctx.console.print(table)


def run_ablation(ctx: StageContext) -> dict[str, Any]:
    """Each arm's TAKD student with the same shorter schedule and scenes; a table of their held-out APs."""
    from edgekd.tasks.mono3d.stages import takd_scenes, train_takd

    cfg = ctx.recipe.ablation
    if not cfg.enabled:
        atomic_write_json(ctx.stage_dir / "metrics.json", {"enabled": False})
        return {"enabled": False}
    dataset = common.scenes(ctx, "train", common.ctx_net_config(ctx))
    if cfg.train_scenes is not None and cfg.train_scenes < len(dataset):
        picks = np.random.default_rng(ctx.recipe.seed).choice(len(dataset), cfg.train_scenes, replace=False)
        dataset.indices = np.sort(picks)
    scenes = len(dataset)
    dataset = takd_scenes(ctx, dataset)  # once for every arm
    train_cfg = ctx.recipe.student.train.model_copy(update={"epochs": cfg.epochs})
    results, arms = {}, []
    for arm in cfg.arms:
        switches, init = arm.kd_switches(), arm.init or ctx.recipe.student.init
        kd = ctx.recipe.student.kd.model_copy(update=switches)
        student, _ = train_takd(ctx, kd, train_cfg, dataset, ctx.stage_dir / "checkpoints" / arm.name,
                                f"ablation {arm.name}", init)
        results[arm.name] = evaluate_model(ctx, student, "camera", f"ablation_{arm.name}")
        arms.append({"name": arm.name, **switches, "init": init})
    atomic_write_json(ctx.stage_dir / "metrics.json", {
        "enabled": True, "epochs": cfg.epochs, "train_scenes": scenes, "arms": arms,
        "models": results, "table": table_rows(results)})
    print_table(ctx, results, f"TAKD ablation ({cfg.epochs} epochs, {scenes} scenes; Car, R40, %)")
    return {name: {common.TASK_METRIC: r[common.TASK_METRIC]} for name, r in results.items()}
