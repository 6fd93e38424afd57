"""Model size and compute: parameter counts and multiply-accumulates (MACs) of one forward pass.

>>> count_macs(model, (1, 1, 64, 64))      # full input shape, batch included
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with `requires_grad` when `trainable_only`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """MACs of one eval-mode forward on a zero tensor of `input_shape` (batch included).

    Counts what torch's FlopCounterMode counts — convolutions and matrix products (flops / 2); norms,
    activations and biases are left out, as in the usual MAC tables.
    """
    param = next(model.parameters())
    x = torch.zeros(tuple(input_shape), device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def deploy_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy with every `fuse_for_deploy_()` applied (e.g. adapter BatchNorm folded).

    Export the copy, compare against the original: the parity check then also proves the fusion exact.
    """
    import copy

    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        fuse = getattr(module, "fuse_for_deploy_", None)
        if callable(fuse):
            fuse()
    return fused
