"""ExecuTorch (.pte) with the XNNPACK delegate: PyTorch's own on-device runtime, from `torch.export`.

Unlike the other backends, this one does not start from the ONNX file: ExecuTorch programs are made from a
`torch.export` graph of the PyTorch module itself, which is what `to_edge_transform_and_lower` lowers to XNNPACK.
Parity is still against the same PyTorch module, on the same inputs, with the same budgets.

fp32, and int8 through PT2E with XNNPACK's quantizer: the QAT model's fine-tuned weights are carried over (the
float module under NNCF's quantizers) and PT2E calibrates its own ranges on the calibration inputs, so the file
is judged, like every int8 file, against the quantized model on the recipe's int8 budget (docs/decisions.md).
fp16 is refused because XNNPACK runs fp16 only on ARM, where it cannot be checked here.

A program has a static input shape (the example's, batch 1 at export); its input and output sizes are in the
program's metadata, which the session and `declared_input` read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgekd.artifacts import atomic_write_bytes, sha256_file
from edgekd.errors import EdgekdError, first_line
from edgekd.export.base import Exporter, ExportResult
from edgekd.profile.sessions import Session, run_in_fixed_batches
from edgekd.quant.nncf_quant import float_twin


class ExecuTorchExporter(Exporter):
    name = "executorch"
    listing_order = 50
    runtime = "executorch"
    precisions = ("fp32", "int8")
    refused = {"fp16": "XNNPACK computes fp16 only on ARM, where edgekd cannot check the file here"}
    calibrates_int8 = True
    default_precisions = ()  # opt-in: a heavy optional extra (docs/decisions.md, "ExecuTorch")
    file_suffix = ".pte"
    requires = ("executorch",)
    extra_name = "executorch"
    doctor_modules = ("executorch",)
    remote_runner = "executorch"
    host_cpu = True
    reads_suffixes = (".pte",)

    def open_session(self, path, *, threads, precision, static_shape=None, arithmetic="timed"):
        return ExecuTorchSession(Path(path), threads, precision)

    def declared_input(self, path: Path) -> Optional[list]:
        if not self.is_available():
            return None
        return list(_load_method(path).metadata.input_tensor_meta(0).sizes())

    def _export(self, model, example_input, out_path, *, precision, opset, input_names, output_names,
                calibration: Any = None, **_: Any) -> ExportResult:
        import torch

        if precision == "int8" and calibration is None:
            raise EdgekdError("ExecuTorch int8 needs calibration inputs: PT2E calibrates its own ranges")
        try:
            with torch.no_grad():
                int8 = precision == "int8"
                graph = _pt2e_int8(float_twin(model), example_input, calibration) if int8 else model.eval()
                program = _lowered(graph, example_input)
        except Exception as error:  # torch.export and the lowering raise many types, with long messages
            raise EdgekdError(f"ExecuTorch cannot export {type(model).__name__}: {first_line(error)}") from error
        atomic_write_bytes(out_path, program.buffer)
        return ExportResult(
            backend=self.name, precision=precision, path=out_path, sha256=sha256_file(out_path),
            size_bytes=out_path.stat().st_size, opset=None,
            extra={"delegate": "XnnpackPartitioner", "input_shape": list(example_input.shape),
                   "exporter": "torch.export → to_edge_transform_and_lower",
                   **({"int8": _INT8_RECIPE} if precision == "int8" else {})},
        )


_INT8_RECIPE = {"quantizer": "XNNPACKQuantizer, symmetric per-channel weights",
                "ranges": "PT2E calibration on the QAT model's weights"}


def _pt2e_int8(model: Any, example_input: Any, calibration: Any) -> Any:
    """PT2E with XNNPACK's quantizer (symmetric per-channel int8 weights, int8 activations), calibrated on
    `calibration` (N, C, H, W) one example-sized batch at a time: the graph XNNPACK runs as int8."""
    import numpy as np
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = _exportable(model, example_input)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(graph, quantizer)
    batch = example_input.shape[0]
    data = np.asarray(calibration, dtype=np.float32)
    for start in range(0, len(data) - batch + 1, batch):
        prepared(torch.from_numpy(data[start:start + batch]))
    return convert_pt2e(prepared)


def softmax_before_permute(graph_module: Any) -> int:
    """Rewrite `softmax(permute(x, perm), dim)` as `permute(softmax(x, perm[dim]), perm)`: the same values.

    ExecuTorch 1.5's XNNPACK delegate computes a softmax over the last axis of a permuted convolution output along
    the wrong axis (max |Δ| 0.087 on outputs of 0.2 in tests/backend/test_executorch.py; the mono3d student's depth
    distribution, which the task lays out that way because ONNX Runtime's softmax is fastest on the innermost axis,
    came out at 14 dB). Returns how many softmaxes were moved."""
    import torch

    aten, graph, moved = torch.ops.aten, graph_module.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in (aten.softmax.int, aten._softmax.default):
            continue
        source = node.args[0]
        while getattr(source, "target", None) in (aten.clone.default, aten.contiguous.default):
            source = source.args[0]  # a copy between the permute and the softmax changes no value
        if getattr(source, "target", None) != aten.permute.default:
            continue
        perm = list(source.args[1])
        dim = node.args[1] % len(perm)
        with graph.inserting_before(node):
            inner = graph.call_function(node.target, (source.args[0], perm[dim], *node.args[2:]), dict(node.kwargs))
            outer = graph.call_function(aten.permute.default, (inner, perm))
        node.replace_all_uses_with(outer)
        graph.erase_node(node)
        moved += 1
    if moved:
        graph.eliminate_dead_code()
        graph_module.recompile()
    return moved


def _exportable(model: Any, example_input: Any) -> Any:
    """The module as torch.export sees it, with the rewrites the XNNPACK delegate needs."""
    import torch

    graph_module = torch.export.export(model, (example_input,)).module()
    softmax_before_permute(graph_module)
    return graph_module


def _lowered(model: Any, example_input: Any) -> Any:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    exported = torch.export.export(_exportable(model, example_input), (example_input,))
    return to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()


def _load_method(path: Path) -> Any:
    from executorch.runtime import Runtime

    try:
        return Runtime.get().load_program(str(path)).load_method("forward")
    except Exception as error:  # the runtime raises RuntimeError with its own error code for a bad file
        raise EdgekdError(f"{path}: ExecuTorch cannot load it ({first_line(error)})") from None


class ExecuTorchSession(Session):
    """An ExecuTorch program's `forward` on this host's CPU (XNNPACK), one sample per call."""

    runtime = "executorch"

    def __init__(self, path: Path, threads: int, precision: str) -> None:
        try:
            from executorch.extension.pybindings import portable_lib
        except ImportError as exc:
            raise EdgekdError("the executorch runtime is not installed: pip install 'edgekd[executorch]'") from exc
        super().__init__(path)
        # XNNPACK's thread pool is process-wide: set it for this session (the profiler runs one session at a time)
        portable_lib._unsafe_reset_threadpool(threads)
        self.method = _load_method(path)
        meta = self.method.metadata
        if meta.num_inputs() != 1:
            raise EdgekdError(f"{path.name}: one input is supported, the program has {meta.num_inputs()}")
        self._shape = list(meta.input_tensor_meta(0).sizes())
        self.threads, self.precision = portable_lib._threadpool_get_thread_count(), precision

    @property
    def input_shape(self) -> list[int | str | None]:
        return self._shape

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        import torch

        batch = self._shape[0] if self._shape else 1  # a program's batch is fixed at export
        return run_in_fixed_batches(array, batch, lambda chunk: [
            output.numpy() for output in self.method.execute([torch.from_numpy(chunk)])])

    def metadata(self) -> dict[str, str]:
        return {"edgekd.precision": self.precision}

    def settings(self) -> dict[str, Any]:
        from importlib import metadata

        return {"threads": self.threads, "delegate": "XNNPACK", "inference_precision": "as stored",
                "version": metadata.version("executorch")}
