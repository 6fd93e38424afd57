"""Training objectives: ground-truth detection (teacher, TA, plain student) and TAKD (papers.md §4.2).

Each is an nn.Module whose forward(batch) returns {"loss", ...terms} for `edgekd.distill.loop.fit`; a batch is
(image, LiDAR depth, pillars, targets, foreground) from `SceneDataset`, and for TAKD optionally the frozen
models' outputs after them (`edgekd.tasks.mono3d.frozen_cache`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from edgekd.distill.takd import cmrd, depth_focal, imd, logit_kd_terms
from edgekd.tasks.mono3d.frozen_cache import unpack
from edgekd.tasks.mono3d.heads import TARGET_LAYOUT
from edgekd.tasks.mono3d.lift import DepthBins, lidar_depth_probs
from edgekd.tasks.mono3d.targets import detection_loss

Inputs = Literal["lidar", "assistant", "camera"]
FROZEN_OUTPUTS = 5  # a batch's position of the cached frozen-model outputs, when it carries them


def split_targets(targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """(N, 11, Zh, Xh) stacked targets → the dict `detection_loss` reads."""
    return {name: targets[:, part] for name, part in TARGET_LAYOUT.items()}


def depth_bin_targets(depth: torch.Tensor, bins: DepthBins, stride: int = 4) -> torch.Tensor:
    """(N, Hf, Wf) LiDAR depth bin of each feature pixel (the bin most of its returns fall in), −1 without returns."""
    probs = lidar_depth_probs(depth, bins, stride)
    return torch.where(probs.sum(dim=1) > 0, probs.argmax(dim=1), torch.full_like(probs[:, 0], -1).long())


def run_model(model: nn.Module, inputs: Inputs, batch) -> dict:
    image, depth, pillars = batch[0], batch[1], batch[2]
    if inputs == "lidar":
        return model(pillars)
    if inputs == "assistant":
        return model(image, depth)
    return model(image)


class DetectionObjective(nn.Module):
    """Ground-truth center-head loss (+ `depth_weight` × CaDDN depth focal loss for a camera student)."""

    def __init__(self, model: nn.Module, inputs: Inputs, depth_weight: float = 0.0) -> None:
        super().__init__()
        self.model, self.inputs, self.depth_weight = model, inputs, depth_weight

    def forward(self, batch) -> dict[str, torch.Tensor]:
        out = run_model(self.model, self.inputs, batch)
        terms = detection_loss(out["head"], split_targets(batch[3]))
        loss = terms.pop("total")
        if self.depth_weight:
            terms["depth"] = self.depth_weight * camera_depth_loss(self.model, out, batch)
            loss = loss + terms["depth"]
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}


def camera_depth_loss(model: nn.Module, out: dict, batch) -> torch.Tensor:
    targets = depth_bin_targets(batch[1], model.cfg.bins, model.cfg.stride)
    return depth_focal(out["depth_logits"], targets, foreground=batch[4][:, 0] > 0)


class TakdObjective(nn.Module):
    """The camera student under TAKD: IMD (F_S → F_TA) + CMRD (F_S' → |n(F_TA) − F_T|) + logit KD from the LiDAR
    teacher, optionally plus the GT and depth losses. Teacher and TA are frozen and stay in eval mode."""

    def __init__(self, student: nn.Module, teacher: nn.Module, assistant: nn.Module, kd, gt_weight: float,
                 depth_weight: float) -> None:
        super().__init__()
        self.student, self.teacher, self.assistant = student, teacher, assistant
        for frozen in (teacher, assistant):
            frozen.eval().requires_grad_(False)
        self.kd, self.gt_weight, self.depth_weight = kd, gt_weight, depth_weight

    def train(self, mode: bool = True) -> "TakdObjective":
        super().train(mode)
        self.teacher.eval()
        self.assistant.eval()
        return self

    def forward(self, batch) -> dict[str, torch.Tensor]:
        if len(batch) > FROZEN_OUTPUTS:  # computed once per scene (`frozen_cache`): the same maps, not recomputed
            teacher, assistant = unpack(batch[FROZEN_OUTPUTS])
        else:
            with torch.no_grad():
                teacher = self.teacher(batch[2])
                assistant = self.assistant(batch[0], batch[1])
        student = self.student(batch[0])
        terms = self.kd_terms(student, teacher, assistant)
        if self.gt_weight:
            terms["gt"] = self.gt_weight * detection_loss(student["head"], split_targets(batch[3]))["total"]
        if self.depth_weight:
            terms["depth"] = self.depth_weight * camera_depth_loss(self.student, student, batch)
        loss = sum(terms.values())
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}

    def kd_terms(self, student: dict, teacher: dict, assistant: dict) -> dict[str, torch.Tensor]:
        kd, terms = self.kd, {}
        if kd.imd:
            terms["imd"] = kd.imd_weight * imd(student["bev"], assistant["bev"], detach=kd.imd_detach)
        if kd.cmrd:
            terms["cmrd"] = kd.cmrd_weight * cmrd(student["residual"], teacher["bev"], assistant=assistant["bev"])
        if kd.logit_kd:
            logit = logit_kd_terms(student["head"], teacher["head"], cls_weight=kd.cls_weight,
                                   box_weight=kd.box_weight, dir_weight=kd.dir_weight)
            terms.update({f"logit_{name}": value for name, value in logit.items() if name != "total"})
        return terms
