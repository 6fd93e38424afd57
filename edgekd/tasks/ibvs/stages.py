"""The ibvs training stages: data → teacher (perception) → collect (the teacher flies)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from edgekd.artifacts import atomic_savez, atomic_torch_save, atomic_write_json, load_state_into
from edgekd.distill.loop import fit
from edgekd.models import count_parameters
from edgekd.models.ibvs import TeacherPerception, build_perception
from edgekd.pipeline import StageContext
from edgekd.tasks.ibvs import common, sim
from edgekd.tasks.ibvs.camera import project_ground
from edgekd.tasks.ibvs.controllers import TeacherController, single_frame_inference
from edgekd.tasks.ibvs.episodes import EpisodeLog, write_episode, write_index
from edgekd.tasks.ibvs.flight import fly
from edgekd.tasks.ibvs.world import VehicleSpec, vehicle_corners
from edgekd.tasks.ibvs.perception import CropDataset, PerceptionObjective, corner_errors, evaluation_frames, make_crops

TRAIN_CROPS = "perception_train.npz"
EVAL_FRAMES = "perception_eval.npz"
PERCEPTION = "perception.pt"
PERCEPTION_ONNX = "perception.onnx"
TEACHER_GOAL = "goal.json"
REFERENCE_FRAMES = 16


def run_data(ctx: StageContext) -> dict[str, Any]:
    """Perception training crops with their masks, and held-out whole frames with their exact corners."""
    cfg = ctx.recipe.perception
    with Progress(console=ctx.console, transient=True) as bar:
        job = bar.add_task("rendering perception crops", total=cfg.train_crops)
        images, labels = make_crops(ctx.recipe, cfg.train_crops, "perception-train", lambda n: bar.advance(job, n))
    frames, corners = evaluation_frames(ctx.recipe, cfg.eval_frames)
    atomic_savez(ctx.stage_dir / TRAIN_CROPS, images=images, labels=labels)
    atomic_savez(ctx.stage_dir / EVAL_FRAMES, frames=frames, corners=corners)
    return {"crops": int(len(images)), "crop_size": int(images.shape[1]), "eval_frames": int(len(frames))}


def build_teacher(recipe) -> TeacherPerception:
    cfg = recipe.perception
    return build_perception(tuple(cfg.seg_widths), tuple(cfg.splitter_widths))


def load_teacher(ctx: StageContext) -> TeacherPerception:
    model = build_teacher(ctx.recipe)
    load_state_into(model, ctx.stage_path("teacher") / PERCEPTION)
    return model.eval()


def run_teacher(ctx: StageContext) -> dict[str, Any]:
    """Train (or load) the segmentation net + mask splitter; score the whole teacher on held-out frames."""
    cfg = ctx.recipe.perception
    model = build_teacher(ctx.recipe)
    history: list = []
    if cfg.checkpoint:
        load_state_into(model, cfg.checkpoint)
    else:
        with np.load(ctx.stage_path("data") / TRAIN_CROPS) as data:
            crops = CropDataset(data["images"], data["labels"])
        result = fit(PerceptionObjective(model), crops, cfg.train, seed=ctx.recipe.seed,
                     checkpoint_dir=ctx.stage_dir / "checkpoints", desc="teacher perception")
        history = result.history
    atomic_torch_save(model.state_dict(), ctx.stage_dir / PERCEPTION)
    export_perception(ctx, model.eval())
    goal, seen = reference_goal(ctx)
    atomic_write_json(ctx.stage_dir / TEACHER_GOAL, {"corners_px": goal.tolist(), "reference_frames": REFERENCE_FRAMES,
                                                     "found_in": seen})
    metrics = {**evaluate_perception(ctx, model.eval()), "parameters": count_parameters(model), "history": history,
               "goal_offset_px": float(np.linalg.norm(goal - sim_goal(ctx.recipe)))}
    atomic_write_json(ctx.stage_dir / "metrics.json", metrics)
    ctx.console.print(f"teacher perception: vehicle found in {metrics['found_rate']:.1%} of held-out frames, "
                      f"corner error {metrics['corner_error_mean_px']:.1f} px (4 corners, sensor pixels)")
    return {key: metrics[key] for key in ("found_rate", "corner_error_mean_px")}


def export_perception(ctx: StageContext, model) -> None:
    """The teacher flies on ONNX Runtime, as it would be deployed: a whole camera frame through two U-Net-sized
    networks is several times faster there than in eager PyTorch on this CPU."""
    import torch

    from edgekd.export import EXPORTERS

    camera = common.camera(ctx.recipe)
    EXPORTERS.get("onnx").export(model, torch.zeros(1, 3, camera.render_height, camera.render_width),
                                 ctx.stage_dir / PERCEPTION_ONNX, precision="fp32", opset=ctx.recipe.export.opset,
                                 input_names=("input",), output_names=("vehicle", "split"),
                                 simplify=ctx.recipe.export.simplify)


def perception_runner(ctx: StageContext):
    from edgekd.tasks.ibvs.controllers import session_runner

    return session_runner(ctx.stage_path("teacher") / PERCEPTION_ONNX, ctx.recipe.profile.threads)


def reference_goal(ctx: StageContext) -> tuple[np.ndarray, int]:
    """The teacher's goal corners, as the paper takes them: what its own perception sees in reference images
    taken from the goal pose (averaged over a few worlds), so a bias of the detector cancels at the goal.
    A perception that misses the vehicle in most of them gets the exact goal instead, with a warning."""
    camera, runner = common.camera(ctx.recipe), perception_runner(ctx)
    teacher = TeacherController(runner, sim_goal(ctx.recipe), camera, common.gains(ctx.recipe))
    seen = []
    for index in range(REFERENCE_FRAMES):
        rng = common.rng_for(ctx.recipe, "reference", index)
        world = common.new_world(ctx.recipe, rng)
        corners = teacher.corners(sim.render(world, sim.goal_state(world), camera, rng, ctx.recipe.sim.noise)[0])
        if corners is not None:
            seen.append(corners)
    if len(seen) < REFERENCE_FRAMES // 2:
        ctx.console.print(f"[yellow]warning: the teacher's perception found the vehicle in only {len(seen)} of "
                          f"{REFERENCE_FRAMES} reference frames from the goal pose; its goal is the exact one. "
                          "Train it longer (perception.train, perception.train_crops).[/yellow]")
        return sim_goal(ctx.recipe), len(seen)
    return np.mean(seen, axis=0), len(seen)


def teacher_goal(ctx: StageContext) -> np.ndarray:
    import json

    return np.array(json.loads((ctx.stage_path("teacher") / TEACHER_GOAL).read_text())["corners_px"])


def evaluate_perception(ctx: StageContext, model) -> dict[str, float]:
    with np.load(ctx.stage_path("data") / EVAL_FRAMES) as data:
        frames, corners = data["frames"], data["corners"]
    teacher = TeacherController(perception_runner(ctx), sim_goal(ctx.recipe), common.camera(ctx.recipe),
                                common.gains(ctx.recipe))
    return corner_errors([teacher.corners(frame) for frame in frames], corners)


def sim_goal(recipe) -> np.ndarray:
    """The goal corners s*: the vehicle centred with its front up; the same for every world."""
    camera = common.camera(recipe)
    vehicle = VehicleSpec(length=recipe.sim.vehicle_length, width=recipe.sim.vehicle_width)
    heading = np.pi / 2  # any heading: the goal pose turns with the vehicle
    corners = vehicle_corners(np.zeros(2), heading, vehicle)
    return project_ground(corners, np.zeros(2), heading - np.pi / 2, camera.altitude, camera.sensor_K)


def fly_episodes(ctx: StageContext, folder, count: int, purpose: str, make_controller, label=None,
                 desc: str = "flying") -> list[dict[str, Any]]:
    """Fly `count` episodes from random starts and log them to `folder` (index.json last).

    Each finished episode leaves a small entry file next to its frames; a stage resumed after a crash
    reuses those episodes instead of flying them again (every episode is seeded by its index, so the
    result is the same)."""
    recipe = ctx.recipe
    camera, dynamics, goal = common.camera(recipe), common.dynamics(recipe), sim_goal(recipe)
    entries = []
    with Progress(console=ctx.console, transient=True) as bar:
        job = bar.add_task(desc, total=count)
        for index in range(count):
            done = _finished_episode(folder, index)
            if done is not None:
                entries += [done] if done.get("file") else []
                bar.advance(job)
                continue
            rng = common.rng_for(recipe, purpose, index)
            world = common.new_world(recipe, rng)
            offset, yaw = common.random_start(recipe, rng)
            log = EpisodeLog(recipe.student.input_size, goal=goal)
            controller = make_controller(goal)
            on_frame = log.record if label is None else (lambda **kw: log.record(**kw, label=label(kw["frame"])))
            result = fly(world, sim.pose_for_offset(world, camera, offset, yaw), camera, dynamics, controller, rng,
                         timeout_s=recipe.collect.max_seconds, goal_px=recipe.evaluate.goal_px,
                         hold_s=recipe.evaluate.hold_seconds, noise=recipe.sim.noise,
                         after_goal_s=recipe.collect.hold_seconds, on_frame=on_frame)
            entry = {}
            if len(log):
                entry = {**write_episode(folder, index, log), "outcome": result.outcome,
                         "start_offset_px": offset.tolist(), "start_yaw": yaw}
                entries.append(entry)
            atomic_write_json(Path(folder) / f"ep_{index:05d}.json", entry)
            bar.advance(job)
    write_index(folder, episode_meta(recipe), entries)
    return entries


def _finished_episode(folder, index: int) -> dict[str, Any] | None:
    """The entry of an episode a previous attempt finished (its frames intact), else None."""
    import json

    from edgekd.artifacts import sha256_file

    marker = Path(folder) / f"ep_{index:05d}.json"
    if not marker.is_file():
        return None
    entry = json.loads(marker.read_text())
    if entry and not ((Path(folder) / entry["file"]).is_file()
                      and sha256_file(Path(folder) / entry["file"]) == entry["sha256"]):
        return None
    return entry


def episode_meta(recipe) -> dict[str, Any]:
    camera = common.camera(recipe)
    return {"format": "edgekd-ibvs-episodes/1", "input_size": recipe.student.input_size,
            "command_scale": list(recipe.law.command_scale), "dt": recipe.sim.dt,
            "sensor_K": camera.sensor_K.tolist(), "render_size": [camera.render_width, camera.render_height],
            "altitude": camera.altitude}


def teacher_controller_factory(ctx: StageContext):
    runner = perception_runner(ctx)
    camera, gains, goal = common.camera(ctx.recipe), common.gains(ctx.recipe), teacher_goal(ctx)
    return lambda _exact_goal: TeacherController(runner, goal, camera, gains)


def run_collect(ctx: StageContext) -> dict[str, Any]:
    """The teacher flies: every frame it sees (resized for the student) with the command it sent."""
    cfg = ctx.recipe.collect
    make = teacher_controller_factory(ctx)
    with single_frame_inference():
        train = fly_episodes(ctx, ctx.stage_dir / "train", cfg.episodes, "collect-train", make,
                             desc="teacher flying (train)")
        val = fly_episodes(ctx, ctx.stage_dir / "val", cfg.val_episodes, "collect-val", make,
                           desc="teacher flying (val)")
    frames = sum(e["frames"] for e in train)
    reached = np.mean([e["outcome"] == "goal" for e in train]) if train else 0.0
    ctx.console.print(f"collected {frames} frames in {len(train)} episodes (+{len(val)} validation); "
                      f"teacher reached the goal in {reached:.0%}")
    return {"frames": int(frames), "episodes": len(train), "val_episodes": len(val), "goal_rate": float(reached)}
