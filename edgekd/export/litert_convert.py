"""The LiteRT converter, run as a script in the converter's own Python environment (edgekd.export.litert_env).

    python litert_convert.py PROGRAM.pt2 OUT.tflite [--calibration CALIB.npy]

It imports only torch, numpy and the LiteRT packages, never edgekd: litert-torch's dependencies (jax, transformers,
xdsl's pinned typing-extensions) cannot share edgekd's environment without downgrading what edgekd needs, so
edgekd writes a `torch.export` program here and this script turns it into a .tflite in another process
(docs/decisions.md, "LiteRT: the converter in an environment of its own").

With --calibration the file is int8: PT2E with LiteRT's quantizer (symmetric per-channel int8 weights, static
int8 activations), calibrated on the array; litert-torch fuses the boundary quantize ops into int8 inputs and
outputs (its 0.10 converter has no flag against that), so this script puts float32 boundaries back: a QUANTIZE
op after each input and a DEQUANTIZE op before each output. ai-edge-quantizer, which keeps float boundaries
itself, was tried first and lost 25-30 dB of SNR against PT2E on the same model (docs/decisions.md).
The last line on stdout is a JSON object describing the file (or, on failure, the exit code is 1 and the last
line on stderr says why).
"""

from __future__ import annotations

import argparse
import json
import sys


def _load(program_path: str):
    import torch

    program = torch.export.load(program_path)
    example = program.example_inputs[0]
    module = program.module()
    fold_constant_expands(module)
    scatter_add_as_matmul(module)
    return module, tuple(example)


def fold_constant_expands(module) -> int:
    """Replace `expand` of a constant buffer to a static shape by the expanded constant itself.

    litert-torch 0.10's layout pass moves the expand's target shape to NHWC but leaves the constant it broadcasts in
    NCHW (mono3d's row-coordinate channel: (1, 1, 24, 1) broadcast to (1, 24, 80, 1)), so the file fails to load.
    A materialised constant carries no broadcast to get wrong; it costs the expanded size (a few KB). Exact."""
    import torch

    graph, folded = module.graph, 0
    for node in list(graph.nodes):
        source = node.args[0] if node.args else None
        if node.op != "call_function" or node.target != torch.ops.aten.expand.default \
                or getattr(source, "op", None) != "get_attr":
            continue
        shape = node.args[1]
        if not all(isinstance(d, int) for d in shape):
            continue
        value = _attribute(module, source.target).expand(*shape).contiguous()
        name = f"_edgekd_expanded_{folded}"
        module.register_buffer(name, value)
        with graph.inserting_before(node):
            replacement = graph.get_attr(name)
        node.replace_all_uses_with(replacement)
        graph.erase_node(node)
        folded += 1
    if folded:
        graph.eliminate_dead_code()
        module.recompile()
    return folded


def scatter_add_as_matmul(module) -> int:
    """Rewrite `index_add(zeros, 0, cells, index_select(table, 0, rows) * weights)` with constant cells, rows and
    weights as `D @ table`, D[cell, row] the summed weights of the pairs (row → cell). Exact.

    LiteRT's runtime rejects the STABLEHLO_SCATTER that litert-torch lowers `index_add` to ("only update, add,
    multiply, maximum and minimum"); this is the mono3d lift's `rows` form made its `dense` form, as edgekd's ncnn
    backend does on the ONNX graph (edgekd.export.ncnn_onnx.scatter_add_as_matmul)."""
    import torch

    aten, graph, rewritten = torch.ops.aten, module.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target != aten.index_add.default or node.args[1] != 0 \
                or node.kwargs.get("alpha", 1) != 1:
            continue
        zeros, cells, mul = node.args[0], node.args[2], node.args[3]
        if getattr(zeros, "target", None) not in (aten.new_zeros.default, aten.zeros.default) \
                or getattr(cells, "op", None) != "get_attr" or getattr(mul, "target", None) != aten.mul.Tensor:
            continue
        picked, weights = mul.args if getattr(mul.args[1], "op", None) == "get_attr" else mul.args[::-1]
        if getattr(picked, "target", None) != aten.index_select.default or picked.args[1] != 0 \
                or getattr(picked.args[2], "op", None) != "get_attr" or getattr(weights, "op", None) != "get_attr":
            continue
        table, out = picked.args[0], node.meta.get("val")
        table_val = table.meta.get("val") if hasattr(table, "meta") else None
        if out is None or table_val is None or out.dim() != 2 or table_val.dim() != 2:
            continue
        cell_index = _attribute(module, cells.target).reshape(-1).long()
        row_index = _attribute(module, picked.args[2].target).reshape(-1).long()
        weight = _attribute(module, weights.target)
        # one weight per gathered row: (N, 1); an (N,) or (1, C) weight scales columns
        if weight.dim() != 2 or weight.shape[1] != 1 or not (len(cell_index) == len(row_index) == len(weight)):
            continue
        weight = weight.reshape(-1).float()
        if len(row_index) and (int(row_index.min()) < 0 or int(row_index.max()) >= table_val.shape[0]
                               or int(cell_index.min()) < 0 or int(cell_index.max()) >= out.shape[0]):
            continue
        dense = torch.zeros(int(out.shape[0]), int(table_val.shape[0]))
        dense.index_put_((cell_index, row_index), weight, accumulate=True)
        name = f"_edgekd_scatter_dense_{rewritten}"
        module.register_buffer(name, dense)
        with graph.inserting_before(node):
            product = graph.call_function(aten.mm.default, (graph.get_attr(name), table))
        product.meta = dict(node.meta)
        node.replace_all_uses_with(product)
        graph.erase_node(node)
        rewritten += 1
    if rewritten:
        graph.eliminate_dead_code()
        module.recompile()
    return rewritten


def _attribute(module, dotted: str):
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


def _int8(module, example: tuple, calibration_path: str):
    """PT2E with LiteRT's quantizer: symmetric per-channel int8 weights, static int8 activations, ranges
    calibrated on the array one example-sized batch at a time."""
    import numpy as np
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    graph_module = torch.export.export(module, example).module()
    _leave_integer_ops_unquantized(graph_module)
    prepared = prepare_pt2e(graph_module, quantizer)
    data = np.load(calibration_path, allow_pickle=False).astype(np.float32)
    batch = example[0].shape[0]
    for start in range(0, len(data) - batch + 1, batch):
        prepared(torch.from_numpy(data[start:start + batch]))
    return convert_pt2e(prepared, fold_quantize=False), QuantConfig(pt2e_quantizer=quantizer)


def _leave_integer_ops_unquantized(graph_module) -> int:
    """Mark every op with an integer tensor in or out (an index, an anchor grid from `arange`) as annotated with
    nothing, and make integer scalars of float ops floats: LiteRT's quantizer would otherwise put an observer on
    an int64 tensor (for `x * stride` it turns the scalar into an int64 constant), which PT2E's histogram observer
    cannot take (the layout student's box decoding). Integer tensors are not quantized anyway."""
    import torch
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    def integer(value) -> bool:
        tensor = value.meta.get("val")
        if value.op == "get_attr":  # constants (a stride table) carry no metadata: look at the tensor itself
            tensor = _attribute(graph_module, value.target)
        return isinstance(tensor, torch.Tensor) and not (tensor.is_floating_point() or tensor.is_complex())

    aten = torch.ops.aten
    arithmetic = {aten.mul.Tensor, aten.add.Tensor, aten.sub.Tensor, aten.div.Tensor}
    marked = 0
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        if integer(node) or any(integer(arg) for arg in node.all_input_nodes):
            node.meta["quantization_annotation"] = QuantizationAnnotation(_annotated=True)
            marked += 1
        elif node.target in arithmetic and isinstance(node.meta.get("val"), torch.Tensor) \
                and node.meta["val"].is_floating_point() and any(type(a) is int for a in node.args):
            # `x * 8` on a float x: the quantizer turns the scalar into an int64 constant and observes it
            node.args = tuple(float(a) if type(a) is int else a for a in node.args)
    graph_module.recompile()
    return marked


def float_boundaries(model_bytes: bytes) -> tuple[bytes, int]:
    """The same model with float32 inputs and outputs: a QUANTIZE op after each int8 input and a DEQUANTIZE op
    before each int8 output, with the int8 tensors' own scale and zero point, so the arithmetic inside is
    unchanged. (litert-torch fuses the boundary quantize ops of a PT2E graph into int8 inputs and outputs.)
    Also runs int8 softmaxes in float (`_float_softmax`). Returns the bytes and how many boundaries were
    changed."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    graph = model.subgraphs[0]
    _float_softmax(model, graph)
    changed = 0
    for position, index in enumerate(list(graph.inputs)):
        if graph.tensors[index].type == schema.TensorType.INT8:
            inner = _int8_twin(model, graph, index)
            for op in graph.operators:
                op.inputs = [inner if i == index else i for i in op.inputs]
            graph.operators.insert(0, _op(model, schema.BuiltinOperator.QUANTIZE, [index], [inner]))
            changed += 1
    for index in list(graph.outputs):
        if graph.tensors[index].type == schema.TensorType.INT8:
            inner = _int8_twin(model, graph, index)
            for op in graph.operators:
                op.outputs = [inner if i == index else i for i in op.outputs]
                op.inputs = [inner if i == index else i for i in op.inputs]
            graph.operators.append(_op(model, schema.BuiltinOperator.DEQUANTIZE, [inner], [index]))
            changed += 1
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), changed


def _float_softmax(model, graph) -> int:
    """Run each int8 SOFTMAX in float32 between a DEQUANTIZE and a QUANTIZE, keeping PT2E's calibrated output range.

    LiteRT's int8 softmax kernel only takes the output range scale 1/256, zero point -128, and refuses to load the
    file otherwise. The mono3d student's depth softmax shares its range with the slice after it, so PT2E calibrated
    another one (scale 3.2e-4: most of its 33 probabilities are below 1/256). PT2E itself computes softmax in float
    on dequantized inputs, so this is its arithmetic. Returns how many softmaxes were changed."""
    from ai_edge_litert import schema_py_generated as schema

    changed = 0
    for op in list(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) != schema.BuiltinOperator.SOFTMAX:
            continue
        source, target = op.inputs[0], op.outputs[0]
        if graph.tensors[source].type != schema.TensorType.INT8 or graph.tensors[target].type != schema.TensorType.INT8:
            continue
        float_in, float_out = _float_copy(model, graph, source), _float_copy(model, graph, target)
        position = graph.operators.index(op)
        graph.operators.insert(position, _op(model, schema.BuiltinOperator.DEQUANTIZE, [source], [float_in]))
        op.inputs[0], op.outputs[0] = float_in, float_out
        graph.operators.insert(position + 2, _op(model, schema.BuiltinOperator.QUANTIZE, [float_out], [target]))
        changed += 1
    return changed


def _float_copy(model, graph, index: int) -> int:
    """A new float32 tensor of tensor `index`'s shape, without quantization."""
    import copy

    from ai_edge_litert import schema_py_generated as schema

    twin = copy.deepcopy(graph.tensors[index])
    twin.name = f"{_text(graph.tensors[index].name)}_float"
    twin.type, twin.quantization = schema.TensorType.FLOAT32, None
    model.buffers.append(schema.BufferT())
    twin.buffer = len(model.buffers) - 1
    graph.tensors.append(twin)
    return len(graph.tensors) - 1


def _int8_twin(model, graph, index: int) -> int:
    """Add an int8 copy of tensor `index` (its shape and quantization) and make `index` itself float32."""
    import copy

    from ai_edge_litert import schema_py_generated as schema

    boundary = graph.tensors[index]
    twin = copy.deepcopy(boundary)
    twin.name = f"{_text(boundary.name)}_int8"
    model.buffers.append(schema.BufferT())
    twin.buffer = len(model.buffers) - 1
    graph.tensors.append(twin)
    boundary.type, boundary.quantization = schema.TensorType.FLOAT32, None
    return len(graph.tensors) - 1


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def _op(model, builtin: int, inputs: list[int], outputs: list[int]):
    from ai_edge_litert import schema_py_generated as schema

    codes = [i for i, code in enumerate(model.operatorCodes)
             if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin]
    if not codes:
        model.operatorCodes.append(schema.OperatorCodeT(deprecatedBuiltinCode=min(builtin, 127), builtinCode=builtin,
                                                        version=2))  # version 2: the int8 kernels
        codes = [len(model.operatorCodes) - 1]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = codes[0], inputs, outputs
    return op


def convert(program_path: str, out_path: str, calibration_path: str | None) -> dict:
    import litert_torch
    import torch

    module, example = _load(program_path)
    quant_config = None
    if calibration_path:
        module, quant_config = _int8(module, example, calibration_path)
    with torch.no_grad():
        model = litert_torch.convert(module, example, quant_config=quant_config)
    facts = {"litert_torch": litert_torch.__version__, "int8": bool(calibration_path)}
    model.export(out_path)
    if calibration_path:
        with open(out_path, "rb") as handle:
            data, facts["float_boundaries"] = float_boundaries(handle.read())
        with open(out_path, "wb") as handle:
            handle.write(data)
    return facts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("program")
    parser.add_argument("out")
    parser.add_argument("--calibration")
    args = parser.parse_args(argv)
    try:
        facts = convert(args.program, args.out, args.calibration)
    except Exception as error:  # the converter raises many types; the parent reports the last line
        message = str(error).strip().splitlines()
        print(f"{type(error).__name__}: {message[0] if message else ''}", file=sys.stderr)
        return 1
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
