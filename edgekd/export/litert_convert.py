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
    return program.module(), tuple(example)


def _int8(module, example: tuple, calibration_path: str):
    """PT2E with LiteRT's quantizer: symmetric per-channel int8 weights, static int8 activations, ranges
    calibrated on the array one example-sized batch at a time."""
    import numpy as np
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    prepared = prepare_pt2e(torch.export.export(module, example).module(), quantizer)
    data = np.load(calibration_path, allow_pickle=False).astype(np.float32)
    batch = example[0].shape[0]
    for start in range(0, len(data) - batch + 1, batch):
        prepared(torch.from_numpy(data[start:start + batch]))
    return convert_pt2e(prepared, fold_quantize=False), QuantConfig(pt2e_quantizer=quantizer)


def float_boundaries(model_bytes: bytes) -> tuple[bytes, int]:
    """The same model with float32 inputs and outputs: a QUANTIZE op after each int8 input and a DEQUANTIZE op
    before each int8 output, with the int8 tensors' own scale and zero point, so the arithmetic inside is
    unchanged. (litert-torch fuses the boundary quantize ops of a PT2E graph into int8 inputs and outputs.)
    Returns the bytes and how many boundaries were changed."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    graph = model.subgraphs[0]
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


def _int8_twin(model, graph, index: int) -> int:
    """Add an int8 copy of tensor `index` (its shape and quantization) and make `index` itself float32."""
    import copy

    from ai_edge_litert import schema_py_generated as schema

    boundary = graph.tensors[index]
    twin = copy.deepcopy(boundary)
    twin.name = f"{boundary.name}_int8"
    model.buffers.append(schema.BufferT())
    twin.buffer = len(model.buffers) - 1
    graph.tensors.append(twin)
    boundary.type, boundary.quantization = schema.TensorType.FLOAT32, None
    return len(graph.tensors) - 1


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
