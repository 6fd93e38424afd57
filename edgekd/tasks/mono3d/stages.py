"""The mono3d training stages: data → teacher (LiDAR) → assistant (TA) → student_plain → distill (TAKD)."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.progress import Progress

from edgekd.artifacts import atomic_torch_save, atomic_write_json, load_state_into
from edgekd.distill.loop import fit
from edgekd.models import count_parameters
from edgekd.pipeline import StageContext
from edgekd.tasks.mono3d import common
from edgekd.tasks.mono3d.dataset import MirroredLidarScenes, read_split
from edgekd.tasks.mono3d.kitti_eval import read_height_scale
from edgekd.tasks.mono3d.objectives import DetectionObjective, TakdObjective


def run_data(ctx: StageContext) -> dict[str, Any]:
    """Render the synthetic scenes (or index the user's KITTI folder), then cache both splits at network size."""
    cfg = ctx.recipe.data
    if cfg.source == "synthetic":
        from edgekd.tasks.mono3d.scenes import generate_kitti_scenes

        with Progress(console=ctx.console, transient=True) as bar:
            job = bar.add_task("rendering driving scenes", total=cfg.train + cfg.val)
            generate_kitti_scenes(ctx.stage_dir / common.KITTI_DIR, train=cfg.train, val=cfg.val, seed=ctx.recipe.seed,
                                  width=cfg.width, height=cfg.height, beams=cfg.beams, workers=cfg.workers,
                                  progress=lambda n: bar.advance(job, n))
    grid = common.net_config(ctx.recipe, np.eye(3, 4)).grid  # the pillar grid does not depend on P2
    summary: dict[str, Any] = {}
    for split in ("train", "val"):
        folder = common.split_dir(ctx, split)
        with Progress(console=ctx.console, transient=True) as bar:
            job = bar.add_task(f"reading {folder}", total=None)
            arrays = read_split(folder, width=cfg.width, height=cfg.height, grid=grid,
                                progress=lambda n: bar.advance(job, n))
        arrays.save(ctx.stage_dir / f"{split}.npz")
        summary[split] = {"frames": len(arrays), "cars": int(len(arrays.boxes))}
        if split == "train":
            camera = _camera(ctx, arrays)
    camera["height_scale"] = read_height_scale(common.split_dir(ctx, "val"))
    atomic_write_json(ctx.stage_dir / common.CAMERA_FILE, camera)
    ctx.console.print(f"data: {summary['train']['frames']} training frames ({summary['train']['cars']} cars), "
                      f"{summary['val']['frames']} held-out frames ({summary['val']['cars']} cars)")
    return summary


def _camera(ctx: StageContext, arrays) -> dict[str, Any]:
    """The network-resolution P2: the first training frame's, scaled to the network size (KITTI's P2 varies a
    little between recording days; one lift table serves them all)."""
    cfg = ctx.recipe.data
    width, height = (int(v) for v in arrays.image_size[0])
    P2 = np.diag([cfg.width / width, cfg.height / height, 1.0]) @ arrays.P2[0]
    return {"P2": P2.tolist(), "network_size": [cfg.width, cfg.height], "source_size": [width, height],
            "source": cfg.source}


def train_detector(ctx: StageContext, role: str, inputs: str, train_cfg, checkpoint=None,
                   depth_weight: float = 0.0, desc: str = "", dataset=None) -> dict[str, Any]:
    """Train one network on ground-truth boxes (or load `checkpoint`); weights and metrics into the stage folder.
    `dataset` defaults to the training scenes as they are."""
    cfg = common.ctx_net_config(ctx)
    model = common.build(role, cfg)
    history: list = []
    if checkpoint:
        load_state_into(model, checkpoint)
    else:
        dataset = dataset if dataset is not None else common.scenes(ctx, "train", cfg)
        result = fit(DetectionObjective(model, inputs, depth_weight), dataset, train_cfg,
                     seed=ctx.recipe.seed, checkpoint_dir=ctx.stage_dir / "checkpoints", desc=desc or role)
        history = result.history
    atomic_torch_save(model.state_dict(), ctx.stage_dir / common.WEIGHTS)
    metrics = {"parameters": count_parameters(model), "history": history, "loaded": str(checkpoint or "")}
    atomic_write_json(ctx.stage_dir / "metrics.json", metrics)
    return {"parameters": metrics["parameters"], "final_loss": history[-1]["loss"] if history else None}


def run_teacher(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.recipe.teacher
    scenes = common.scenes(ctx, "train", common.ctx_net_config(ctx))
    dataset = MirroredLidarScenes(scenes, cfg.mirror) if cfg.mirror > 0 else scenes
    return train_detector(ctx, "teacher", "lidar", cfg.train, cfg.checkpoint, desc="LiDAR teacher", dataset=dataset)


def run_assistant(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.recipe.assistant
    return train_detector(ctx, "assistant", "assistant", cfg.train, cfg.checkpoint, desc="teaching assistant")


def run_student_plain(ctx: StageContext) -> dict[str, Any]:
    """The camera student on ground truth alone (+ the depth loss if on): the baseline TAKD is compared with."""
    cfg = ctx.recipe.student
    return train_detector(ctx, "student", "camera", cfg.train, depth_weight=cfg.depth_weight,
                          desc="camera student (no KD)")


def frozen(ctx: StageContext, role: str):
    return common.load(role, common.ctx_net_config(ctx), ctx.stage_path(role) / common.WEIGHTS)


def train_takd(ctx: StageContext, kd, train_cfg, dataset, checkpoint_dir, desc: str, init: str = "assistant"):
    """A camera student trained under TAKD with the switches in `kd`, started from the TA's weights
    (init "assistant") or from scratch; returns (student, history)."""
    cfg, student_cfg = common.ctx_net_config(ctx), ctx.recipe.student
    student = common.build("student", cfg, residual_branch=kd.cmrd, fuse_residual=student_cfg.fuse_residual)
    assistant = frozen(ctx, "assistant")
    if init == "assistant":
        start_from(student, assistant)
    objective = TakdObjective(student, frozen(ctx, "teacher"), assistant, kd,
                              student_cfg.gt_weight, student_cfg.depth_weight)
    result = fit(objective, dataset, train_cfg, seed=ctx.recipe.seed, checkpoint_dir=checkpoint_dir, desc=desc)
    return student.eval(), result.history


def start_from(student, assistant) -> None:
    """Copy the TA's weights into the student: the two share the camera network, collapse, BEV backbone and head;
    only the student's residual branch (absent from the TA) keeps its initialisation. The TA's depth head was never
    trained (it lifts with LiDAR depth) and is copied as it is; the student's depth loss and IMD train it."""
    missing, unexpected = student.load_state_dict(assistant.state_dict(), strict=False)
    if unexpected or any(not key.startswith("residual.") for key in missing):
        raise RuntimeError(f"the TA does not match the student: missing {missing}, unexpected {unexpected}")


def takd_scenes(ctx: StageContext, scenes):
    """`scenes` carrying the frozen teacher's and TA's outputs, computed once (`frozen_cache`); `scenes` itself
    when that cache would not fit in memory (TAKD then runs both models on every step)."""
    from edgekd.distill.teacher_cache import cached_or_live
    from edgekd.tasks.mono3d.frozen_cache import frozen_outputs

    teacher, assistant = frozen(ctx, "teacher").eval(), frozen(ctx, "assistant").eval()
    return cached_or_live(lambda batch: frozen_outputs(teacher, assistant, batch), scenes, ctx.console,
                          "teacher and TA outputs")


def run_distill(ctx: StageContext) -> dict[str, Any]:
    """The camera student under TAKD from the frozen LiDAR teacher and TA, same data and epochs as the plain one."""
    cfg = ctx.recipe.student
    dataset = takd_scenes(ctx, common.scenes(ctx, "train", common.ctx_net_config(ctx)))
    student, history = train_takd(ctx, cfg.kd, cfg.train, dataset, ctx.stage_dir / "checkpoints", "TAKD student",
                                  cfg.init)
    atomic_torch_save(student.state_dict(), ctx.stage_dir / common.WEIGHTS)
    metrics = {"parameters": count_parameters(student), "history": history, "kd": cfg.kd.model_dump(),
               "init": cfg.init}
    atomic_write_json(ctx.stage_dir / "metrics.json", metrics)
    return {"parameters": metrics["parameters"], "final_loss": history[-1]["loss"]}
