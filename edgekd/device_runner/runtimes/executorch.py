"""An ExecuTorch program's `forward` (XNNPACK delegate); its input shape is fixed in the program."""

from __future__ import annotations

from importlib import metadata

from ..common import RunnerError, import_runtime, random_input, resolve_shape

PACKAGES = ("executorch",)


class Model:
    name = "executorch"

    def __init__(self, path: str, threads: int, shape: list[int] | None, precision: str) -> None:
        torch = import_runtime("torch")
        runtime = import_runtime("executorch.runtime")
        portable = import_runtime("executorch.extension.pybindings.portable_lib")
        if threads:
            portable._unsafe_reset_threadpool(threads)  # XNNPACK's pool is process-wide
        self.method = runtime.Runtime.get().load_program(path).load_method("forward")
        meta = self.method.metadata
        if meta.num_inputs() != 1:
            raise RunnerError("input", f"profiling supports one input, the program has {meta.num_inputs()}")
        self.shape = resolve_shape(list(meta.input_tensor_meta(0).sizes()), shape)
        self.feed = [torch.from_numpy(random_input(self.shape))]
        self.precision = precision
        self.settings = {"threads": portable._threadpool_get_thread_count(), "delegate": "XNNPACK",
                         "version": metadata.version("executorch"), "inference_precision": "as stored"}

    def run(self) -> list:
        return [output.numpy() for output in self.method.execute(self.feed)]
