"""The frozen LiDAR teacher's and TA's outputs, computed once per training scene instead of once per step.

TAKD reads three things from the frozen models: the teacher's BEV map F_T and head maps (CMRD, logit KD) and the
TA's BEV map F_TA (IMD, CMRD). Both models are in eval mode and the scenes are not augmented, so these are the same
in every epoch: recomputing them on each step is most of what makes a TAKD step slower than a plain one. The
distill and ablation stages compute them in one pass over the scenes they train on and hand them to
`TakdObjective` with each batch (the same numbers up to floating-point summation order).

The cache lives in memory: 2 · bev_channels · BEV cells + 9 head maps per scene, float32 (about 0.55 MB per scene
at the default widths, 1.6 GB for 3,000 scenes). Above MAX_CACHE_BYTES the stage computes them on every step as
before and says so.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

MAX_CACHE_BYTES = 6 * 1024**3
BATCH = 32
HEAD_KEYS = ("heatmap", "box", "rot")


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


class WithFrozenOutputs(Dataset):
    """`scenes` with each item extended by its frozen-model outputs (a dict, collated like the rest)."""

    def __init__(self, scenes: Dataset, cache: dict[str, torch.Tensor]) -> None:
        self.scenes, self.cache = scenes, cache

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, item: int) -> tuple:
        return (*self.scenes[item], {key: value[item] for key, value in self.cache.items()})


def cache_bytes(teacher: nn.Module, assistant: nn.Module, scenes: Dataset) -> int:
    """The cache's size for `scenes`, from one scene's outputs."""
    sample = frozen_outputs(teacher.eval(), assistant.eval(), [x.unsqueeze(0) for x in scenes[0]])
    return len(scenes) * sum(value.numel() * value.element_size() for value in sample.values())


def with_frozen_outputs(teacher: nn.Module, assistant: nn.Module, scenes: Dataset,
                        progress: Optional[Callable[[int], None]] = None) -> Optional[WithFrozenOutputs]:
    """`scenes` carrying the frozen models' outputs, or None when the cache would exceed MAX_CACHE_BYTES.
    `progress(n)` is called as n scenes are done."""
    if cache_bytes(teacher, assistant, scenes) > MAX_CACHE_BYTES:
        return None
    teacher.eval()
    assistant.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in DataLoader(scenes, batch_size=BATCH, shuffle=False):
        for key, value in frozen_outputs(teacher, assistant, batch).items():
            parts.setdefault(key, []).append(value)
        if progress is not None:
            progress(len(batch[0]))
    return WithFrozenOutputs(scenes, {key: torch.cat(values) for key, values in parts.items()})
