"""Per-node work of an ONNX graph: multiply-accumulates and elements moved, after shape inference.

Element counts (not bytes) are stored so one feature list serves every precision.

>>> nodes = graph_nodes("model.onnx")
>>> sum(n.macs for n in nodes)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError

KINDS = ("conv", "dwconv", "pwconv", "matmul", "eltwise")
# Ops that runtimes resolve at load time or implement as a view: no kernel, no time.
FREE_OPS = {
    "Constant", "Identity", "Shape", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast", "ConstantOfShape",
    "QuantizeLinear", "DequantizeLinear", "Dropout", "Range", "Gather", "Unique",
}
# Elementwise ops that fusing runtimes merge into the producing Conv/Gemm kernel (activation, BN, residual Add).
FUSABLE_OPS = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Mul", "Add", "BatchNormalization",
               "LeakyRelu", "PRelu", "Tanh", "Swish"}


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    kind: str
    macs: int
    weight_elems: int
    io_elems: int
    fusable: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def graph_nodes(model: Any) -> list[Node]:
    """Nodes (free ops removed) of an ONNX file path or ModelProto, with MACs and elements moved."""
    proto = _load(model)
    shapes, weights, unknown = _shapes(proto)
    if unknown:  # e.g. Slice ends computed from Shape ops: onnxslim folds them, then shapes are static
        proto = _slim(proto)
        shapes, weights, unknown = _shapes(proto)
    nodes, heads = [], set()
    for node in proto.graph.node:
        if node.op_type in FREE_OPS:
            if set(node.input) & heads:  # a reshape between a conv and its activation does not stop fusion
                heads.update(node.output)
            continue
        item = _node(node, shapes, weights, heads)
        if item.kind != "eltwise" or item.fusable:
            heads.update(node.output)
        nodes.append(item)
    return nodes


def _load(model: Any) -> Any:
    import onnx

    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise EdgekdError(f"ONNX file not found: {path}")
        try:
            model = onnx.load(str(path))
        except Exception as error:  # protobuf DecodeError and friends: the file is not an ONNX model
            raise EdgekdError(f"{path}: not a readable ONNX model ({type(error).__name__})") from None
    return model


def _shapes(proto: Any) -> tuple[dict[str, list[int]], set[str], int]:
    """Static shapes of every tensor, the names of the weights, and how many tensors have an unknown dim
    past the batch dim (the batch dim counts as 1: batch-1 latency)."""
    import onnx

    graph = onnx.shape_inference.infer_shapes(proto, data_prop=True).graph
    shapes: dict[str, list[int]] = {}
    unknown = 0
    for info in [*graph.input, *graph.value_info, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.dim_value > 0 else 1 for d in dims]
        unknown += any(d.dim_value <= 0 for d in list(dims)[1:])
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes, {init.name for init in graph.initializer}, unknown


def _slim(proto: Any) -> Any:
    from edgekd.export.backends.onnx import slim_or_keep

    # onnxslim raises on graphs it cannot fold; the unfolded shapes are then the best we have
    return slim_or_keep(proto)[0]


def _node(node: Any, shapes: dict[str, list[int]], weights: set[str], heads: set[str]) -> Node:
    inputs = [name for name in node.input if name]
    weight_elems = sum(_numel(shapes.get(n)) for n in inputs if n in weights)
    io_elems = sum(_numel(shapes.get(n)) for n in [*inputs, *node.output] if n not in weights)
    kind, macs = _work(node, shapes)
    fusable = node.op_type in FUSABLE_OPS and any(n in heads for n in inputs)
    return Node(node.name or node.output[0], node.op_type, kind, macs, weight_elems, io_elems, fusable)


def _work(node: Any, shapes: dict[str, list[int]]) -> tuple[str, int]:
    if node.op_type in ("Conv", "ConvTranspose"):
        return _conv(node, shapes)
    if node.op_type in ("Gemm", "MatMul"):
        return "matmul", _matmul(node, shapes)
    return "eltwise", 0


def _conv(node: Any, shapes: dict[str, list[int]]) -> tuple[str, int]:
    """MACs = output elements x (input channels per group) x kernel area; ConvTranspose counts per input."""
    weight = shapes.get(node.input[1]) or []
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    if len(weight) < 3:
        return "conv", 0
    kernel = math.prod(weight[2:])
    if node.op_type == "ConvTranspose":  # weight is (Cin, Cout/group, k...): each input element feeds Cout/g x k
        macs = _numel(shapes.get(node.input[0])) * weight[1] * kernel
    else:
        macs = _numel(shapes.get(node.output[0])) * weight[1] * kernel
    channels_in = weight[1] * group if node.op_type == "Conv" else weight[0]
    if group > 1 and group == channels_in:
        return "dwconv", macs
    return ("pwconv" if kernel == 1 and group == 1 else "conv"), macs


def _matmul(node: Any, shapes: dict[str, list[int]]) -> int:
    """MACs = output elements x the contracted dimension K."""
    a = shapes.get(node.input[0]) or []
    if not a:
        return 0
    trans_a = next((x.i for x in node.attribute if x.name == "transA"), 0)
    k = a[-2] if (node.op_type == "Gemm" and trans_a) else a[-1]
    return _numel(shapes.get(node.output[0])) * k


def _numel(shape: list[int] | None) -> int:
    return math.prod(shape) if shape else 0
