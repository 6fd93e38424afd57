"""Will this ONNX build on the target's TensorRT? A lint that runs here, without TensorRT.

Checks, each a finding with a severity (error: the build fails or the result is wrong; warning: it builds
but not as you would want; info: worth knowing):
- operators TensorRT's ONNX parser does not import (onnx-tensorrt's support matrix, docs/operators.md,
  for TensorRT 8.4; newer releases import a few more, so for a target >= 8.5 those are warnings), and
  operators from custom domains, which need a plugin;
- LayerNormalization (opset 17) before TensorRT 8.6 — export with opset 16 or lower so it is decomposed;
- dynamic input dimensions other than the batch (an optimisation profile must cover them);
- INT64 initializers (cast to INT32 by the parser; values outside INT32 are clamped — wrong results);
  DOUBLE tensors;
- Q/DQ placement for explicit quantization: int8 only (uint8 zero points are rejected), zero point 0,
  constant scales, per-channel activation quantization (unsupported), weights quantized per output
  channel, and Conv/MatMul/Gemm left outside any Q/DQ pair (they run in fp16/fp32: fine, but say so).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from edgekd.errors import EdgekdError

# "N" rows of onnx-tensorrt's docs/operators.md (TensorRT 8.4).
UNSUPPORTED_84 = frozenset({
    "BitShift", "Compress", "ConcatFromSequence", "ConvInteger", "Det", "DynamicQuantizeLinear", "Hardmax",
    "IsInf", "MatMulInteger", "MaxRoiPool", "MaxUnpool", "MeanVarianceNormalization", "Mod", "Multinomial",
    "NegativeLogLikelihoodLoss", "NonZero", "OneHot", "QLinearConv", "QLinearMatMul", "RandomNormal",
    "RandomNormalLike", "Reciprocal", "RoiAlign", "SequenceAt", "SequenceConstruct", "SequenceEmpty",
    "SequenceErase", "SequenceInsert", "SequenceLength", "Shrink", "SoftmaxCrossEntropyLoss", "SplitToSequence",
    "StringNormalizer", "TfIdfVectorizer", "Unique",
})
# Never imported by any release: sequence/string ops and the integer-arithmetic quantized ops (TensorRT
# takes quantization only as Q/DQ pairs).
UNSUPPORTED_ALWAYS = frozenset({
    "ConcatFromSequence", "ConvInteger", "DynamicQuantizeLinear", "MatMulInteger", "QLinearConv",
    "QLinearMatMul", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
    "SequenceLength", "SplitToSequence", "StringNormalizer", "TfIdfVectorizer",
})
WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
LAYERNORM_MIN_TRT = (8, 6)
INT32_MAX = 2**31 - 1


@dataclass
class Finding:
    severity: str  # "error" | "warning" | "info"
    code: str
    message: str
    node: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LintReport:
    target_tensorrt: str
    findings: list[Finding]

    @property
    def passed(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(f.severity == s for f in self.findings) for s in ("error", "warning", "info")}
        return {"target_tensorrt": self.target_tensorrt, "passed": self.passed, "counts": counts,
                "findings": [f.to_dict() for f in self.findings]}


def lint_onnx(model_or_path: Any, *, target_tensorrt: str = "8.6") -> LintReport:
    """Lint an ONNX model (a path or a ModelProto) for TensorRT `target_tensorrt` (e.g. '8.2', '10.3')."""
    import onnx

    model = onnx.load(str(model_or_path)) if isinstance(model_or_path, (str, Path)) else model_or_path
    version = _parse_version(target_tensorrt)
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    constants = _constant_outputs(graph)
    findings = [
        *_operator_findings(graph, version),
        *_dynamic_shape_findings(graph),
        *_dtype_findings(graph, inits),
        *_qdq_findings(graph, inits, constants),
    ]
    return LintReport(target_tensorrt, findings)


def _parse_version(text: str) -> tuple[int, int]:
    try:
        major, minor = (int(part) for part in str(text).split(".")[:2])
    except ValueError as exc:
        raise EdgekdError(f"TensorRT version '{text}' is not MAJOR.MINOR (e.g. 8.6)") from exc
    return major, minor


def _operator_findings(graph, version: tuple[int, int]) -> Iterable[Finding]:
    reported: set[str] = set()
    for node in graph.node:
        op = node.op_type
        if node.domain not in ("", "ai.onnx") and (node.domain, op) not in reported:
            reported.add((node.domain, op))
            yield Finding("error", "custom-domain-op",
                          f"{node.domain}::{op} is not an ONNX operator: TensorRT needs a plugin for it", node.name)
        elif op in UNSUPPORTED_ALWAYS and op not in reported:
            reported.add(op)
            yield Finding("error", "unsupported-op", f"{op} is not imported by TensorRT's ONNX parser", node.name)
        elif op in UNSUPPORTED_84 and op not in reported:
            reported.add(op)
            severity = "error" if version < (8, 5) else "warning"
            yield Finding(severity, "unsupported-op",
                          f"{op} is not imported by TensorRT <= 8.4's ONNX parser; check the target's release notes "
                          f"for {'.'.join(map(str, version))}", node.name)
        elif op == "LayerNormalization" and version < LAYERNORM_MIN_TRT and op not in reported:
            reported.add(op)
            yield Finding("error", "layernorm-opset17",
                          f"LayerNormalization needs TensorRT >= 8.6; the target has {'.'.join(map(str, version))}: "
                          "export with opset 16 so it is decomposed", node.name)


def _dynamic_shape_findings(graph) -> Iterable[Finding]:
    for value in graph.input:
        dims = value.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            dynamic = dim.HasField("dim_param") or not dim.HasField("dim_value")
            if not dynamic:
                continue
            if axis == 0:
                yield Finding("info", "dynamic-batch",
                              f"input '{value.name}' has a dynamic batch: the build needs min/opt/max shapes "
                              "(the trtexec command sets them)")
            else:
                yield Finding("warning", "dynamic-shape",
                              f"input '{value.name}' axis {axis} is dynamic: engines are fastest for static shapes; "
                              "cover it with an optimisation profile or export with a fixed size")


def _dtype_findings(graph, inits) -> Iterable[Finding]:
    import onnx
    from onnx import numpy_helper

    for name, init in inits.items():
        if init.data_type == onnx.TensorProto.INT64:
            values = numpy_helper.to_array(init)
            if values.size and (values.max() > INT32_MAX or values.min() < -INT32_MAX - 1):
                yield Finding("error", "int64-overflow",
                              f"INT64 initializer '{name}' holds values outside INT32: TensorRT clamps them")
            else:
                yield Finding("info", "int64-weights", f"INT64 initializer '{name}' is cast to INT32 by the parser")
        elif init.data_type == onnx.TensorProto.DOUBLE:
            yield Finding("warning", "double-tensor", f"DOUBLE initializer '{name}' is cast down to FLOAT")
    for value in [*graph.input, *graph.output]:
        if value.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE:
            yield Finding("error", "double-io", f"graph input/output '{value.name}' is DOUBLE: use float32")


def _constant_outputs(graph) -> dict[str, Any]:
    """Outputs of Constant nodes (the TorchScript exporter writes Q/DQ scales as Constant nodes)."""
    from onnx import numpy_helper

    found = {}
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                found[node.output[0]] = numpy_helper.to_array(value)
    return found


def _constant_derived(graph, inits) -> set[str]:
    """Tensors computed from constants only (weights, also after Transpose/Reshape): not activations."""
    known = set(inits)
    for node in graph.node:  # ONNX nodes are topologically sorted
        if node.op_type == "Constant" or (node.input and all(not name or name in known for name in node.input)):
            known.update(node.output)
    return known


def _qdq_findings(graph, inits, constants) -> Iterable[Finding]:
    quantizers = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    dequantizers = [n for n in graph.node if n.op_type == "DequantizeLinear"]
    if not quantizers and not dequantizers:
        return
    weights = _constant_derived(graph, inits)
    for node in [*quantizers, *dequantizers]:
        yield from _qdq_node(node, inits, constants, weights)
    yield from _unquantized_weighted_ops(graph, dequantizers)


def _value(name: str, inits, constants) -> Any:
    from onnx import numpy_helper

    if name in inits:
        return numpy_helper.to_array(inits[name])
    return constants.get(name)


def _qdq_node(node, inits, constants, weights: set[str]) -> Iterable[Finding]:
    import numpy as np

    scale = _value(node.input[1], inits, constants) if len(node.input) > 1 else None
    if scale is None:
        yield Finding("error", "qdq-dynamic-scale", f"{node.op_type} scale is not a constant", node.name)
    zero = _value(node.input[2], inits, constants) if len(node.input) > 2 and node.input[2] else None
    if zero is not None:
        if zero.dtype != np.int8:
            yield Finding("error", "qdq-not-int8",
                          f"{node.op_type} zero point is {zero.dtype}: TensorRT takes int8 Q/DQ only", node.name)
        if np.any(zero != 0):
            yield Finding("error", "qdq-zero-point", f"{node.op_type} zero point is not 0 (asymmetric)", node.name)
    is_weight = node.input[0] in weights
    per_channel = scale is not None and np.size(scale) > 1
    if node.op_type == "QuantizeLinear" and per_channel and not is_weight:
        yield Finding("error", "qdq-per-channel-activation",
                      "activations must be quantized per tensor for TensorRT", node.name)
    if is_weight and not per_channel:
        yield Finding("info", "qdq-per-tensor-weight", "weights quantized per tensor (per channel is more accurate)",
                      node.name)


def _unquantized_weighted_ops(graph, dequantizers) -> Iterable[Finding]:
    dq_outputs = {n.output[0] for n in dequantizers}
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type not in WEIGHTED_OPS:
            continue
        data_input = node.input[0]
        # The data input may reach the op through a shape-only node (Reshape/Transpose) after its DQ.
        producer = producers.get(data_input)
        if data_input in dq_outputs or (producer is not None and producer.op_type in ("Reshape", "Transpose")
                                        and producer.input[0] in dq_outputs):
            continue
        yield Finding("info", "float-layer", f"{node.op_type} has no Q/DQ on its input: it runs in fp16/fp32",
                      node.name)
