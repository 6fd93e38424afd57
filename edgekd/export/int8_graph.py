"""int8 ONNX graphs per runtime, all from the one quantization-aware model's Q/DQ graph.

NNCF exports a quantized model with TensorRT's explicit-quantization placement: QuantizeLinear →
DequantizeLinear on the inputs and weights of weighted operations. TensorRT and OpenVINO fuse that into
int8 kernels. ONNX Runtime's CPU provider does not: it forms QLinearConv only for
DQ(x), DQ(w) → Conv → Q, so a conv whose output is not quantized runs in float on weights it dequantizes
at every call (int8 slower than fp32). Two graphs are therefore made from the same learned ranges:

- `explicit_graph`: the Q/DQ graph as NNCF wrote it, with each weight's QuantizeLinear folded into an
  int8 initializer (DequantizeLinear only): the values are the same, the file a quarter of the size.
- `onnxruntime_graph`: the Q/DQ pairs are read off (tensor → scale, zero point), the graph is made float
  again (weights replaced by their fake-quantized values, so nothing is re-rounded), and ONNX Runtime's
  own QDQ quantizer places quantizers where its CPU kernels fuse them, taking every range QAT learned as
  a `TensorQuantOverrides` entry and calibrating only the tensors QAT never quantized (conv outputs,
  residual adds) on calibration inputs. Activations are stored unsigned (U8S8): x86's int8 kernels take
  u8 activations (s8 activations run a slow path unless a session option is set), and ARM64 runs U8S8 too.
  A signed symmetric range [-128s, 127s] is the same grid as u8 with zero point 128; a ReLU's output,
  never negative, gets zero point 0 instead so that ONNX Runtime can drop the ReLU into the conv (the grid
  on [0, 127s] is unchanged; values above 127s are no longer clipped).

Operations QAT kept float (`quant.fallback`) stay float in both graphs. See docs/decisions.md.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from edgekd.errors import EdgekdError

WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
# Weighted operations ONNX Runtime's CPU provider has no int8 kernel for: kept float (on QAT's fake-quantized weights,
# so the arithmetic is the one QAT trained), neither counted nor gated.
NO_INT8_KERNEL_OPS = ("ConvTranspose",)
# Operations that move values without computing new ones: a tensor made of quantized tensors stays on their
# grids through them (NNCF quantizes a Concat's inputs rather than its output, for one). Resize and Pad are
# taken as nearest-neighbour and zero padding, which is what the students use.
PASS_THROUGH_OPS = ("Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "MaxPool", "Concat",
                    "Split", "Slice", "Gather", "Resize", "Pad")
INT8_CONV_KERNELS = ("QLinearConv", "ConvInteger")
FLOAT_CONV_KERNELS = ("Conv", "FusedConv", "NhwcFusedConv")
INT8_MATMUL_KERNELS = ("QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat", "QGemm", "DynamicQuantizeMatMul")
FLOAT_MATMUL_KERNELS = ("MatMul", "Gemm", "FusedMatMul", "FusedGemm")


@dataclass
class Quantizer:
    """A QuantizeLinear's parameters: per tensor (`axis` None) or per channel along `axis`."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: Optional[int]


def explicit_graph(qdq_proto: Any) -> Any:
    """The Q/DQ graph with every weight stored as int8 (QuantizeLinear on a constant folded away)."""
    from onnx import numpy_helper

    graph = qdq_proto.graph
    consts = _constants(graph)
    folded: dict[str, str] = {}  # QuantizeLinear output → int8 initializer name
    kept = []
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] in consts:
            quantizer = _quantizer(node, consts)
            values = _quantize(consts[node.input[0]], quantizer)
            name = _unique(f"{node.input[0]}_quantized", folded.values())  # a weight shared by two quantizers
            graph.initializer.append(numpy_helper.from_array(values, name))
            folded[node.output[0]] = name
            continue
        kept.append(node)
    for node in kept:
        for k, name in enumerate(node.input):
            node.input[k] = folded.get(name, name)
    _replace_nodes(graph, _without_dead_constants(kept, graph))
    _drop_unused_initializers(graph)
    return qdq_proto


def unfolded_weights(explicit_proto: Any) -> Any:
    """The inverse of `explicit_graph`: each int8 weight becomes its float value followed by QuantizeLinear →
    DequantizeLinear again (the same numbers). OpenVINO converts this form into faster IR: converted from int8
    weight initializers, the mono3d student's int8 IR ran 1.47–1.55× slower than from NNCF's graph in two
    side-by-side runs (2.15 vs 1.39 ms, 2.54 vs 1.74 ms); unfolded, 2.08 vs 2.05 ms, outputs equal to 3e-5."""
    from onnx import helper, numpy_helper

    graph = explicit_proto.graph
    consts = _constants(graph)
    int8 = {i.name for i in graph.initializer if i.data_type in (2, 3)}  # UINT8, INT8
    added = []
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in int8:
            continue
        quantizer = _quantizer(node, consts)
        name = node.input[0]
        weight = _dequantize(consts[name], quantizer)
        taken = {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}
        float_name = _unique(f"{name}_float", taken)  # two DequantizeLinear may share one int8 weight
        q_name = _unique(f"{name}_requantized", taken)
        graph.initializer.append(numpy_helper.from_array(weight, float_name))
        axis = [a for a in node.attribute if a.name == "axis"]
        quantize = helper.make_node("QuantizeLinear", [float_name, *node.input[1:]], [q_name], name=f"{q_name}_Q")
        quantize.attribute.extend(axis)
        added.append((node, quantize))
        node.input[0] = q_name
    nodes = list(graph.node)
    for dq, quantize in added:
        nodes.insert(nodes.index(dq), quantize)
    _replace_nodes(graph, nodes)
    _drop_unused_initializers(graph)
    return explicit_proto


def onnxruntime_graph(qdq_proto: Any, calibration: np.ndarray, *, batch_size: int = 8) -> tuple[Any, dict[str, Any]]:
    """The int8 graph ONNX Runtime's CPU provider runs as int8 kernels; (proto, what was done)."""
    import onnx

    float_proto, learned = float_graph(qdq_proto)
    float_proto = _simplified(float_proto, learned)
    graph = float_proto.graph
    _unshare_initializers(graph, learned)
    for index, node in enumerate(graph.node):  # the quantizer excludes nodes by name: every node needs its own
        if not node.name:
            node.name = f"edgekd_{node.op_type}_{index}"
    excluded, float_tensors = _kept_float(graph, learned)
    excluded |= {n.name for n in graph.node if n.op_type in NO_INT8_KERNEL_OPS}
    # A tensor QAT computed in float stays float: no node reading it is quantized, nor the node writing it unless
    # that is a weighted op QAT made int8 (ONNX Runtime must quantize its output to run it as an int8 kernel; the
    # float reader then sees that rounding, which parity measures). Without this, ONNX Runtime would quantize
    # e.g. a squeeze-excitation gate QAT never rounded.
    int8_writers = {n.name for n in graph.node if n.op_type in WEIGHTED_OPS and n.name not in excluded}
    excluded |= {n.name for n in graph.node if any(t in float_tensors for t in n.input)
                 or n.name not in int8_writers and any(t in float_tensors for t in n.output)}
    overrides = _unsigned_overrides(graph, learned, {i.name for i in graph.initializer})
    input_name = graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="edgekd-ort-int8-") as folder:
        source, target = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        onnx.save(float_proto, str(source))
        _quantize_static(source, target, _reader(calibration, input_name, batch_size), sorted(excluded), overrides)
        proto = onnx.load(str(target))
    weight_only = _int8_weights_of_float_ops(proto.graph, excluded, learned)
    info = {
        "placement": "onnxruntime",
        "activations": "u8",
        "weights": "s8 per channel",
        "learned_ranges": len(learned),
        "calibrated_ranges": len(_quantized_activations(proto) - set(learned)),
        "float_ops": sorted(excluded),
        "int8_weights_of_float_ops": weight_only,
        "calibration_samples": int(len(calibration)),
    }
    return proto, info


def _int8_weights_of_float_ops(graph: Any, excluded: set[str], learned: dict[str, Quantizer]) -> int:
    """Store as int8 (with a DequantizeLinear) the weights of weighted ops kept float whose weights QAT rounded
    (edgekd.quant.nncf_quant.quantize_left_weights: the squeeze-excitation convs); returns how many.

    ONNX Runtime's quantizer leaves an excluded node's constants as they are, float values on the int8 grid:
    the same numbers in four times the bytes. The conv still runs in float on the dequantized weight.
    """
    from onnx import helper, numpy_helper

    constants = {i.name: i for i in graph.initializer}
    taken = set(constants) | {o for n in graph.node for o in n.output}
    nodes, stored = [], 0
    for node in graph.node:
        weight = node.input[1] if node.op_type in WEIGHTED_OPS and len(node.input) > 1 else None
        if node.name in excluded and weight in constants and weight in learned:
            q = learned[weight]
            names = [_unique(f"{weight}_{suffix}", taken) for suffix in ("int8", "scale", "zero_point", "dequantized")]
            taken.update(names)
            values = numpy_helper.to_array(constants[weight])
            graph.initializer.extend([numpy_helper.from_array(_quantize(values, q), names[0]),
                                      numpy_helper.from_array(q.scale.reshape(-1 if q.axis is not None else ()),
                                                              names[1]),
                                      numpy_helper.from_array(q.zero_point.reshape(-1 if q.axis is not None else ()),
                                                              names[2])])
            axis = {} if q.axis is None else {"axis": q.axis}
            nodes.append(helper.make_node("DequantizeLinear", names[:3], [names[3]], name=names[3], **axis))
            node.input[1] = names[3]
            stored += 1
        nodes.append(node)
    _replace_nodes(graph, nodes)
    _drop_unused_initializers(graph)
    return stored


def quantized_skip_reads(proto: Any) -> int:
    """Make a residual Add read a weighted op's output through the QuantizeLinear → DequantizeLinear pair that
    already quantizes it for the next layer (a linear bottleneck's skip in MobileNetV2/V3 and EfficientNet);
    returns how many Add inputs were rerouted. For OpenVINO only.

    OpenVINO 2026.4's CPU plugin fuses that quantizer into the conv producing the tensor and the Add then gets
    values that do not match the float tensor the graph says it reads: a random-weight mobilenetv3_small_050's
    int8 IR agreed with ONNX Runtime on the same file at 2.5 dB SNR from the first such Add on (140 dB before
    it). Read through the pair, the Add gets the rounded tensor, which OpenVINO computes right (139 dB against
    ONNX Runtime on the rewritten graph, 36 dB against the original: one int8 rounding of the skip). TensorRT's
    bundle and ONNX Runtime's file keep NNCF's graph.
    """
    graph = proto.graph
    producer = {out: n for n in graph.node for out in n.output}
    dequantizer = {n.input[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    dequantized_copy: dict[str, str] = {}
    for q in graph.node:
        writer = producer.get(q.input[0]) if q.op_type == "QuantizeLinear" else None
        if writer is not None and writer.op_type in WEIGHTED_OPS and q.output[0] in dequantizer:
            dequantized_copy.setdefault(q.input[0], dequantizer[q.output[0]].output[0])
    rerouted = 0
    for node in graph.node:
        if node.op_type != "Add":
            continue
        for k, name in enumerate(node.input):
            if name in dequantized_copy:
                node.input[k] = dequantized_copy[name]
                rerouted += 1
    return rerouted


def _unshare_initializers(graph: Any, learned: dict[str, Quantizer]) -> None:
    """Give every node its own copy of each initializer it reads.

    Exporters and onnxslim share one initializer between nodes whose constants are equal (the zero biases of
    two convs, say). ONNX Runtime's quantizer then quantizes it for the int8 reader, and a conv kept float
    reads a DequantizeLinear output instead of a constant: it cannot pre-pack its weights and runs the generic
    kernel (a 5×5 depthwise conv of the layout student: 1.65 ms instead of about 0.1 ms).
    """
    from onnx import numpy_helper

    values = {init.name: init for init in graph.initializer}
    taken = set(values) | {o for n in graph.node for o in n.output}
    seen: set[str] = set()
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name not in values:
                continue
            if name not in seen:
                seen.add(name)
                continue
            copy = _unique(f"{name}/{node.name or node.op_type}", taken)
            taken.add(copy)
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(values[name]), copy))
            node.input[k] = copy
            if name in learned:
                learned[copy] = learned[name]


def _simplified(proto: Any, learned: dict[str, Quantizer]) -> Any:
    """onnxslim's constant folding of the float graph (the shape arithmetic the TorchScript exporter leaves, which
    ONNX Runtime would otherwise compute at every call), kept only if every tensor QAT quantized keeps its name;
    the graph as it was otherwise (it quantizes all the same)."""
    from edgekd.export.backends.onnx import slim_or_keep

    with _quiet_root_logger():
        slimmed, failure = slim_or_keep(proto)
    if failure:  # `slimmed` is then a copy of the graph as it was
        return slimmed
    names = {i.name for i in slimmed.graph.initializer} | {o for n in slimmed.graph.node for o in n.output} | {
        i.name for i in slimmed.graph.input}
    return slimmed if set(learned) <= names else proto  # onnxslim leaves its argument as it was when it succeeds


def float_graph(qdq_proto: Any) -> tuple[Any, dict[str, Quantizer]]:
    """The Q/DQ graph without its Q/DQ pairs, weights replaced by their fake-quantized values; and the
    quantizer that sat on each tensor (by the tensor's name in the float graph)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.ModelProto()
    proto.CopyFrom(qdq_proto)
    graph = proto.graph
    consts = _constants(graph)
    nodes = [n for n in graph.node if not (n.op_type in ("Constant", "Identity") and n.output[0] in consts)]
    producer = {out: n for n in nodes for out in n.output}
    learned: dict[str, Quantizer] = {}
    rename: dict[str, str] = {}
    dropped: set[int] = set()
    for dq in nodes:
        q = producer.get(dq.input[0]) if dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear":
            continue
        tensor, quantizer = q.input[0], _quantizer(q, consts)
        if tensor in consts:  # a weight: keep the values QAT computed with, exactly on the int8 grid
            consts[tensor] = _dequantize(_quantize(consts[tensor], quantizer), quantizer)
        learned[tensor] = quantizer
        rename[dq.output[0]] = tensor
        dropped.update((id(q), id(dq)))
    kept = [n for n in nodes if id(n) not in dropped]
    for node in kept:
        for k, name in enumerate(node.input):
            node.input[k] = rename.get(name, name)
    for output in graph.output:  # a graph output read through a Q/DQ pair keeps its name
        if output.name in rename:
            kept.append(onnx.helper.make_node("Identity", [rename[output.name]], [output.name]))
    kept = _fold_weight_transposes(kept, consts, learned)
    used = {name for node in kept for name in node.input}
    _replace_nodes(graph, kept)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items() if k in used)
    return proto, learned


def _fold_weight_transposes(nodes: list[Any], consts: dict[str, np.ndarray], learned: dict[str, Quantizer]) -> list[Any]:
    """A Linear layer exports as W → QuantizeLinear → DequantizeLinear → Transpose → MatMul. Without its Q/DQ
    pair the Transpose reads the weight constant: fold it into a transposed constant named as its output, with
    the per-channel axis moved along, so that the quantizer sees the MatMul's weight as a weight (the quantized
    initializer ONNX Runtime's QLinearMatMul needs) and QAT's scales follow it."""
    readers: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    kept = []
    for node in nodes:
        source = node.input[0] if node.op_type == "Transpose" else None
        if source not in learned or source not in consts:
            kept.append(node)
            continue
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        perm = perm or list(reversed(range(consts[source].ndim)))
        quantizer = learned[source]
        consts[node.output[0]] = np.ascontiguousarray(np.transpose(consts[source], perm))
        axis = None if quantizer.axis is None else perm.index(quantizer.axis)
        learned[node.output[0]] = Quantizer(quantizer.scale, quantizer.zero_point, axis)
        readers[source] -= 1
        if readers[source] == 0:  # the untransposed weight has no other reader: its quantizer goes with it
            del learned[source]
    return kept


def int8_kernel_counts(path: str | Path) -> dict[str, int]:
    """How many convolutions and matrix products ONNX Runtime's CPU provider runs as int8 kernels and how
    many as float, read from the graph it optimises (session option `optimized_model_filepath`)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgekd-ort-opt-") as folder:
        optimized = Path(folder) / "optimized.onnx"
        options = ort.SessionOptions()
        # EXTENDED applies the QDQ fusions; ALL would add x86-only layout nodes, irrelevant to the count.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(optimized)
        options.intra_op_num_threads = 1
        try:
            ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for unreadable or invalid graphs
            raise EdgekdError(f"{Path(path).name}: ONNX Runtime cannot load it: {str(exc).splitlines()[0]}") from exc
        ops = collections.Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)
    return {
        "int8_convs": sum(ops[k] for k in INT8_CONV_KERNELS),
        "float_convs": sum(ops[k] for k in FLOAT_CONV_KERNELS),
        "int8_matmuls": sum(ops[k] for k in INT8_MATMUL_KERNELS),
        "float_matmuls": sum(ops[k] for k in FLOAT_MATMUL_KERNELS),
    }


def unfused_reason(kernels: dict[str, int], quantized: dict[str, int]) -> str:
    """'' when ONNX Runtime runs at least as many int8 convolutions and matrix products as QAT quantized;
    otherwise the line that says how many stay float (an int8 file that is int8 in name only)."""
    reasons = [f"{quantized[kind] - kernels[f'int8_{kind}']} of {quantized[kind]} quantized {kind[:-1]}s run in float "
               f"in ONNX Runtime" for kind in ("convs", "matmuls") if kernels[f"int8_{kind}"] < quantized[kind]]
    return "; ".join(reasons)


def quantized_weighted_ops(qdq_proto: Any) -> dict[str, int]:
    """How many convolutions and matrix products of a Q/DQ graph QAT made int8: both the weight and the input
    quantized (a conv whose input a fallback kept float has int8 weights but no int8 kernel in any runtime)."""
    graph = qdq_proto.graph
    producer = {out: n for n in graph.node for out in n.output}
    dequantized = {n.output[0]: True for n in graph.node if n.op_type == "DequantizeLinear"}
    counts = {"convs": 0, "matmuls": 0}
    for node in graph.node:
        if node.op_type in WEIGHTED_OPS and len(node.input) > 1 and _reaches_quantized(node.input[1], dequantized,
                                                                                          producer):
            if _reaches_quantized(node.input[0], dequantized, producer):
                counts["convs" if node.op_type.startswith("Conv") else "matmuls"] += 1
    return counts


def _reader(inputs: np.ndarray, name: str, batch_size: int) -> Any:
    """onnxruntime.quantization's CalibrationDataReader over an array of inputs, in batches."""
    from onnxruntime.quantization import CalibrationDataReader

    data = np.ascontiguousarray(inputs, dtype=np.float32)
    batches = iter([{name: data[i:i + batch_size]} for i in range(0, len(data), batch_size)])

    class Reader(CalibrationDataReader):
        def get_next(self) -> Optional[dict[str, np.ndarray]]:
            return next(batches, None)

    return Reader()


def _quantize_static(source: Path, target: Path, reader: Any, excluded: list[str],
                     overrides: dict[str, list[dict[str, Any]]]) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with _quiet_root_logger():
        quantize_static(
            str(source), str(target), reader, quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
            extra_options={"TensorQuantOverrides": overrides, "ActivationSymmetric": False,
                           "WeightSymmetric": True},
        )


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    # The quantizer logs "please run pre-processing" on the root logger; the float graph is already
    # shape-complete and folded, so the advice does not apply.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _kept_float(graph: Any, learned: dict[str, Quantizer]) -> tuple[set[str], set[str]]:
    """Weighted operations QAT left float (no weight quantizer, or an input no quantizer reaches: NNCF's
    placement or `quant.fallback`), and their inputs."""
    producer = {out: n for n in graph.node for out in n.output}
    excluded: set[str] = set()
    float_tensors: set[str] = set()
    for node in graph.node:
        if node.op_type not in WEIGHTED_OPS or len(node.input) < 2:
            continue
        weight_quantized = _reaches_quantized(node.input[1], learned, producer)
        input_quantized = _reaches_quantized(node.input[0], learned, producer)
        if weight_quantized and input_quantized:
            continue
        excluded.add(node.name)
        if not input_quantized:
            float_tensors.add(node.input[0])
    return excluded, float_tensors


def _reaches_quantized(tensor: str, learned: dict[str, Any], producer: dict[str, Any]) -> bool:
    """Whether `tensor` is a quantized tensor, or is made only of quantized tensors by pass-through operations."""
    if tensor in learned:
        return True
    node = producer.get(tensor)
    if node is None or node.op_type not in PASS_THROUGH_OPS:
        return False
    data = [node.input[0]] if node.op_type != "Concat" else list(node.input)
    return all(_reaches_quantized(t, learned, producer) for t in data if t)


def _unsigned_overrides(graph: Any, learned: dict[str, Quantizer], weights: set[str]) -> dict[str, list[dict]]:
    """ORT `TensorQuantOverrides`: weights signed per channel as learned, activations on the same grid as u8."""
    non_negative = _non_negative_outputs(graph)
    overrides: dict[str, list[dict[str, Any]]] = {}
    for tensor, q in learned.items():
        if tensor in weights:
            overrides[tensor] = _weight_override(q)
            continue
        if q.zero_point.dtype != np.int8 or q.axis is not None and q.scale.size > 1:
            raise EdgekdError(f"activation quantizer on '{tensor}' is not per-tensor int8; cannot re-place it")
        shift = 0 if tensor in non_negative and int(q.zero_point.reshape(())) == 0 else 128
        zero = np.asarray(int(q.zero_point.reshape(())) + shift, dtype=np.uint8)
        overrides[tensor] = [{"scale": q.scale.reshape(()).astype(np.float32), "zero_point": zero}]
    return overrides


def _weight_override(q: Quantizer) -> list[dict[str, Any]]:
    if q.scale.size == 1:
        return [{"scale": q.scale.reshape(()).astype(np.float32), "zero_point": q.zero_point.reshape(())}]
    return [{"axis": q.axis, "scale": np.asarray(q.scale[c], dtype=np.float32),
             "zero_point": np.asarray(q.zero_point[c])} for c in range(q.scale.size)]


def _non_negative_outputs(graph: Any) -> set[str]:
    """Outputs of ReLU, and of Clip with a lower bound of 0 (ReLU6): ONNX Runtime folds these into the
    conv before them when the quantized range starts at 0."""
    consts = _constants(graph)
    outputs = {n.output[0] for n in graph.node if n.op_type == "Relu"}
    for node in graph.node:
        if node.op_type == "Clip" and len(node.input) > 1 and node.input[1] in consts:
            if float(np.asarray(consts[node.input[1]]).reshape(())) == 0.0:
                outputs.add(node.output[0])
    return outputs


def _quantized_activations(proto: Any) -> set[str]:
    return {n.input[0] for n in proto.graph.node if n.op_type == "QuantizeLinear"}


def _constants(graph: Any) -> dict[str, np.ndarray]:
    """Initializers, Constant node outputs and Identity copies of either, by name."""
    from onnx import numpy_helper

    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Identity" and node.input[0] in consts:
            consts[node.output[0]] = consts[node.input[0]]
    return consts


def _quantizer(node: Any, consts: dict[str, np.ndarray]) -> Quantizer:
    if node.input[1] not in consts or len(node.input) < 3 or node.input[2] not in consts:
        raise EdgekdError(f"{node.name or node.op_type}: a quantizer whose scale or zero point is not a constant")
    scale = np.asarray(consts[node.input[1]], dtype=np.float32)
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1) if scale.size > 1 else None
    return Quantizer(scale, np.asarray(consts[node.input[2]]), axis)


def _broadcast(q: Quantizer, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if q.axis is None:
        return q.scale.reshape(()), q.zero_point.reshape(()).astype(np.float32)
    shape = [1] * values.ndim
    shape[q.axis] = -1
    return q.scale.reshape(shape), q.zero_point.reshape(shape).astype(np.float32)


def _quantize(values: np.ndarray, q: Quantizer) -> np.ndarray:
    """ONNX QuantizeLinear as ONNX Runtime computes it: float32 division, round half to even, saturate to
    the zero point's type (float64 division rounds some halves the other way)."""
    scale, zero = _broadcast(q, values)
    info = np.iinfo(q.zero_point.dtype)
    quantized = np.rint(values.astype(np.float32) / scale) + zero
    return np.clip(quantized, info.min, info.max).astype(q.zero_point.dtype)


def _dequantize(values: np.ndarray, q: Quantizer) -> np.ndarray:
    scale, zero = _broadcast(q, values)
    return ((values.astype(np.float32) - zero) * scale).astype(np.float32)


def _unique(name: str, taken: Any) -> str:
    taken = set(taken)
    candidate, counter = name, 1
    while candidate in taken:
        candidate, counter = f"{name}_{counter}", counter + 1
    return candidate


def _replace_nodes(graph: Any, nodes: list[Any]) -> None:
    del graph.node[:]
    graph.node.extend(nodes)


def _without_dead_constants(nodes: list[Any], graph: Any) -> list[Any]:
    """Drop Constant and Identity nodes nothing reads any more (the float weights a fold replaced)."""
    while True:
        used = {name for node in nodes for name in node.input} | {o.name for o in graph.output}
        alive = [n for n in nodes if n.op_type not in ("Constant", "Identity") or n.output[0] in used]
        if len(alive) == len(nodes):
            return nodes
        nodes = alive


def _drop_unused_initializers(graph: Any) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
