"""A .tflite's default signature through ai-edge-litert's interpreter (XNNPACK on CPU)."""

from __future__ import annotations

from importlib import metadata

from ..common import RunnerError, import_runtime, random_input, resolve_shape

PACKAGES = ("ai-edge-litert",)


class Model:
    name = "tflite"

    def __init__(self, path: str, threads: int, shape: list[int] | None, precision: str) -> None:
        litert = import_runtime("ai_edge_litert.interpreter")
        interpreter = litert.Interpreter(model_path=path, num_threads=threads)
        signatures = interpreter.get_signature_list()
        if len(signatures) != 1:
            raise RunnerError("input", f"profiling supports one signature, the file has {len(signatures)}")
        key, signature = next(iter(signatures.items()))
        if len(signature["inputs"]) != 1:
            raise RunnerError("input", f"profiling supports one input, the file has {len(signature['inputs'])}")
        self.runner = interpreter.get_signature_runner(key)
        name = signature["inputs"][0]
        self.shape = resolve_shape([int(d) for d in self.runner.get_input_details()[name]["shape"]], shape)
        self.feed = {name: random_input(self.shape)}
        self.outputs = tflite_output_order(signature["outputs"])
        self.precision = precision
        self.settings = {"threads": threads, "delegate": "XNNPACK (default)", "inference_precision": "as stored",
                         "version": metadata.version("ai-edge-litert")}

    def run(self) -> list:
        result = self.runner(**self.feed)
        return [result[name] for name in self.outputs]


def tflite_output_order(names) -> list:
    """litert-torch names a signature's outputs output_0, output_1, ... in the module's order; keep that order."""
    def key(name):
        tail = name.rsplit("_", 1)[-1]
        return (int(tail), name) if tail.isdigit() else (1 << 30, name)
    return sorted(names, key=key)
