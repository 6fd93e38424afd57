"""The student stages: distill (behaviour cloning on the teacher's flights) → dagger → evaluate (closed loop)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgekd.artifacts import atomic_torch_save, atomic_write_json, load_state_into
from edgekd.distill.loop import fit
from edgekd.models import MODELS, count_parameters
from edgekd.pipeline import StageContext
from edgekd.tasks.ibvs import common, sim
from edgekd.tasks.ibvs.controllers import OracleController, StudentController, single_frame_inference, torch_runner
from edgekd.tasks.ibvs.episodes import EpisodeFrames
from edgekd.tasks.ibvs.flight import fly, summarise
from edgekd.tasks.ibvs.stages import fly_episodes, sim_goal, teacher_controller_factory

STUDENT = "student.pt"
BEST = "best.pt"


class CommandRegression(nn.Module):
    """MSE between the student's tanh outputs and the teacher's normalised commands (the paper's only loss)."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, batch) -> dict[str, torch.Tensor]:
        images, targets = batch
        return {"loss": F.mse_loss(self.student(images), targets)}


def build_student(recipe) -> nn.Module:
    return MODELS.get(recipe.student.arch)(in_chans=3, num_outputs=3)


def load_student(recipe, path: Path) -> nn.Module:
    model = build_student(recipe)
    load_state_into(model, path)
    return model.eval()


def validation_mse(model: nn.Module, data: EpisodeFrames, batch: int = 256) -> float:
    model.eval()
    total = 0.0
    device = next(model.parameters()).device  # called from fit's validate(), while the model is on its device
    with torch.inference_mode():
        for start in range(0, len(data), batch):
            items = [data[i] for i in range(start, min(start + batch, len(data)))]
            x, y = torch.stack([a for a, _ in items]).to(device), torch.stack([b for _, b in items]).to(device)
            total += float(F.mse_loss(model(x), y, reduction="sum")) / 3
    return total / max(len(data), 1)


def train_student(ctx: StageContext, model: nn.Module, folders: list[Path], train_cfg, desc: str,
                  checkpoints: Path) -> list:
    """Adam on MSE with early stopping on the validation episodes; the best epoch's weights are kept."""
    cfg = ctx.recipe.student
    train = EpisodeFrames(folders, augment=cfg.augment, seed=ctx.recipe.seed)
    val = EpisodeFrames([ctx.stage_path("collect") / "val"])
    best_path = checkpoints / BEST

    def validate() -> dict[str, float]:
        loss = validation_mse(model, val)
        history = getattr(validate, "history", [])
        if not history or loss < min(history) - cfg.min_delta:
            atomic_torch_save(model.state_dict(), best_path)
        validate.history = [*history, loss]
        return {"val_mse": loss}

    def stop(history: list[dict[str, float]]) -> bool:
        losses = [h["val_mse"] for h in history]
        validate.history = losses  # after a resume, the restored history decides
        best = int(np.argmin(losses))
        return len(losses) - 1 - best >= cfg.patience

    result = fit(CommandRegression(model), train, train_cfg, seed=ctx.recipe.seed,
                 checkpoint_dir=checkpoints, desc=desc, validate=validate, stop=stop)
    if best_path.is_file():
        load_state_into(model, best_path)
    return result.history


def run_distill(ctx: StageContext) -> dict[str, Any]:
    model = build_student(ctx.recipe)
    history = train_student(ctx, model, [ctx.stage_path("collect") / "train"], ctx.recipe.student.train, "student",
                            ctx.stage_dir / "checkpoints")
    atomic_torch_save(model.state_dict(), ctx.stage_dir / STUDENT)
    best = min(h["val_mse"] for h in history)
    atomic_write_json(ctx.stage_dir / "metrics.json", {"history": history, "val_mse": best,
                                                       "parameters": count_parameters(model)})
    ctx.console.print(f"student: validation MSE {best:.4f} on normalised commands after {len(history)} epochs")
    return {"val_mse": best, "epochs": len(history)}


def run_dagger(ctx: StageContext) -> dict[str, Any]:
    """Each round the student flies, the teacher labels every frame it saw, and the student retrains on all."""
    cfg, recipe = ctx.recipe.dagger, ctx.recipe
    model = load_student(recipe, ctx.stage_path("distill") / STUDENT)
    folders = [ctx.stage_path("collect") / "train"]
    teacher = teacher_controller_factory(ctx)(sim_goal(recipe))
    rounds = []
    for round_index in range(cfg.rounds):
        runner = torch_runner(model)
        folder = ctx.stage_dir / f"round_{round_index + 1}"
        make = lambda goal: StudentController(runner, recipe.student.input_size, recipe.law.command_scale)  # noqa: E731
        with single_frame_inference():
            entries = fly_episodes(ctx, folder, cfg.episodes, f"dagger-{round_index}", make, label=teacher.act,
                                   desc=f"DAgger round {round_index + 1}: student flies, teacher labels")
        folders.append(folder)
        train_cfg = recipe.student.train.model_copy(update={"epochs": cfg.epochs})
        history = train_student(ctx, model, folders, train_cfg, f"student (DAgger round {round_index + 1})",
                                ctx.stage_dir / "checkpoints" / f"round_{round_index + 1}")
        rounds.append({"frames": sum(e["frames"] for e in entries), "val_mse": min(h["val_mse"] for h in history),
                       "goal_rate": float(np.mean([e["outcome"] == "goal" for e in entries])) if entries else 0.0})
    atomic_torch_save(model.state_dict(), ctx.stage_dir / STUDENT)
    atomic_write_json(ctx.stage_dir / "metrics.json", {"rounds": rounds})
    return {"rounds": len(rounds)}


def flight_starts(recipe) -> list[tuple[str, np.ndarray, float]]:
    """The paper's 8 start poses, then `random_starts` more, each with its own world."""
    starts = [(f"paper-{k}", offset, yaw) for k, (offset, yaw) in enumerate(common.paper_starts(recipe))]
    for k in range(recipe.evaluate.random_starts):
        offset, yaw = common.random_start(recipe, common.rng_for(recipe, "evaluate-start", k))
        starts.append((f"random-{k}", offset, yaw))
    return starts


def fly_all(ctx: StageContext, make_controller, desc: str) -> dict[str, Any]:
    """Closed-loop flights from every start; per-set summaries (paper 8, random, all) and each flight."""
    recipe = ctx.recipe
    camera, dynamics, goal, cfg = common.camera(recipe), common.dynamics(recipe), sim_goal(recipe), recipe.evaluate
    flights = []
    from rich.progress import Progress

    with Progress(console=ctx.console, transient=True) as bar, single_frame_inference():
        job = bar.add_task(desc, total=len(flight_starts(recipe)))
        for index, (name, offset, yaw) in enumerate(flight_starts(recipe)):
            rng = common.rng_for(recipe, "evaluate", index)  # same world, noise and wind for every controller
            world = common.new_world(recipe, rng)
            result = fly(world, sim.pose_for_offset(world, camera, offset, yaw), camera, dynamics,
                         make_controller(goal), rng, timeout_s=cfg.timeout_seconds, goal_px=cfg.goal_px,
                         hold_s=cfg.hold_seconds, noise=recipe.sim.noise, after_goal_s=cfg.settle_seconds)
            flights.append((name, result))
            bar.advance(job)
    paper = [r for n, r in flights if n.startswith("paper")]
    return {"paper_starts": summarise(paper), "all_starts": summarise([r for _, r in flights]),
            "flights": [{"start": n, "outcome": r.outcome, **r.final()} for n, r in flights]}


def controllers(ctx: StageContext) -> dict[str, Any]:
    recipe = ctx.recipe
    camera, gains = common.camera(recipe), common.gains(recipe)
    size, scale = recipe.student.input_size, recipe.law.command_scale
    bc = torch_runner(load_student(recipe, ctx.stage_path("distill") / STUDENT))
    final = torch_runner(load_student(recipe, ctx.stage_path("dagger") / STUDENT))
    roles = {
        "oracle": lambda goal: OracleController(goal, camera, gains),
        "teacher": teacher_controller_factory(ctx),
        "student": lambda goal: StudentController(final, size, scale),  # the one deployed
    }
    if recipe.dagger.rounds:  # behaviour cloning alone, to show what DAgger adds
        roles["student_bc"] = lambda goal: StudentController(bc, size, scale)
    return roles


def run_evaluate(ctx: StageContext) -> dict[str, Any]:
    results = {role: fly_all(ctx, make, f"closed loop: {role}") for role, make in controllers(ctx).items()}
    atomic_write_json(ctx.stage_dir / "flights.json", results)
    for role, result in results.items():
        paper = result["paper_starts"]
        ctx.console.print(f"{role:10} 8 paper starts: success {paper['success_rate']:.0%}, final error "
                          f"{paper['error_mean_px']:.1f} px, IoU {paper['iou']:.3f}; all "
                          f"{int(result['all_starts']['flights'])}: success {result['all_starts']['success_rate']:.0%}")
    return {role: {"success_rate": r["paper_starts"]["success_rate"], "error_px": r["paper_starts"]["error_mean_px"]}
            for role, r in results.items()}


def load_flights(ctx: StageContext, stage: str = "evaluate") -> dict[str, Any]:
    return json.loads((ctx.stage_path(stage) / "flights.json").read_text())
