"""The frozen LiDAR teacher's and TA's outputs, computed once per training scene instead of once per step.

TAKD reads three things from the frozen models: the teacher's BEV map F_T and head maps (CMRD, logit KD) and the
TA's BEV map F_TA (IMD, CMRD). Both models are in eval mode and the scenes are not augmented, so these are the same
in every epoch: recomputing them on each step is most of what makes a TAKD step slower than a plain one. The
distill and ablation stages compute them in one pass over the scenes they train on
(`edgekd.distill.teacher_cache`) and hand them to `TakdObjective` with each batch.

The cache lives in memory: 2 · bev_channels · BEV cells + 10 head maps per scene, float32 (about 0.55 MB per scene
at the default widths, 1.6 GB for 3,000 scenes). Above `teacher_cache.MAX_CACHE_BYTES` the stages compute them on
every step as before and say so.
"""

from __future__ import annotations

import torch
from torch import nn

HEAD_KEYS = ("heatmap", "box", "rot", "dir")


def frozen_outputs(teacher: nn.Module, assistant: nn.Module, batch) -> dict[str, torch.Tensor]:
    """What TAKD reads from the frozen models for one batch, as flat tensors: t_bev, t_heatmap, t_box, t_rot,
    ta_bev."""
    with torch.no_grad():
        t_out = teacher(batch[2])
        ta_out = assistant(batch[0], batch[1])
    return {"t_bev": t_out["bev"], **{f"t_{key}": t_out["head"][key] for key in HEAD_KEYS}, "ta_bev": ta_out["bev"]}


def unpack(cached: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Flat cached tensors → (teacher {"bev", "head"}, assistant {"bev"}), the shapes TakdObjective reads."""
    teacher = {"bev": cached["t_bev"], "head": {key: cached[f"t_{key}"] for key in HEAD_KEYS}}
    return teacher, {"bev": cached["ta_bev"]}
