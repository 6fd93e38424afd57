"""Exact ONNX rewrites that make a graph one pnnx converts into an ncnn file that computes the same function.

edgekd.export.backends.ncnn runs them, in this order, on its private copy of the checked ONNX before pnnx:
`channels_last_linear_as_conv`, `fold_for_batch`, `scatter_add_as_matmul`, `identity_gathers_as_reshape`. Each
rewrites only what it can prove equivalent and returns how many nodes it changed; the file is saved only then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def fold_for_batch(onnx_path: Path, batch: int) -> None:
    """Fix the input's batch to the one ncnn runs (an ncnn blob has none) and fold what that makes constant:
    shape arithmetic the dynamo exporter writes for a dynamic batch (Shape → Range → Gather) becomes constants
    ncnn can take. onnxslim is the simplifier the ONNX export already uses; if it fails, the file stays as it was."""
    import onnx
    import onnxslim

    model = onnx.load(str(onnx_path))
    for value in model.graph.input[:1]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].ClearField("dim_param")
            dims[0].dim_value = batch
    try:
        onnx.save(onnxslim.slim(model), str(onnx_path))
    except Exception:  # noqa: BLE001 - a simplifier failure leaves the exporter's own graph, which pnnx then judges
        pass


def identity_gathers_as_reshape(onnx_path: Path) -> int:
    """Rewrite, in place, a Gather that picks every element of a 1-D tensor in order (indices 0..n-1 in any
    shape) as the Reshape it is. The dynamo exporter writes a flatten of a pooled tensor that way (`as_strided`;
    the gaze students' timm head), and ncnn has no Gather layer. Returns how many were rewritten."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    lengths = _static_lengths(model)
    rewritten = 0
    for node in list(graph.node):
        index = constants.get(node.input[1]) if node.op_type == "Gather" and len(node.input) > 1 else None
        if index is None or lengths.get(node.input[0]) != index.size \
                or not np.array_equal(index.reshape(-1), np.arange(index.size)):
            continue
        shape_name = f"{node.name or node.output[0]}_shape"
        graph.initializer.append(numpy_helper.from_array(np.array(index.shape, np.int64), shape_name))
        graph.node.insert(list(graph.node).index(node), helper.make_node(
            "Reshape", [node.input[0], shape_name], [node.output[0]], name=f"{node.name}_as_reshape"))
        graph.node.remove(node)
        rewritten += 1
    if rewritten:
        _drop_dead_nodes(graph)
        onnx.save(model, str(onnx_path))
    return rewritten


def channels_last_linear_as_conv(onnx_path: Path) -> int:
    """Rewrite, in place, a Linear on an (N, H, W, C) tensor (MatMul by a constant (C, K) matrix, and the Add of a
    constant (K,) bias that follows it) as the 1×1 convolution it is, between two Transposes. Returns how many.

    timm's ConvNeXt runs its MLP that way. From ONNX, pnnx turns such a MatMul into Gemm between Reshapes whose
    second one writes a 4-D blob that keeps the batch, while the reductions after it (GRN's mean over the channels)
    get axes for a blob without one: ncnn then averaged over H instead of C, and the trained gaze networks came out
    at 21–41 dB. As a convolution between Permutes every blob has the batch-less layout the axes assume."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    ranks = {name: len(dims) for name, dims in _known_dims(model).items()}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    rewritten = 0
    for node in list(graph.node):
        weight = constants.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or weight.ndim != 2 or ranks.get(node.input[0]) != 4:
            continue
        bias, output, replaced = _linear_bias(node, consumers, constants, weight.shape[1])
        stem = node.name or node.output[0]
        names = {key: f"{stem}_{key}" for key in ("nchw", "conv", "w", "b")}
        graph.initializer.append(numpy_helper.from_array(
            np.ascontiguousarray(weight.T[:, :, None, None]).astype(weight.dtype), names["w"]))
        conv_inputs = [names["nchw"], names["w"]]
        if bias is not None:
            graph.initializer.append(numpy_helper.from_array(bias.astype(weight.dtype), names["b"]))
            conv_inputs.append(names["b"])
        at = list(graph.node).index(node)
        graph.node.insert(at, helper.make_node("Transpose", [node.input[0]], [names["nchw"]], perm=[0, 3, 1, 2],
                                               name=f"{stem}_to_nchw"))
        graph.node.insert(at + 1, helper.make_node("Conv", conv_inputs, [names["conv"]], kernel_shape=[1, 1],
                                                   name=f"{stem}_as_conv"))
        graph.node.insert(at + 2, helper.make_node("Transpose", [names["conv"]], [output], perm=[0, 2, 3, 1],
                                                   name=f"{stem}_to_nhwc"))
        for old in replaced:
            graph.node.remove(old)
        rewritten += 1
    if rewritten:
        _drop_dead_nodes(graph)
        onnx.save(model, str(onnx_path))
    return rewritten


def _linear_bias(matmul: Any, consumers: dict, constants: dict, width: int) -> tuple[Any, str, list[Any]]:
    """The constant bias a lone Add puts on the MatMul's output (None if there is none), the name the rewritten
    Linear must produce, and the nodes it replaces."""
    users = consumers.get(matmul.output[0], [])
    if len(users) == 1 and users[0].op_type == "Add":
        add = users[0]
        other = add.input[1] if add.input[0] == matmul.output[0] else add.input[0]
        bias = constants.get(other)
        if bias is not None and bias.shape == (width,):
            return bias, add.output[0], [matmul, add]
    return None, matmul.output[0], [matmul]


def _known_dims(model: Any) -> dict[str, tuple[int | None, ...]]:
    """The dims (None where dynamic) of every graph value shape inference gives a shape; one inference per rewrite."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model).graph
    known = {}
    for value in [*inferred.value_info, *inferred.input, *inferred.output]:
        if value.type.tensor_type.HasField("shape"):
            dims = value.type.tensor_type.shape.dim
            known[value.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    return known


def _static_lengths(model: Any) -> dict[str, int]:
    """The length of every value (or initializer) known to be 1-D and static."""
    lengths = {name: dims[0] for name, dims in _known_dims(model).items() if len(dims) == 1 and dims[0] is not None}
    lengths.update({i.name: i.dims[0] for i in model.graph.initializer if len(i.dims) == 1})
    return lengths


def scatter_add_as_matmul(onnx_path: Path) -> int:
    """Rewrite, in place, each gather → weight → scatter-add into zeros with constant indices as one matrix product.

    ncnn has no ScatterND layer. A ScatterND (reduction "add") into a zero tensor whose updates are
    `Gather(table, rows) * weights`, with rows, weights and indices constant, is the product D @ table with the
    constant D[cell, row] = the summed weights of the pairs (row → cell): exact, and ncnn runs it as a MatMul. This
    is the mono3d lift's `rows` form (edgekd.tasks.mono3d.lift), made the `dense` form for ncnn only. Returns how
    many scatters were rewritten; other ScatterND nodes are left for `_check_supported` to refuse.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    constants.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                      if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    producer = {out: node for node in graph.node for out in node.output}
    dims = _known_dims(model)
    rewritten = 0
    for node in list(graph.node):
        plan = _scatter_plan(node, producer, constants, dims)
        if plan is None:
            continue
        table, dense = plan
        name = f"{node.name or node.output[0]}_as_matmul"
        graph.initializer.append(numpy_helper.from_array(dense, f"{name}_weights"))
        graph.node.insert(list(graph.node).index(node),
                          helper.make_node("MatMul", [f"{name}_weights", table], [node.output[0]], name=name))
        graph.node.remove(node)
        rewritten += 1
    if rewritten:
        _drop_dead_nodes(graph)
        onnx.save(model, str(onnx_path))
    return rewritten


def _scatter_plan(node: Any, producer: dict, constants: dict, dims: dict) -> tuple[str, np.ndarray] | None:
    """(table input, dense weights) when `node` is a constant-index scatter-add of weighted gathered rows."""
    reduction = next((a.s for a in node.attribute if a.name == "reduction"), b"none")
    if node.op_type != "ScatterND" or reduction != b"add" or node.input[1] not in constants:
        return None
    zeros, mul = producer.get(node.input[0]), producer.get(node.input[2])
    zero_constant = constants.get(node.input[0])
    if zero_constant is not None:  # a static shape: the exporter stored the zeros themselves
        if np.any(zero_constant):
            return None
    elif zeros is None or zeros.op_type != "ConstantOfShape" or _fill_value(zeros) != 0:
        return None
    if mul is None or mul.op_type != "Mul":
        return None
    gather_name, weights_name = ((mul.input[0], mul.input[1]) if mul.input[1] in constants
                                 else (mul.input[1], mul.input[0]))
    gather = producer.get(gather_name)
    if weights_name not in constants or gather is None or gather.op_type != "Gather" \
            or gather.input[1] not in constants or any(a.name == "axis" and a.i != 0 for a in gather.attribute):
        return None
    table = gather.input[0]
    cells_index = constants[node.input[1]].reshape(-1).astype(np.int64)
    rows_index = constants[gather.input[1]].reshape(-1).astype(np.int64)
    weights = constants[weights_name]
    # one weight per gathered row ((N,) would scale columns), a 2-D table (a 3-D one would batch the MatMul)
    table_dims = dims.get(table, ())
    if len(table_dims) != 2 or table_dims[0] is None or weights.ndim != 2 or weights.shape[1] != 1 \
            or not (len(cells_index) == len(rows_index) == len(weights)):
        return None
    table_rows = table_dims[0]
    weights = weights.reshape(-1).astype(np.float32)
    if len(rows_index) and (rows_index.min() < 0 or rows_index.max() >= table_rows or cells_index.min() < 0):
        return None
    cells = ((dims.get(node.output[0]) or (None,))[0] or (zero_constant.shape[0] if zero_constant is not None else 0)
             or _cells_hint(constants, producer, zeros))
    if not cells or (len(cells_index) and int(cells_index.max()) >= cells):
        return None
    dense = np.zeros((cells, table_rows), np.float32)
    np.add.at(dense, (cells_index, rows_index), weights)
    return table, dense


def _fill_value(node: Any) -> float | None:
    from onnx import numpy_helper

    value = next((a.t for a in node.attribute if a.name == "value"), None)
    return 0.0 if value is None else float(numpy_helper.to_array(value).reshape(-1)[0])


def _cells_hint(constants: dict, producer: dict, zeros: Any) -> int:
    """The zero tensor's first dimension (the number of cells) when its shape's first entry is a constant: the shape
    itself, or a Concat of a constant first part and the batch-dependent rest (the dynamo exporter's form)."""
    shape = constants.get(zeros.input[0])
    concat = producer.get(zeros.input[0])
    if shape is None and concat is not None and concat.op_type == "Concat":
        shape = constants.get(concat.input[0])
    return int(shape.reshape(-1)[0]) if shape is not None and shape.size else 0


def _drop_dead_nodes(graph: Any) -> None:
    """Remove nodes none of whose outputs is used (the zero tensor's shape computation, after a rewrite), then the
    initializers nothing reads."""
    while True:
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [node for node in graph.node if not any(out in used for out in node.output)]
        if not dead:
            for initializer in [i for i in graph.initializer if i.name not in used]:
                graph.initializer.remove(initializer)
            return
        for node in dead:
            graph.node.remove(node)
