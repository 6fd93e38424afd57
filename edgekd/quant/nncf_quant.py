"""int8 quantization through NNCF, held to TensorRT's explicit-quantization rules.

The rules (TensorRT "Working with Quantized Types"): int8 only, symmetric (zero point 0), weights per
output channel, activations per tensor and *signed*. NNCF's PERFORMANCE preset gives symmetric
per-channel weights and symmetric per-tensor activations; NNCF may still pick an unsigned range for an
activation it saw only non-negative during calibration (uint8 Q/DQ, which TensorRT rejects), so every
activation quantizer is forced signed afterwards (`force_signed_`). Placement defaults to the inputs of
weighted operations (Conv/MatMul/Gemm), TensorRT's recommended placement; SmoothQuant is off because
its extra Mul nodes buy nothing for convolutional students and cost a node per layer on device.

A quantized model is still a torch module with fake-quant hooks: it trains (QAT) and it exports to an
ONNX graph with QuantizeLinear/DequantizeLinear pairs through the TorchScript exporter, whose symbolic
functions NNCF provides.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

from edgekd.artifacts import atomic_path, atomic_write_json
from edgekd.errors import EdgekdError
from edgekd.quant.bn_fold import apply_folds, fold_batchnorm
from edgekd.quant.fallback import module_of_node
from edgekd.quant.node_owners import GRAPH_OWNER, is_inside, node_owners, nodes_inside

PLACEMENTS = ("weighted_ops", "nncf_default")
CONFIG_SUFFIX = ".nncf.json"
FOLDS_SUFFIX = ".folds.json"  # the (conv, norm) pairs folded before quantizing; absent: none were
FOLDS_ATTR = "_edgekd_folds"  # on a quantized model: those pairs, so that saving it records them
OWNERS_ATTR = "_edgekd_node_owners"  # on a quantized model: node_owners of the float model it came from


def _nncf() -> Any:
    # NNCF compiles a small C++ extension the first time on a machine and gives up after 60 s by default,
    # which a busy 2-core CI runner exceeds; a user's own setting still wins.
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "900")
    try:
        import nncf
    except ImportError as exc:
        raise EdgekdError("int8 quantization needs NNCF: pip install 'edgekd[openvino]'") from exc
    logging.getLogger("nncf").setLevel(logging.WARNING)  # its INFO lines would drown the stage's own output
    return nncf


def quantize_ptq(
    model: Any,
    batches: Sequence[Any],
    *,
    fallback_modules: Iterable[str] = (),
    placement: str = "weighted_ops",
    fold_bn: bool = True,
) -> Any:
    """Calibrate int8 quantizers on `batches` (input tensors) and return the fake-quantized model.

    `model` is not modified. With `fold_bn`, BatchNorms are first folded into their convolutions
    (edgekd.quant.bn_fold). `fallback_modules` (module paths) keep float: no quantizer is placed on
    their operations, found by tracing which module runs each operation (edgekd.quant.node_owners).
    """
    nncf = _nncf()
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
        QuantizationParameters,
    )

    if placement not in PLACEMENTS:
        raise EdgekdError(f"quant.placement: '{placement}' is not one of {', '.join(PLACEMENTS)}")
    if not batches:
        raise EdgekdError("quantization needs at least one calibration batch")
    example = batches[0][:1]
    if fold_bn:
        float_model, folds = fold_batchnorm(model, example)
    else:
        float_model, folds = copy.deepcopy(model).eval(), []
    owners = node_owners(float_model, example)
    fallback_modules = list(fallback_modules)
    names = nodes_inside(owners, fallback_modules) if fallback_modules else []
    # validate=False: the names include operations NNCF would not quantize anyway (adds, activations).
    ignored = nncf.IgnoredScope(names=names, validate=False) if names else None
    advanced = AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(convolution=-1, matmul=-1),
        # NNCF would quantize depthwise-conv inputs per channel; TensorRT takes per-tensor activations only.
        activations_quantization_params=QuantizationParameters(per_channel=False),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = nncf.quantize(
            float_model,
            nncf.Dataset(list(batches)),
            subset_size=len(batches),  # NNCF counts dataset items, here batches: calibrate on all of them
            preset=nncf.QuantizationPreset.PERFORMANCE,
            model_type=nncf.ModelType.TRANSFORMER if placement == "weighted_ops" else None,
            ignored_scope=ignored,
            advanced_parameters=advanced,
        )
    _drop_quantizers_owned_by(quantized, owners, fallback_modules)
    force_signed_(quantized)
    quantize_left_weights(quantized, owners, fallback_modules)
    setattr(quantized, FOLDS_ATTR, folds)
    setattr(quantized, OWNERS_ATTR, owners)
    return quantized


WEIGHT_OPS = ("conv2d", "linear")  # NNCF's names of the operations whose port 1 is a weight


def quantize_left_weights(model: Any, owners: dict[str, str], fallback_modules: Sequence[str]) -> int:
    """Give a per-channel int8 weight quantizer to every conv and linear layer NNCF left without one and the
    user did not keep float (`quant.fallback`); returns how many were added.

    NNCF leaves some layers float on purpose (the squeeze-excitation convs of MobileNetV3 and EfficientNet:
    their inputs are pooled, their outputs gate a whole map). Their inputs stay float, but their weights can
    still be int8 at no cost in speed (the layers are 1×1 on a 1×1 map) and little in accuracy: a weight-only
    quantizer that QAT trains like any other. The file then stores them as int8, which is what makes an int8
    MobileNetV3 a quarter of its fp32 size instead of half; PyTorch, the ONNX files and every runtime compute
    with the same rounded weights.
    """
    from nncf.torch.function_hook.wrapper import get_hook_storage
    from nncf.torch.quantization.layers import BaseQuantizer, PTQuantizerSpec

    storage = get_hook_storage(model)
    weight_hooks = {hook_node(name): hook for name, hook in storage.named_hooks(remove_duplicate=False)
                    if isinstance(hook, BaseQuantizer) and name.startswith("pre_hooks.") and name.endswith("__1.0")}
    template = next((hook for hook in weight_hooks.values() if hook.scale.numel() > 1), None)
    if template is None:  # nothing NNCF quantized per channel: no rule to follow
        return 0
    modules = dict(model.named_modules())
    added = 0
    for node, owner in owners.items():
        layer = modules.get(owner)
        op = node.rsplit("/", 2)[-2] if node.count("/") >= 2 else ""
        if (node in weight_hooks or op not in WEIGHT_OPS or is_inside(owner, fallback_modules)
                or layer is None or getattr(layer, "weight", None) is None):
            continue
        weight = layer.weight.detach()
        shape = (weight.shape[0], *([1] * (weight.dim() - 1)))
        spec = PTQuantizerSpec.from_state({**template.get_config(), "scale_shape": shape})
        quantizer = type(template)(spec)
        quantizer.scale.data = weight.abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True).clamp_min(1e-12)
        storage.register_pre_function_hook(node, 1, quantizer)
        added += 1
    return added


def _drop_quantizers_owned_by(model: Any, owners: dict[str, str], modules: Sequence[str]) -> int:
    """Remove the quantizers still sitting on fallback modules' operations; returns how many hooks went.

    NNCF's ignored scope keeps a module's inputs and weights float, but the quantizer on its *output* (placed
    there for the layers that read it) stays. The sensitivity pass charges that quantizer to the module, so a
    fallback must drop it too: the tensor the module writes then stays float for its readers.
    """
    from nncf.torch.function_hook.wrapper import get_hook_storage
    from nncf.torch.quantization.layers import BaseQuantizer

    if not modules:
        return 0
    storage = get_hook_storage(model)
    doomed = [name for name, hook in storage.named_hooks(remove_duplicate=False)
              if isinstance(hook, BaseQuantizer) and is_inside(owners.get(hook_node(name), ""), modules)]
    for name in doomed:
        storage.delete_hook(name)
    return len(doomed)


def quantizers(model: Any) -> list[tuple[str, Any]]:
    """(hook name, quantizer) for every fake-quant hook in the model; [] for a float model."""
    if "nncf" not in sys.modules:  # nothing was quantized in this process, and importing nncf takes seconds
        return []
    try:
        from nncf.torch.function_hook.wrapper import get_hook_storage, is_wrapped
        from nncf.torch.quantization.layers import BaseQuantizer
    except ImportError:
        return []
    if not is_wrapped(model):
        return []
    storage = get_hook_storage(model)
    return [(name, module) for name, module in storage.named_modules() if isinstance(module, BaseQuantizer)]


def is_quantized(model: Any) -> bool:
    return bool(quantizers(model))


def force_signed_(model: Any) -> int:
    """Make every quantizer signed int8 (TensorRT accepts no uint8 Q/DQ); returns how many changed."""
    changed = 0
    for _, quantizer in quantizers(model):
        if not quantizer.signed:
            quantizer.signed = True
            changed += 1
    return changed


def hook_node(hook_name: str) -> str:
    """'pre_hooks.stages/0/conv2d/0__1.0' -> 'stages/0/conv2d/0' (the operation the hook sits on)."""
    name = hook_name.split(".", 1)[1] if "." in hook_name else hook_name
    return name.rsplit("__", 1)[0]


def quantizers_by_module(model: Any, owners: dict[str, str] | None = None) -> dict[str, list[Any]]:
    """Quantizers grouped by the module that owns the operation they sit on (weights and inputs of a layer).

    `owners` is `node_owners` of the float model (by default the map `quantize_ptq` attached): exact for
    modules called from outside their parent (a ModuleList's items). Without one the owner is read from the
    node name, which stops at such a module's caller.
    """
    owners = owners if owners is not None else getattr(model, OWNERS_ATTR, None)
    paths = {name for name, _ in model.named_modules() if name}
    groups: dict[str, list[Any]] = {}
    for hook_name, quantizer in quantizers(model):
        node = hook_node(hook_name)
        owner = owners.get(node) if owners is not None else module_of_node(node, paths)
        groups.setdefault(owner or GRAPH_OWNER, []).append(quantizer)
    return groups


def export_qdq_onnx(model: Any, args: tuple[Any, ...], *, opset: int, input_names: Sequence[str],
                    output_names: Sequence[str], dynamic_batch: bool) -> Any:
    """The Q/DQ ONNX graph of a quantized model (TorchScript exporter: NNCF's symbolic functions)."""
    import onnx
    import torch
    from nncf.torch.quantization.layers import QuantizerExportMode

    from edgekd.export.backends.onnx import exact_index_add

    for _, quantizer in quantizers(model):
        quantizer.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)
    names = (*input_names, *output_names)
    axes = {name: {0: "batch"} for name in names} if dynamic_batch else None
    with tempfile.TemporaryDirectory(prefix="edgekd-qdq-") as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(folder) / "model.onnx"
        with exact_index_add():
            torch.onnx.export(model.eval(), args, str(path), dynamo=False, opset_version=opset,
                              input_names=list(input_names), output_names=list(output_names), dynamic_axes=axes)
        return onnx.load(str(path))


def save_quantized(model: Any, path: Path) -> None:
    """Weights at `path` (.pt, a plain state_dict), NNCF's structure next to it (.nncf.json) and the BatchNorms
    folded before quantizing (.folds.json)."""
    import torch

    nncf = _nncf()
    atomic_write_json(path.with_suffix(FOLDS_SUFFIX), [list(pair) for pair in getattr(model, FOLDS_ATTR, [])])
    atomic_write_json(path.with_suffix(CONFIG_SUFFIX), nncf.torch.get_config(model))
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)


def load_quantized(float_model: Any, path: Path) -> Any:
    """Rebuild the quantized model saved by `save_quantized` around a fresh float model of the same arch,
    with the same BatchNorms folded."""
    import torch

    nncf = _nncf()
    config_path = path.with_suffix(CONFIG_SUFFIX)
    if not path.is_file() or not config_path.is_file():
        raise EdgekdError(f"quantized model not found: {path} (and {config_path.name}); run the qat stage first")
    config = json.loads(config_path.read_text())
    folds_path = path.with_suffix(FOLDS_SUFFIX)
    folds = [tuple(pair) for pair in json.loads(folds_path.read_text())] if folds_path.is_file() else []
    base = apply_folds(copy.deepcopy(float_model).eval(), folds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = nncf.torch.load_from_config(base, config)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    setattr(model, FOLDS_ATTR, folds)
    return model.eval()


def float_twin(model: Any) -> Any:
    """The float module under an NNCF quantized model: its (QAT fine-tuned) weights, none of its quantizers.

    NNCF 3 wraps the module in place (a patched `forward` and a hook-storage submodule holding the quantizers);
    a copy with those three removed runs the module's own forward on the same parameters. A plain module is
    copied as it is. The PT2E backends (ExecuTorch, LiteRT) quantize this copy themselves.
    """
    import copy

    twin = copy.deepcopy(model)
    try:
        from nncf.torch.function_hook.wrapper import ATR_HOOK_STORAGE, is_wrapped
    except ImportError:
        return twin.eval()
    if is_wrapped(twin):
        twin.__dict__.pop("forward")
        twin.__dict__.pop("_replicate_for_data_parallel", None)
        delattr(twin, ATR_HOOK_STORAGE)
    return twin.eval()
