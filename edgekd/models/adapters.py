"""Residual adapters for ConvNeXt blocks and the switches that choose what trains.

GazeGen fine-tunes gaze with one small bottleneck Adapter per block while the backbone stays frozen, then
personalizes only the last stage's adapters on 5 images per user (papers.md §1.1, §1.3).

>>> model = build_convnextv2_adapter((40, 80, 160, 320), (2, 2, 6, 2))   # adapters already inserted
>>> set_trainable_(model, "adapters")
191702
"""

from __future__ import annotations

import torch
from torch import nn

PARTS = ("all", "backbone", "adapters", "last_stage_adapters")
HEAD_PREFIXES = ("head.norm.", "head.fc.")


class Adapter(nn.Module):
    """`f + FC_up(LeakyReLU(BN(FC_down(f))))` on channels-last input (..., C), bottleneck C // reduction.

    >>> Adapter(40)(torch.randn(2, 8, 8, 40)).shape
    torch.Size([2, 8, 8, 40])
    """

    def __init__(self, dim: int, reduction: int = 4, negative_slope: float = 0.01) -> None:
        super().__init__()
        hidden = dim // reduction
        self.fc_down = nn.Linear(dim, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.act = nn.LeakyReLU(negative_slope)
        self.fc_up = nn.Linear(hidden, dim)
        # A zero FC_up makes a fresh adapter the identity: inserting adapters into a trained backbone leaves
        # its predictions unchanged, and fine-tuning starts from the backbone's function, not a perturbed one.
        nn.init.zeros_(self.fc_up.weight)
        nn.init.zeros_(self.fc_up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc_down(x)
        if isinstance(self.bn, nn.Identity):  # folded for deployment (fuse_for_deploy_)
            return x + self.fc_up(self.act(h))
        # BN over channels with statistics over every other axis (as BatchNorm2d would on NCHW); flattening to
        # (rows, C) keeps it a plain Reshape + BatchNormalization in ONNX, with no permutes.
        h = self.bn(h.reshape(-1, h.shape[-1])).reshape(h.shape)
        return x + self.fc_up(self.act(h))


    @torch.no_grad()
    def fuse_for_deploy_(self) -> None:
        """Fold the (eval-mode) BatchNorm into fc_down: y = s·(Wx + b − μ) + β with s = γ/√(σ² + ε).

        Exact in eval mode; removes the Reshape + BatchNormalization + Reshape nodes that ONNX Runtime would
        otherwise run in every block (per-node overhead dominates a 281K-parameter model's latency on a CPU).
        """
        if isinstance(self.bn, nn.Identity):
            return
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        self.fc_down.weight.mul_(scale[:, None])
        self.fc_down.bias.copy_((self.fc_down.bias - bn.running_mean) * scale + bn.bias)
        self.bn = nn.Identity()


class AdaptedMlp(nn.Module):
    """Runs a block's original MLP, then an Adapter on its output (before the block's residual add)."""

    def __init__(self, mlp: nn.Module, dim: int) -> None:
        super().__init__()
        self.mlp = mlp
        self.adapter = Adapter(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.mlp(x))


def insert_adapters_(model: nn.Module) -> list[str]:
    """Wrap the MLP of every block in `model.stages` with an Adapter; returns the adapters' module paths.

    Paths read like `stages.2.blocks.3.mlp.adapter` (the original MLP moves to `...mlp.mlp`).
    """
    paths = []
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage.blocks):
            if isinstance(block.mlp, AdaptedMlp):
                raise ValueError(f"stages.{s}.blocks.{b} already has an adapter")
            block.mlp = AdaptedMlp(block.mlp, block.mlp.fc2.out_features)
            paths.append(f"stages.{s}.blocks.{b}.mlp.adapter")
    return paths


def adapter_paths(model: nn.Module, stage: int | None = None) -> list[str]:
    """Module paths of the adapters in `model` (only those of `stages.{stage}` when given)."""
    prefix = "" if stage is None else f"stages.{stage}."
    return [name for name, m in model.named_modules() if isinstance(m, Adapter) and name.startswith(prefix)]


def _trainable_prefixes(model: nn.Module, part: str) -> tuple[str, ...]:
    if part == "last_stage_adapters":
        # The paper personalizes only the last stage's adapters; the head stays frozen too.
        return tuple(p + "." for p in adapter_paths(model, stage=len(model.stages) - 1))
    return tuple(p + "." for p in adapter_paths(model)) + HEAD_PREFIXES


def set_trainable_(model: nn.Module, part: str) -> int:
    """Set `requires_grad` so only `part` trains; returns the number of trainable parameters.

    Parts: "all"; "adapters" (every adapter + head norm + head fc, the paper's tunable set); "backbone"
    (everything else); "last_stage_adapters" (adapters of the last stage only, head frozen).
    Frozen adapters still update their BatchNorm running statistics in train mode: call
    `eval_frozen_batchnorm_` after `model.train()` to stop that.
    """
    if part not in PARTS:
        raise ValueError(f"unknown trainable part '{part}' (valid: {', '.join(PARTS)})")
    prefixes = _trainable_prefixes(model, part)
    total = 0
    for name, param in model.named_parameters():
        selected = name.startswith(prefixes)
        train = part == "all" or (selected if part != "backbone" else not selected)
        param.requires_grad_(train)
        total += param.numel() if train else 0
    return total


def eval_frozen_batchnorm_(model: nn.Module) -> int:
    """Put every BatchNorm whose parameters are all frozen into eval mode; returns how many.

    `model.train()` turns them back to train mode, so call this after it, each epoch.
    """
    count = 0
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and params and not any(p.requires_grad for p in params):
            module.eval()
            count += 1
    return count
