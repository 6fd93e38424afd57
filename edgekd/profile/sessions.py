"""One interface over the runtimes this host can execute: load a file, feed an array, get the outputs.

Parity checks and the local profiler both go through here, so a number in the report was produced by
exactly the session settings the parity check used.

OpenVINO's CPU plugin picks its own inference precision (bf16 on CPUs with AMX or AVX-512 BF16, f16 on ARM),
which would silently turn an "fp32" measurement into a bf16 one. `arithmetic` says which execution a session is:
"timed" (the default: fp32 and int8 files compiled with INFERENCE_PRECISION_HINT=f32, fp16 files in the plugin's
own choice — what the profiler times and parity checks), "f32" (always pinned) or "default" (no hint: what a user
who loads the file with OpenVINO's defaults gets). The precision the plugin used is in `settings()`, with the
thread count and the runtime's version, and is recorded with every latency and every parity result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from edgekd.errors import EdgekdError

ARITHMETIC = ("timed", "f32", "default")
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class Session:
    """A loaded model: `run(array) -> [outputs]`, its declared input shape and what it was built with."""

    runtime: str = ""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def input_shape(self) -> list[int | str | None]:
        raise NotImplementedError

    @property
    def input_dtype(self) -> Any:
        return np.float32

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def metadata(self) -> dict[str, str]:
        """edgekd facts stamped into the file (precision), when the format carries them."""
        return {}

    def settings(self) -> dict[str, Any]:
        """Runtime settings in effect, for the record."""
        return {}


def run_in_fixed_batches(array: np.ndarray, batch: int, call: Any) -> list[np.ndarray]:
    """Outputs of a file whose batch is fixed (ExecuTorch, LiteRT; ncnn runs one sample): `call` on consecutive
    `batch`-sized float32 chunks of `array`, each output joined along the batch axis."""
    per_call = [call(np.ascontiguousarray(array[start:start + batch], dtype=np.float32))
                for start in range(0, len(array), batch)]
    return [np.concatenate(outputs) for outputs in zip(*per_call)]


class OrtSession(Session):
    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        super().__init__(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for unreadable or invalid graphs
            raise EdgekdError(f"{path.name}: ONNX Runtime cannot load it: {str(exc).splitlines()[0]}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise EdgekdError(f"{path.name}: one input is supported, the model has {len(inputs)}")
        self._input = inputs[0]
        if self._input.type not in _ORT_DTYPES:
            raise EdgekdError(f"{path.name}: input type {self._input.type} is not supported")
        self.threads = threads

    @property
    def input_shape(self) -> list[int | str | None]:
        return list(self._input.shape)

    @property
    def input_dtype(self) -> Any:
        return _ORT_DTYPES[self._input.type]

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self._input.name: array})

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def settings(self) -> dict[str, Any]:
        import onnxruntime as ort

        # ONNX Runtime's CPU provider has no precision hint: it computes in the file's types (int8 kernels where
        # the file's Q/DQ pairs fuse, float elsewhere).
        return {"provider": "CPUExecutionProvider", "threads": self.threads, "inference_precision": "as stored",
                "version": ort.__version__}


class OpenVinoSession(Session):
    runtime = "openvino"

    def __init__(self, path: Path, threads: int, precision: str, static_shape: Optional[Sequence[int]] = None,
                 arithmetic: str = "timed") -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise EdgekdError("the openvino runtime is not installed: pip install 'edgekd[openvino]'") from exc
        super().__init__(path)
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if arithmetic not in ARITHMETIC:
            raise EdgekdError(f"arithmetic must be one of {', '.join(ARITHMETIC)}, got {arithmetic!r}")
        if arithmetic == "f32" or arithmetic == "timed" and precision in ("fp32", "int8"):
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            core = ov.Core()
            model = core.read_model(str(path))
            if static_shape is not None and len(model.inputs) == 1:
                _fix_dynamic_dims(ov, model, static_shape)
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line text
            raise EdgekdError(f"{path.name}: OpenVINO cannot load it: {str(exc).splitlines()[0]}") from exc
        if len(self.compiled.inputs) != 1:
            raise EdgekdError(f"{path.name}: one input is supported, the model has {len(self.compiled.inputs)}")
        self.request = self.compiled.create_infer_request()
        self._bound: Any = None
        self.threads = threads
        self.precision = precision

    @property
    def input_shape(self) -> list[int | str | None]:
        shape = self.compiled.inputs[0].get_partial_shape()
        return [dim.get_length() if dim.is_static else None for dim in shape]

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        if array is not self._bound:
            # Bind the array once (shared memory); timing loops feed the same array, and re-wrapping it on
            # every call would be charged to the model.
            import openvino as ov

            self.request.set_input_tensor(ov.Tensor(np.ascontiguousarray(array), shared_memory=True))
            self._bound = array
        self.request.infer()
        return [np.array(self.request.get_output_tensor(i).data) for i in range(len(self.compiled.outputs))]

    def metadata(self) -> dict[str, str]:
        return {"edgekd.precision": self.precision}

    def settings(self) -> dict[str, Any]:
        import openvino as ov

        return {
            "device": "CPU",
            "threads": self.threads,
            "inference_precision": _type_name(self.compiled.get_property("INFERENCE_PRECISION_HINT")),
            "version": ov.get_version(),
        }


def _fix_dynamic_dims(ov: Any, model: Any, shape: Sequence[int]) -> None:
    """Set the input's dynamic dimensions (only those) to `shape`.

    A dynamic dimension makes OpenVINO's CPU plugin infer shapes on every call, which costs a small model a
    large share of its latency; a device runs one fixed shape, so that is the one to time. Static dimensions
    are kept, so a wrong requested shape is still caught by the caller's shape check.
    """
    declared = model.inputs[0].get_partial_shape()
    if declared.rank.is_dynamic or len(declared) != len(shape) or declared.is_static:
        return
    dims = [dim.get_length() if dim.is_static else int(size) for dim, size in zip(declared, shape)]
    model.reshape({model.inputs[0]: ov.PartialShape(dims)})


def _type_name(element_type: Any) -> str:
    """'f32' / 'bf16' / 'f16' rather than the repr of an openvino Type."""
    name = getattr(element_type, "get_type_name", None)
    return name() if callable(name) else str(element_type)


def open_session(path: str | Path, runtime: str, *, threads: int = 2, precision: str = "fp32",
                 static_shape: Optional[Sequence[int]] = None, arithmetic: str = "timed") -> Session:
    """Load `path` with `runtime` on this host's CPU; EdgekdError for a missing file or a runtime that cannot
    run here. The backend that owns `runtime` opens the session (edgekd.export.base.Exporter.open_session).

    `static_shape` fixes a dynamic input to the shape that will be run (OpenVINO), as profiling does.
    `arithmetic`: "timed" (what the profiler times), "f32" (pinned) or "default" (the runtime's own choice).
    """
    from edgekd.export import backend_for_runtime, local_runtimes

    path = Path(path)
    if not path.is_file():
        raise EdgekdError(f"model file not found: {path}")
    backend = backend_for_runtime(runtime)
    if not backend.runs_here():
        local = ", ".join(local_runtimes()) or "none"
        raise EdgekdError(f"runtime '{runtime}' cannot run on this host (local runtimes: {local})")
    return backend.open_session(path, threads=threads, precision=precision, static_shape=static_shape,
                                arithmetic=arithmetic)


def runtime_for(path: str | Path) -> str:
    """The runtime that executes a file on this host, by its format."""
    from edgekd.export import local_runtimes, runtime_for_file

    runtime = runtime_for_file(path)
    if runtime not in local_runtimes():
        raise EdgekdError(f"{Path(path).name}: {runtime} files do not run on this host "
                          f"(local runtimes: {', '.join(local_runtimes())})")
    return runtime
