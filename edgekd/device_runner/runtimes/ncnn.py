"""An ncnn .param/.bin pair through ncnn's Python binding, one sample per call (ncnn blobs have no batch).

The helpers below are here because this file runs on the device without edgekd; edgekd.export.backends.ncnn
imports them, so the host and the device read a .param the same way.
"""

from __future__ import annotations

import os

from ..common import RunnerError, import_runtime, random_input, read_text, resolve_shape

PACKAGES = ("ncnn",)


class Model:
    name = "ncnn"

    def __init__(self, path: str, threads: int, shape: list[int] | None, precision: str) -> None:
        ncnn, np = import_runtime("ncnn"), import_runtime("numpy")
        self.net = ncnn.Net()
        self.net.opt.num_threads = threads
        if precision == "fp32":  # as edgekd's ncnn sessions
            pin_ncnn_fp32(self.net.opt)
        weights = os.path.splitext(path)[0] + ".bin"
        if self.net.load_param(path) != 0 or self.net.load_model(weights) != 0:
            raise RunnerError("runtime", f"ncnn cannot load {os.path.basename(path)} with {os.path.basename(weights)}")
        names = list(self.net.input_names())
        if len(names) != 1:
            raise RunnerError("input", f"profiling supports one input, the model has {len(names)}")
        self.input = names[0]
        self.outputs = ncnn_output_order(self.net.output_names())
        self.shape = resolve_shape(ncnn_input_shape(read_text(path)), shape)
        if self.shape[0] != 1:
            raise RunnerError("input", f"ncnn runs one sample at a time: the batch must be 1, got {self.shape[0]}")
        self.feed = ncnn.Mat(np.ascontiguousarray(random_input(self.shape[1:])))
        self.precision = precision
        self.settings = {"threads": threads, "version": ncnn.__version__,
                         "inference_precision": "f32" if precision == "fp32" else "ncnn default"}

    def run(self) -> list:
        np = import_runtime("numpy")
        extractor = self.net.create_extractor()
        extractor.input(self.input, self.feed)
        return [np.array(extractor.extract(name)[1])[None] for name in self.outputs]


def pin_ncnn_fp32(opt) -> None:
    """ncnn's default keeps activations in fp16 where the CPU can: pin fp32 storage and arithmetic throughout."""
    for option in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(opt, option, False)


def ncnn_output_order(names) -> list:
    """pnnx names outputs out0, out1, ... in the ONNX graph's order; keep that order (not the string order)."""
    return sorted(names, key=lambda n: (int(n[3:]), n) if n.startswith("out") and n[3:].isdigit() else (1 << 30, n))


def ncnn_input_shape(param: str) -> list:
    """[1, c, h, w] from a .param's Input layer `0=w 1=h 2=c` (edgekd writes them); unknown sizes (None) when
    absent: an ncnn blob has no batch dimension, so the batch is 1."""
    for line in param.splitlines():
        fields = line.split()
        if fields and fields[0] == "Input":
            values = dict(field.split("=", 1) for field in fields if "=" in field)
            if all(key in values for key in ("0", "1", "2")):
                return [1, int(values["2"]), int(values["1"]), int(values["0"])]
    return [1, None, None, None]
