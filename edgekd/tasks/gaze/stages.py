"""The gaze pipeline's training stages: data → teacher → distill → finetune → personalize."""

from __future__ import annotations

from typing import Any

from rich.progress import Progress
from torch.utils.data import Subset

from edgekd.artifacts import atomic_write_json, sha256_file
from edgekd.distill.loop import fit
from edgekd.distill.teacher_cache import cached_or_live
from edgekd.models import copy_stage1_, count_parameters, set_trainable_
from edgekd.pipeline import StageContext
from edgekd.tasks.gaze import common
from edgekd.tasks.gaze.dataset import SPLITS, GazeTorchDataset, generate_dataset, load_split
from edgekd.tasks.gaze.metrics import balanced_cluster_indices
from edgekd.tasks.gaze.objectives import GazeRegression, MaskedFeatureDistillation

def run_data(ctx: StageContext) -> dict[str, Any]:
    data = ctx.recipe.data
    if data.source == "folder":
        return _register_folder(ctx)
    total = data.train_subjects * data.train_per_subject + data.test_subjects * data.test_per_subject
    total += data.personal_subjects * (data.personal_adapt + data.personal_eval)
    with Progress(console=ctx.console) as bar:
        task = bar.add_task("rendering eye images", total=total)
        info = generate_dataset(
            ctx.stage_dir,
            image_size=data.image_size,
            train_subjects=data.train_subjects,
            train_per_subject=data.train_per_subject,
            test_subjects=data.test_subjects,
            test_per_subject=data.test_per_subject,
            personal_subjects=data.personal_subjects,
            personal_adapt=data.personal_adapt,
            personal_eval=data.personal_eval,
            seed=ctx.recipe.seed,
            workers=data.workers,
            progress=lambda n: bar.advance(task, n),
        )
    return {"images": total, "info": info}


def _register_folder(ctx: StageContext) -> dict[str, Any]:
    """A user's folder: check every split loads, and record its label hashes so edits re-run the rest."""
    root = common.data_root(ctx)
    counts = {split: len(load_split(root, split, image_size=ctx.recipe.data.image_size).images) for split in SPLITS}
    labels = {split: sha256_file(root / split / "labels.csv") for split in SPLITS}
    atomic_write_json(ctx.stage_dir / "source.json", {"root": str(root.resolve()), "labels_sha256": labels})
    return {"images": sum(counts.values()), "counts": counts}


def balanced_train(ctx: StageContext, clusters: int) -> Subset:
    train = common.load_arrays(ctx, "train")
    indices = balanced_cluster_indices(train.gaze_deg, k=clusters, n=len(train.gaze_deg), seed=ctx.recipe.seed)
    return Subset(GazeTorchDataset(train), indices.tolist())


def run_teacher(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.recipe.teacher
    history: list = []
    if cfg.checkpoint:
        teacher = common.load_model(cfg.arch, cfg.checkpoint)
    else:
        teacher = common.build_model(cfg.arch)
        dataset = balanced_train(ctx, ctx.recipe.finetune.clusters)
        result = fit(GazeRegression(teacher), dataset, cfg.train, seed=ctx.recipe.seed,
                     checkpoint_dir=ctx.stage_dir / "checkpoints", desc="teacher")
        history = result.history
    common.save_weights(teacher, ctx.stage_dir / "teacher.pt")
    error = common.mean_error_deg(teacher, common.load_arrays(ctx, "test"))
    metrics = {"general": error, "parameters": count_parameters(teacher), "history": history}
    atomic_write_json(ctx.stage_dir / "metrics.json", metrics)
    ctx.console.print(f"teacher: {error:.2f}° mean angular error on held-out subjects")
    return {"general_error_deg": error}


def run_distill(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.recipe.distill
    teacher = common.load_model(ctx.recipe.teacher.arch, ctx.stage_path("teacher") / "teacher.pt")
    student = common.build_model(cfg.arch)
    if cfg.inherit_stage1:
        copy_stage1_(teacher, student)
    set_trainable_(student, "backbone")
    if cfg.inherit_stage1 and cfg.freeze_inherited:
        student.stem.requires_grad_(False)
        student.stages[0].requires_grad_(False)
    objective = MaskedFeatureDistillation(
        student, teacher, cfg, common.feature_channel_map(student), common.feature_channel_map(teacher)
    )
    images = GazeTorchDataset(common.load_arrays(ctx, "train"))
    # The teacher is frozen and sees the unmasked, unaugmented image: its features are computed once per image.
    images = cached_or_live(lambda batch: objective.teacher_maps(batch[0]), images, ctx.console, "teacher features")
    result = fit(objective, images, cfg.train, seed=ctx.recipe.seed,
                 checkpoint_dir=ctx.stage_dir / "checkpoints", desc="distill")
    common.save_weights(student, ctx.stage_dir / "student.pt")
    atomic_write_json(ctx.stage_dir / "metrics.json", {"history": result.history})
    return {"final_loss": result.history[-1]["loss"] if result.history else None}


def run_finetune(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.recipe.finetune
    student = common.load_model(ctx.recipe.distill.arch, ctx.stage_path("distill") / "student.pt")
    trainable = set_trainable_(student, cfg.trainable)
    result = fit(GazeRegression(student), balanced_train(ctx, cfg.clusters), cfg.train, seed=ctx.recipe.seed,
                 checkpoint_dir=ctx.stage_dir / "checkpoints", desc="finetune")
    common.save_weights(student, ctx.stage_dir / "student.pt")
    error = common.mean_error_deg(student, common.load_arrays(ctx, "test"))
    metrics = {"general": error, "parameters": count_parameters(student), "trainable": trainable,
               "history": result.history}
    atomic_write_json(ctx.stage_dir / "metrics.json", metrics)
    ctx.console.print(f"student: {error:.2f}° mean angular error on held-out subjects ({trainable} trainable)")
    return {"general_error_deg": error}


def student_weights(ctx: StageContext):
    return ctx.stage_path("finetune") / "student.pt"


def teacher_weights(ctx: StageContext):
    return ctx.stage_path("teacher") / "teacher.pt"
