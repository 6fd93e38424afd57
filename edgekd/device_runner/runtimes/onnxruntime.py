"""ONNX Runtime's CPU execution provider, sequential, every graph optimisation on."""

from __future__ import annotations

from ..common import RunnerError, import_runtime, random_input, resolve_shape

PACKAGES = ("onnxruntime", "onnxruntime-gpu")


class Model:
    name = "onnxruntime"

    def __init__(self, path: str, threads: int, shape: list[int] | None, precision: str) -> None:
        ort, np = import_runtime("onnxruntime"), import_runtime("numpy")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise RunnerError("input", f"profiling supports one input, the model has {len(inputs)}")
        dtypes = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
        if inputs[0].type not in dtypes:
            raise RunnerError("input", f"input type {inputs[0].type} is not supported for profiling")
        self.shape = resolve_shape(list(inputs[0].shape), shape)
        self.feed = {inputs[0].name: random_input(self.shape, dtypes[inputs[0].type])}
        self.precision = self.session.get_modelmeta().custom_metadata_map.get("edgekd.precision", "unknown")
        self.settings = {"provider": "CPUExecutionProvider", "threads": threads, "inference_precision": "as stored",
                         "version": ort.__version__}

    def run(self) -> list:
        return self.session.run(None, self.feed)
