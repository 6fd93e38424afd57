"""k-shot personalization (GazeGen §3): per subject, tune only the last-stage adapters on its k images,
mixing in replayed general-set images against forgetting; report error before and after."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgekd.artifacts import atomic_write_json
from edgekd.errors import EdgekdError
from edgekd.models import set_trainable_
from edgekd.pipeline import StageContext
from edgekd.tasks.gaze import common
from edgekd.tasks.gaze.dataset import GazeArrays
from edgekd.tasks.gaze.stages import student_weights, teacher_weights


def personalize_subject(model: nn.Module, shots: GazeArrays, replay: GazeArrays, cfg, seed: int) -> nn.Module:
    """A copy of `model` adapted to one subject; the original is untouched."""
    tuned = copy.deepcopy(model)
    set_trainable_(tuned, cfg.trainable)
    # BatchNorm keeps its general-set statistics: a 5-image batch would only add noise to them.
    tuned.eval()
    optimizer = torch.optim.Adam([p for p in tuned.parameters() if p.requires_grad], lr=cfg.lr)
    generator = np.random.default_rng(seed)
    shot_x = torch.from_numpy(common.normalise(shots.images))
    shot_y = torch.from_numpy(np.deg2rad(shots.gaze_deg).astype(np.float32))
    for _ in range(cfg.steps):
        x, y, shots_n = shot_x, shot_y, len(shot_x)
        if cfg.replay_per_step and cfg.replay_weight and len(replay.images):
            pick = generator.choice(len(replay.images), size=cfg.replay_per_step, replace=False)
            x = torch.cat([x, torch.from_numpy(common.normalise(replay.images[pick]))])
            y = torch.cat([y, torch.from_numpy(np.deg2rad(replay.gaze_deg[pick]).astype(np.float32))])
        pred = tuned(x)  # one forward; BatchNorm is in eval mode, so batching does not mix the two sets
        loss = F.l1_loss(pred[:shots_n], y[:shots_n])
        if len(x) > shots_n:
            # Replayed general images are other people: pooled with the shots they would outvote this person's
            # offset (L1 follows the median), so they enter as a separately weighted term against forgetting.
            loss = loss + cfg.replay_weight * F.l1_loss(pred[shots_n:], y[shots_n:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return tuned.eval()


def personalize_model(model: nn.Module, personal: GazeArrays, replay: GazeArrays, cfg, seed: int) -> dict[str, Any]:
    """Mean over subjects of each subject's mean error, before and after personalization."""
    rows = []
    for index, subject in enumerate(sorted(set(personal.subjects.tolist()))):
        mine = personal.subset(personal.subjects == subject)
        shots, held_out = mine.subset(mine.roles == "adapt"), mine.subset(mine.roles == "eval")
        before = common.mean_error_deg(model, held_out)
        after = common.mean_error_deg(personalize_subject(model, shots, replay, cfg, seed + index), held_out)
        rows.append({"subject": subject, "shots": len(shots.images), "before": before, "after": after})
    before = float(np.mean([r["before"] for r in rows]))
    after = float(np.mean([r["after"] for r in rows]))
    return {"before": before, "after": after, "reduction": 1.0 - after / before, "subjects": rows}


def check_sizes(personal: GazeArrays, replay: GazeArrays, cfg) -> None:
    """Refuse data too small for personalization before any model is loaded: each personal subject needs adapt
    shots and held-out eval images, and replay samples `replay_per_step` train images without replacement."""
    if not len(personal.images):
        raise EdgekdError("personalize: the personal split has no images; it needs at least one subject with "
                          "'adapt' and 'eval' rows")
    for subject in sorted(set(personal.subjects.tolist())):
        roles = personal.roles[personal.subjects == subject].tolist()
        for role in ("adapt", "eval"):
            if role not in roles:
                raise EdgekdError(f"personalize: subject '{subject}' of the personal split has no '{role}' images; "
                                  "it needs at least one")
    if cfg.replay_per_step and cfg.replay_weight and len(replay.images) < cfg.replay_per_step:
        raise EdgekdError(f"personalize: replay draws {cfg.replay_per_step} train images per step but the train split "
                          f"has {len(replay.images)}; lower personalize.replay_per_step or add train images")


def error_change(before: float, after: float) -> str:
    """'8% lower' or '8% higher (worse)': the direction is in the words, never a signed number before 'lower'.

    >>> error_change(10.0, 10.8)
    '8% higher (worse)'
    """
    change = 100 * (after - before) / before
    if change > 0:
        return f"{change:.0f}% higher (worse)"
    return f"{-change:.0f}% lower" if change < 0 else "unchanged"


def run_personalize(ctx: StageContext) -> dict[str, Any]:
    cfg, seed = ctx.recipe.personalize, ctx.recipe.seed
    torch.manual_seed(seed)
    personal, replay = common.load_arrays(ctx, "personal"), common.load_arrays(ctx, "train")
    check_sizes(personal, replay, cfg)
    models = {
        "teacher": common.load_model(ctx.recipe.teacher.arch, teacher_weights(ctx)),
        "student": common.load_model(ctx.recipe.distill.arch, student_weights(ctx)),
    }
    results = {role: personalize_model(model, personal, replay, cfg, seed) for role, model in models.items()}
    atomic_write_json(ctx.stage_dir / "metrics.json", results)
    for role, result in results.items():
        ctx.console.print(
            f"{role}: {result['before']:.2f}° → {result['after']:.2f}° after {cfg.steps}-step personalization "
            f"({error_change(result['before'], result['after'])})"
        )
    return {role: {k: v for k, v in r.items() if k != "subjects"} for role, r in results.items()}
