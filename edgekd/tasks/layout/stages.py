"""The layout stages before deployment: data → teacher → student_plain (no KD) → distill (FGD from the frozen
teacher) → evaluate.

Each training stage writes its weights and a metrics.json (training history, parameters). The evaluate stage
scores all three models with the same code: COCO AP, AP50, AP75 and per-class AP on the validation split, in
the original image pixels. Scoring is a stage of its own so that changing the NMS settings or the export's
post-processing mode re-scores and re-exports without retraining.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.progress import Progress

from edgekd.artifacts import atomic_torch_save, atomic_write_json, load_state_into, sha256_file
from edgekd.distill.loop import fit
from edgekd.distill.teacher_cache import cached_or_live
from edgekd.models import count_parameters
from edgekd.pipeline import StageContext
from edgekd.recipe.common import config_key_dump
from edgekd.tasks.layout import common
from edgekd.tasks.layout.metrics import evaluate_on_split
from edgekd.tasks.layout.objectives import DetectionObjective, FeatureDistillObjective

WEIGHTS = {"teacher": "teacher.pt", "student_plain": "student.pt", "distill": "student.pt"}
METRICS = "metrics.json"
# papers.md §6.3: FGD should start at about 0.5–2× the detection loss.
KD_RATIO_RANGE = (0.5, 2.0)


def data_config(recipe) -> dict[str, Any]:
    """The data section, plus the content hash of a user's annotation files (so an edited file re-runs)."""
    cfg = recipe.data
    config = {"seed": recipe.seed, "data": config_key_dump(cfg)}
    if cfg.source == "coco":
        config["annotations"] = {name: sha256_file(getattr(cfg, name)) if getattr(cfg, name).is_file() else None
                                 for name in ("train_json", "val_json")}
    return config


def run_data(ctx: StageContext) -> dict[str, Any]:
    """Render the synthetic pages (images + COCO JSON), or check the user's COCO set; write dataset.json."""
    from edgekd.tasks.layout.pages import generate_layout_dataset

    cfg = ctx.recipe.data
    if cfg.source == "synthetic":
        with Progress(console=ctx.console, transient=True) as bar:
            job = bar.add_task("rendering pages", total=cfg.train + cfg.val)
            summary = generate_layout_dataset(ctx.stage_dir, train=cfg.train, val=cfg.val, height=cfg.height,
                                              width=cfg.width, seed=ctx.recipe.seed, workers=cfg.workers,
                                              progress=lambda n: bar.advance(job, n))
        splits = {split: {"json": f"annotations/{split}.json", "images": f"images/{split}"}
                  for split in ("train", "val")}
    else:
        splits = {split: {"json": str(Path(getattr(cfg, f"{split}_json")).resolve()),
                          "images": str(Path(getattr(cfg, f"{split}_images")).resolve())} for split in ("train", "val")}
        summary = {}
    atomic_write_json(ctx.stage_dir / common.DATASET_INDEX, {"source": cfg.source, "splits": splits,
                                                             "classes": list(cfg.classes)})
    counts = {split: _count(common.coco_split(ctx, split)) for split in splits}  # reads (and checks) each split
    atomic_write_json(ctx.stage_dir / "summary.json", {**summary, "counts": counts})
    return counts


def _count(index) -> dict[str, int]:
    return {"images": len(index), "boxes": int(sum(len(r.labels) for r in index))}


def train_set(ctx: StageContext) -> common.DetectionSet:
    return common.DetectionSet(common.coco_split(ctx, "train").records, *common.input_size(ctx.recipe))


def run_teacher(ctx: StageContext) -> dict[str, Any]:
    """Train the teacher on its detection loss (or load `teacher.checkpoint`): the wide PicoDet on VFL + GIoU +
    DFL, or a `teacher.yolo` YOLOv8 on Ultralytics' own loss."""
    cfg = ctx.recipe.teacher
    model = common.build_detector(ctx.recipe, "teacher")
    history: list = []
    if cfg.checkpoint:
        load_state_into(model, cfg.checkpoint)
    elif cfg.yolo:
        from edgekd.yolo.teacher import train_yolo_teacher

        history = train_yolo_teacher(model.yolo, train_set(ctx), cfg.train, seed=ctx.recipe.seed,
                                     checkpoint_dir=ctx.stage_dir / "checkpoints", desc=f"teacher ({cfg.yolo})").history
    else:
        history = fit(DetectionObjective(model), train_set(ctx), cfg.train, seed=ctx.recipe.seed,
                      checkpoint_dir=ctx.stage_dir / "checkpoints", desc="teacher").history
    return _finish(ctx, "teacher", model, history)


def run_student_plain(ctx: StageContext) -> dict[str, Any]:
    """The student on the detection loss alone: the baseline that shows what distillation adds."""
    model = common.build_detector(ctx.recipe, "student")
    history = fit(DetectionObjective(model), train_set(ctx), ctx.recipe.student.train, seed=ctx.recipe.seed,
                  checkpoint_dir=ctx.stage_dir / "checkpoints", desc="student (no KD)").history
    return _finish(ctx, "student_plain", model, history)


def run_distill(ctx: StageContext) -> dict[str, Any]:
    """The student with the same data and epochs, plus feature KD on every neck level of the frozen teacher."""
    recipe = ctx.recipe
    student = common.build_detector(recipe, "student")
    if recipe.distill.kd == "none":
        objective = DetectionObjective(student)
    else:
        teacher = common.load_detector(recipe, "teacher", ctx.stage_path("teacher") / WEIGHTS["teacher"])
        objective = distill_objective(recipe, student, teacher)
    data, extra = train_set(ctx), {"kd": recipe.distill.kd, "teacher": common.model_name(recipe, "teacher")}
    if isinstance(objective, FeatureDistillObjective):
        # The teacher is frozen and pages are not augmented: its maps are computed once per page.
        data = cached_or_live(lambda batch: objective.teacher_maps(batch[0]), data, ctx.console, "teacher maps")
        if recipe.distill.scale == "auto":
            objective.scale = auto_scale(objective, data, recipe.student.train.batch_size, recipe.distill.start_ratio)
            ctx.console.print(f"distill: KD scale {objective.scale:.4g} (KD = {recipe.distill.start_ratio}× the "
                              "detection loss at the start)")
        extra["scale"] = objective.scale
    history = fit(objective, data, recipe.student.train, seed=recipe.seed,
                  checkpoint_dir=ctx.stage_dir / "checkpoints", desc=f"student + {recipe.distill.kd}").history
    if isinstance(objective, FeatureDistillObjective):
        objective.remove_hooks()
    extra.update(_kd_ratio(ctx, history))
    return _finish(ctx, "distill", student, history, extra)


def distill_objective(recipe, student, teacher) -> FeatureDistillObjective:
    """Detection + KD on each pair of neck levels (same strides; a 1×1 conv aligns the widths if they differ).
    A YOLO teacher is paired by stride: its P3/P4/P5 with the student's strides 8/16/32."""
    from edgekd.distill.feature_kd import build_feature_kd
    from edgekd.models.picodet import neck_output_paths

    cfg = recipe.distill
    params = ({"temperature": cfg.temperature, "alpha_fg": cfg.alpha_fg, "beta_bg": cfg.beta_bg,
               "gamma_at": cfg.gamma_at, "lambda_global": cfg.lambda_global} if cfg.kd == "fgd"
              else {"weight": cfg.mse_weight})
    scale = 1.0 if cfg.scale == "auto" else cfg.scale
    if recipe.teacher.yolo:
        from edgekd.yolo.teacher import yolo_distill_objective

        return yolo_distill_objective(student, teacher, common.input_size(recipe), kd=cfg.kd, scale=scale, **params)
    student_paths, teacher_paths = neck_output_paths(student), neck_output_paths(teacher)
    losses = [build_feature_kd(cfg.kd, recipe.student.neck_channels, recipe.teacher.neck_channels, **params)
              for _ in student_paths]
    return FeatureDistillObjective(student, teacher, losses, student_paths, teacher_paths,
                                   common.input_size(recipe), scale)


def auto_scale(objective: FeatureDistillObjective, data, batch_size: int, start_ratio: float) -> float:
    """The KD scale that makes KD = `start_ratio` × the detection loss on the first `batch_size` training images,
    with the initial weights. Deterministic (seeded initialisation, fixed images), so a resumed run computes
    the same value; the objective's state (BatchNorm statistics) is restored afterwards."""
    import copy

    import torch
    from torch.utils.data import default_collate

    state, scale = copy.deepcopy(objective.state_dict()), objective.scale
    batch = default_collate([data[i] for i in range(min(batch_size, len(data)))])
    objective.scale = 1.0
    with torch.no_grad():
        terms = objective.train()(batch)
    objective.load_state_dict(state)
    objective.scale = scale
    return start_ratio * float(terms["det"]) / max(float(terms["kd"]), 1e-12)


def _kd_ratio(ctx: StageContext, history: list[dict[str, float]]) -> dict[str, float]:
    if not history or "kd" not in history[0] or not history[0].get("det"):
        return {}
    ratio = history[0]["kd"] / history[0]["det"]
    low, high = KD_RATIO_RANGE
    if not low <= ratio <= high:
        ctx.console.print(f"[yellow]distill: the KD term was {ratio:.2f}× the detection loss in the first epoch; "
                          f"papers.md §6.3 suggests {low}–{high}× — adjust distill.scale[/yellow]")
    return {"kd_over_det_first_epoch": ratio}


def _finish(ctx: StageContext, stage: str, model, history: list, extra: dict | None = None) -> dict[str, Any]:
    role = "teacher" if stage == "teacher" else "student"
    atomic_torch_save(model.state_dict(), ctx.stage_dir / WEIGHTS[stage])
    atomic_write_json(ctx.stage_dir / METRICS, {"arch": common.model_name(ctx.recipe, role),
                                                "parameters": count_parameters(model), "history": history,
                                                **(extra or {})})
    last = history[-1]["loss"] if history else None
    return {"epochs": len(history), "final_loss": last, **(extra or {})}


# The three models the evaluate stage scores: result key → (stage, role).
EVALUATED = {"teacher": ("teacher", "teacher"), "student_plain": ("student_plain", "student"),
             "student": ("distill", "student")}


def run_evaluate(ctx: StageContext) -> dict[str, Any]:
    """COCO AP of the teacher, the student without KD and the distilled student on the validation split."""
    recipe = ctx.recipe
    val, size, nms = common.coco_split(ctx, "val"), common.input_size(recipe), common.nms_config(recipe)
    results = {}
    for key, (stage, role) in EVALUATED.items():
        model = common.load_detector(recipe, role, ctx.stage_path(stage) / WEIGHTS[stage])
        with ctx.console.status(f"COCO evaluation of {key} on {len(val)} validation images"):
            results[key] = evaluate_on_split(model, val, *size, nms)
        ap50, ap = results[key]["AP50"] or 0.0, results[key]["AP"] or 0.0
        ctx.console.print(f"{key:14} val AP50 {ap50:.4f}, AP@[.5:.95] {ap:.4f}")
    atomic_write_json(ctx.stage_dir / METRICS, {**results, "images": len(val)})
    return {key: {"AP50": r["AP50"], "AP": r["AP"]} for key, r in results.items()}


def load_metrics(ctx: StageContext, stage: str) -> dict[str, Any]:
    return json.loads((ctx.stage_path(stage) / METRICS).read_text())
