"""Fold each BatchNorm into the convolution that feeds it, before int8 quantization.

Quantized without folding, a conv's int8 weights are followed by a float BatchNormalization in the Q/DQ ONNX.
OpenVINO and TensorRT fold it themselves; ONNX Runtime does not, and ran it as a separate node after every conv
of the layout student. Folding first removes those nodes (and lets ONNX Runtime fuse a conv with a following
ReLU), and quantizes the weights the device actually runs (conv × BN scale), as TensorRT's and ONNX Runtime's
own quantization tools do.

Pairs are found by tracing, not by module layout: a BatchNorm folds into a convolution when, in one forward pass
on an example, each ran exactly once and the BatchNorm's input is the very tensor the convolution returned.
The folded copy is then checked against the original on that example; a model whose outputs move (a conv output
that was also read by something else) keeps its BatchNorms.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

FOLD_TOLERANCE = 1e-3  # of the largest output magnitude: float32 reassociation, not a behaviour change


def fold_batchnorm(model: Any, example: Any) -> tuple[Any, list[tuple[str, str]]]:
    """(an eval-mode copy of `model` with BatchNorms folded, the (conv, norm) module paths folded).

    `model` is not modified. When folding changes the outputs on `example`, the copy is returned unfolded
    with no pairs.
    """
    import torch

    original = copy.deepcopy(model).eval()
    pairs = conv_bn_pairs(original, example)
    if not pairs:
        return original, []
    folded = apply_folds(copy.deepcopy(original), pairs)
    with torch.no_grad():
        before, after = _float_outputs(original(example)), _float_outputs(folded(example))
    scale = max(float(t.abs().max()) for t in before) if before else 0.0
    moved = max(float((a - b).abs().max()) for a, b in zip(before, after)) if before else 0.0
    if len(before) != len(after) or not moved <= FOLD_TOLERANCE * max(scale, 1.0):
        return original, []
    return folded, pairs


def conv_bn_pairs(model: Any, example: Any) -> list[tuple[str, str]]:
    """(conv path, norm path) for every foldable BatchNorm, in call order, from one forward pass on `example`."""
    import torch
    from torch import nn

    # id of a conv's output -> (the conv's path, the output): holding the tensor keeps its id from being reused
    produced: dict[int, tuple[str, Any]] = {}
    calls: dict[str, int] = {}
    fed: list[tuple[str, str]] = []

    def after_conv(name):
        def hook(module, inputs, output):
            calls[name] = calls.get(name, 0) + 1
            produced[id(output)] = (name, output)
        return hook

    def before_norm(name):
        def hook(module, inputs):
            calls[name] = calls.get(name, 0) + 1
            source = produced.get(id(inputs[0]))
            if source is not None:
                fed.append((source[0], name))
        return hook

    handles = []
    for name, module in model.named_modules():
        if type(module) in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
            handles.append(module.register_forward_hook(after_conv(name)))
        elif _foldable_norm(module):
            handles.append(module.register_forward_pre_hook(before_norm(name)))
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for handle in handles:
            handle.remove()
    return [(conv, norm) for conv, norm in fed if calls[conv] == 1 and calls[norm] == 1]


def apply_folds(model: Any, pairs: Sequence[Sequence[str]]) -> Any:
    """Fold each (conv, norm) pair of `model` in place: the conv takes the BatchNorm's affine map, the norm
    becomes what it did after normalising (nothing, or timm's BatchNormAct2d drop + activation)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for conv_path, norm_path in pairs:
        conv, norm = model.get_submodule(conv_path), model.get_submodule(norm_path)
        model.set_submodule(conv_path, fuse_conv_bn_eval(conv, norm))
        rest = nn.Identity() if type(norm) in _plain_norms() else nn.Sequential(norm.drop, norm.act)
        model.set_submodule(norm_path, rest)
    return model


def _plain_norms() -> tuple[type, ...]:
    from torch import nn

    return nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d


def _foldable_norm(module: Any) -> bool:
    from torch import nn

    if type(module) in _plain_norms():
        return module.track_running_stats and module.running_mean is not None
    # timm's BatchNormAct2d: batch_norm, then its `drop` and `act` children, nothing else
    return (type(module).__name__ == "BatchNormAct2d" and isinstance(module, nn.BatchNorm2d)
            and module.running_mean is not None and hasattr(module, "act") and hasattr(module, "drop"))


def _float_outputs(out: Any) -> list[Any]:
    from edgekd.export.parity import flatten_outputs

    return [t.float() for t in flatten_outputs(out) if hasattr(t, "float")]
