"""ONNX export: torch.export-based (dynamo) exporter first, TorchScript exporter as the fallback.

The file is checked with `onnx.checker`, optionally simplified with onnxslim (a simplifier that fails
leaves the graph as exported, and the record says why), stamped with its precision, and written
atomically as one self-contained .onnx (weights embedded, no external data).

int8 comes in two placements from the same quantized model (edgekd.export.int8_graph): `onnxruntime`
(the default: quantizers where ONNX Runtime's CPU provider fuses int8 kernels; needs `calibration`
inputs for the tensors QAT never quantized) and `explicit` (TensorRT's explicit-quantization placement,
the source of the OpenVINO int8 IR and the TensorRT bundle). Both store weights as int8.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgekd.artifacts import atomic_path, sha256_file
from edgekd.errors import EdgekdError
from edgekd.export.base import Exporter, ExportResult

MIN_OPSET = 17
INT8_PLACEMENTS = ("onnxruntime", "explicit")
# torch's dynamo exporter only implements opset >= 18; below that it "converts" and, when the conversion
# fails, silently keeps 18. Asking for 17 therefore goes straight to the TorchScript exporter.
DYNAMO_MIN_OPSET = 18
# protobuf cannot serialise a single message over 2 GiB; no edge model should come near it.
MAX_PROTO_BYTES = 2**31 - 1
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class OnnxExporter(Exporter):
    """fp32 ONNX from a float model; int8 as a Q/DQ graph from a quantized (PTQ/QAT) model."""

    name = "onnx"
    listing_order = 10
    runtime = "onnxruntime"
    precisions = ("fp32", "int8")
    refused = {
        "fp16": "ONNX Runtime's CPU provider has few fp16 kernels and inserts casts around the rest; "
                "export fp16 for OpenVINO or TensorRT instead",
    }
    default_precisions = ("fp32", "int8")
    file_suffix = ".onnx"
    requires = ("onnx", "onnxscript")
    doctor_modules = ("onnxruntime", "onnx", "onnxslim")
    int8_placement = "onnxruntime"
    remote_runner = "onnxruntime"
    host_cpu = True
    reads_suffixes = (".onnx",)

    def runs_here(self) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def declared_input(self, path: Path) -> list:
        import onnx

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as error:  # onnx raises DecodeError, ValueError, ... for a file that is not a model
            raise EdgekdError(f"{path}: not an ONNX model ({type(error).__name__})") from None
        initializers = {init.name for init in model.graph.initializer}
        inputs = [value for value in model.graph.input if value.name not in initializers]
        if not model.graph.node or not inputs:
            raise EdgekdError(f"{path}: not an ONNX model with a graph input")
        dims = inputs[0].type.tensor_type.shape.dim
        return [dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?") for dim in dims]

    def open_session(self, path, *, threads, precision, static_shape=None, arithmetic="timed"):
        from edgekd.profile.sessions import OrtSession

        return OrtSession(Path(path), threads)

    def _export(self, model, example_input, out_path, *, precision, opset, input_names, output_names,
                simplify: bool = True, dynamic_batch: bool = True, int8_placement: str = "onnxruntime",
                calibration: Any = None) -> ExportResult:
        check_opset(opset)
        _check_quantization(model, precision)
        _check_placement(precision, int8_placement, calibration)
        args = example_input if isinstance(example_input, tuple) else (example_input,)
        was_training = model.training
        try:
            if precision == "int8":
                proto, extra = _trace_qdq(model, args, opset, input_names, output_names, dynamic_batch)
            else:
                proto, extra = _trace(model.eval(), args, opset, input_names, output_names, dynamic_batch)
        finally:
            model.train(was_training)
        _check(proto, f"the {extra['exporter']} exporter")
        extra["nodes"] = len(proto.graph.node)
        stamp = {"edgekd.precision": precision}
        if precision == "int8":
            proto = _place_int8(proto, int8_placement, calibration, extra)
            stamp["edgekd.int8_placement"] = int8_placement
        # The ONNX Runtime placement is left as its quantizer wrote it: a simplifier that fused or renamed
        # nodes around its Q/DQ pairs could undo the patterns the CPU provider fuses.
        extra["simplified"] = False
        if simplify and not (precision == "int8" and int8_placement == "onnxruntime"):
            proto = _slim(proto, extra)
            extra.update(simplified="simplify_failed" not in extra, nodes_simplified=len(proto.graph.node))
        extra.update(requested_opset=opset, dynamic_batch=_has_dynamic_batch(proto))
        _stamp(proto, stamp)
        _save(proto, out_path)
        if precision == "int8":
            from edgekd.export.int8_graph import int8_kernel_counts

            extra["kernels"] = int8_kernel_counts(out_path)
        return ExportResult(
            backend=self.name, precision=precision, path=out_path, sha256=sha256_file(out_path),
            size_bytes=out_path.stat().st_size, opset=file_opset(proto), extra=extra,
        )


def _check_placement(precision: str, placement: str, calibration: Any) -> None:
    if precision != "int8":
        return
    if placement not in INT8_PLACEMENTS:
        raise EdgekdError(f"int8 placement '{placement}' is not one of {', '.join(INT8_PLACEMENTS)}")
    if placement == "onnxruntime" and (calibration is None or len(calibration) == 0):
        raise EdgekdError("int8 ONNX for ONNX Runtime needs calibration inputs (calibration=, an array of network "
                          "inputs) for the tensors QAT did not quantize; or int8_placement='explicit'")


def _place_int8(proto, placement: str, calibration: Any, extra: dict[str, Any]) -> Any:
    from edgekd.export.int8_graph import explicit_graph, onnxruntime_graph, quantized_weighted_ops

    extra["quantized_by_qat"] = quantized_weighted_ops(proto)
    if placement == "explicit":
        extra["int8"] = {"placement": "explicit"}
        return explicit_graph(proto)
    try:
        placed, info = onnxruntime_graph(proto, calibration)
    except Exception as exc:  # the ONNX Runtime quantizer raises anything from shape inference to its own checks
        if isinstance(exc, EdgekdError):
            raise
        raise EdgekdError(f"ONNX Runtime int8 placement failed — {_first_line(exc)}") from exc
    extra["int8"] = info
    _check(placed, "ONNX Runtime's quantizer")
    return placed


def _check_quantization(model, precision: str) -> None:
    from edgekd.quant.nncf_quant import is_quantized

    quantized = is_quantized(model)
    if precision == "int8" and not quantized:
        raise EdgekdError(
            "int8 ONNX needs a quantized model (the qat stage's output, or edgekd.quant.nncf_quant.quantize_ptq); "
            "a float model is not exported under an int8 label"
        )
    if precision != "int8" and quantized:
        raise EdgekdError(f"this model carries int8 fake-quant: export it as int8, not {precision}")


def _trace_qdq(model, args, opset, input_names, output_names, dynamic_batch) -> tuple[Any, dict[str, Any]]:
    from edgekd.quant.nncf_quant import export_qdq_onnx

    try:
        proto = export_qdq_onnx(model, args, opset=opset, input_names=input_names, output_names=output_names,
                                dynamic_batch=dynamic_batch)
    except Exception as exc:  # the TorchScript exporter raises anything from tracing to symbolic errors
        raise EdgekdError(f"int8 Q/DQ ONNX export failed — {_first_line(exc)}") from exc
    return proto, {"exporter": "torchscript (NNCF Q/DQ)", "failed_attempts": [], "warnings": [],
                   "exporter_reason": "fake-quant exports as QuantizeLinear/DequantizeLinear via NNCF's symbolics"}


def check_opset(opset: int) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise EdgekdError(f"ONNX opset {opset} is not supported: use {MIN_OPSET}..{newest} (default 18)")


def _trace(model, args, opset, input_names, output_names, dynamic_batch) -> tuple[Any, dict[str, Any]]:
    """Try each (exporter, batch mode) in order; the first that works wins and the failures are recorded."""
    engines = ("dynamo", "torchscript") if opset >= DYNAMO_MIN_OPSET else ("torchscript",)
    batches = (True, False) if dynamic_batch else (False,)
    failures: list[str] = []
    for engine in engines:
        for dynamic in batches:
            run = _dynamo if engine == "dynamo" else _torchscript
            try:
                proto, caught = _recording_warnings(run, model, args, opset, input_names, output_names, dynamic)
            except Exception as exc:  # exporters raise anything from torch.export to onnxscript errors
                failures.append(f"{engine}{' (dynamic batch)' if dynamic else ''}: {_first_line(exc)}")
                continue
            if file_opset(proto) != opset:  # an exporter that "converts" may keep its own opset: not what was asked
                failures.append(f"{engine}: wrote opset {file_opset(proto)}, not the requested {opset}")
                break
            extra = {"exporter": engine, "failed_attempts": failures, "warnings": caught}
            if opset < DYNAMO_MIN_OPSET:
                extra["exporter_reason"] = f"the dynamo exporter implements opset >= {DYNAMO_MIN_OPSET} only"
            return proto, extra
    raise EdgekdError("ONNX export failed — " + "; ".join(failures))


def _recording_warnings(run, *args) -> tuple[Any, list[str]]:
    # A TracerWarning ("converting a tensor to a Python boolean") means a branch was frozen into the
    # graph; it belongs in the export record, where it is read, not scrolled past on the console.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        proto = run(*args)
    lines = {f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}" for w in caught}
    return proto, sorted(lines)


def _dynamo(model, args, opset, input_names, output_names, dynamic) -> Any:
    import torch

    shapes = tuple({0: torch.export.Dim("batch")} for _ in args) if dynamic else None
    if dynamic:
        # torch.export specialises a size-1 dimension to the constant 1, so trace a dynamic batch with 2.
        args = tuple(torch.cat([a, a]) if a.shape[0] == 1 else a for a in args)
    program = torch.onnx.export(
        model, args, dynamo=True, opset_version=opset, input_names=list(input_names),
        output_names=list(output_names), dynamic_shapes=shapes, verbose=False,
    )
    return program.model_proto


def _torchscript(model, args, opset, input_names, output_names, dynamic) -> Any:
    import onnx
    import torch

    names = (*input_names, *output_names)
    axes = {name: {0: "batch"} for name in names} if dynamic else None
    with tempfile.TemporaryDirectory(prefix="edgekd-onnx-") as folder, warnings.catch_warnings():
        # The legacy exporter announces its own deprecation on every call; which exporter ran is recorded instead.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        path = Path(folder) / "model.onnx"
        with exact_index_add():
            torch.onnx.export(
                model, args, str(path), dynamo=False, opset_version=opset, input_names=list(input_names),
                output_names=list(output_names), dynamic_axes=axes,
            )
        return onnx.load(str(path))  # pulls in external data, if any, so the result is self-contained


@contextmanager
def exact_index_add() -> Iterator[None]:
    """TorchScript export with `index_add` along dim 0 written as ScatterND with reduction "add" (opset >= 16).

    TorchScript's own symbolic writes a ScatterND without the reduction, which keeps one of several rows sent to the
    same index instead of their sum (and refuses outright when there are more rows than indices): the mono3d lift's
    row scatter is exactly that case. The dynamo exporter gets it right on its own.
    """
    import torch
    from torch.onnx import register_custom_op_symbolic, symbolic_helper, unregister_custom_op_symbolic

    @symbolic_helper.parse_args("v", "i", "v", "v", "none")
    def index_add_rows(g, data, dim, index, rows, alpha=None):  # noqa: ANN001, ANN202
        if dim != 0:
            return symbolic_helper._unimplemented("index_add", "a dim other than 0", data)
        rows_of = g.op("Unsqueeze", index, g.op("Constant", value_t=torch.tensor([1], dtype=torch.int64)))
        return g.op("ScatterND", data, rows_of, rows, reduction_s="add")

    register_custom_op_symbolic("aten::index_add", index_add_rows, 16)
    try:
        yield
    finally:
        unregister_custom_op_symbolic("aten::index_add", 16)


def _check(proto, producer: str) -> None:
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise EdgekdError(f"{producer} produced an invalid ONNX graph: {_first_line(exc)}") from exc


def _slim(proto, extra: dict[str, Any]) -> Any:
    """onnxslim's simplified graph; the graph as it was when onnxslim fails or writes an invalid one (a
    simplifier is an optimisation), with the reason in `extra['simplify_failed']`."""
    if importlib.util.find_spec("onnxslim") is None:
        raise EdgekdError("simplify=True needs onnxslim: pip install onnxslim (or export with simplify=False)")
    slimmed, failure = slim_or_keep(proto, check=True)
    if failure:
        extra["simplify_failed"] = failure
        warnings.warn(f"ONNX simplification skipped, the graph is kept as exported — {failure}", stacklevel=2)
    return slimmed


def slim_or_keep(proto, *, check: bool = False) -> tuple[Any, str]:
    """(onnxslim's simplified graph, ''), or (the graph as it was, why onnxslim failed): a simplifier is an
    optimisation, never a reason to fail. `check` also refuses a simplified graph `onnx.checker` rejects."""
    import onnx
    import onnxslim

    original = onnx.ModelProto()
    original.CopyFrom(proto)  # onnxslim may modify its argument before it fails
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            slimmed = onnxslim.slim(proto)
        if check:
            _check(slimmed, "onnxslim")
    except Exception as exc:  # onnxslim's passes raise anything (seen: TypeError in its conv-mul fusion)
        return original, f"onnxslim {getattr(onnxslim, '__version__', '')}: {_first_line(exc)}"
    return slimmed, ""


def _stamp(proto, props: dict[str, str]) -> None:
    """Record edgekd facts in the file itself, so a profiler can tell an fp32 file from an int8 one."""
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _save(proto, out_path: Path) -> None:
    import onnx

    if proto.ByteSize() > MAX_PROTO_BYTES:
        raise EdgekdError(f"{out_path.name}: the model is over 2 GiB, too large to embed in one .onnx file")
    with atomic_path(out_path) as tmp:
        onnx.save(proto, str(tmp))


def file_opset(proto) -> int | None:
    """The default-domain opset the file declares."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _has_dynamic_batch(proto) -> bool:
    dims = [i.type.tensor_type.shape.dim for i in proto.graph.input]
    return bool(dims) and all(len(d) > 0 and d[0].HasField("dim_param") for d in dims)


def _first_line(exc: BaseException) -> str:
    # torch.onnx wraps the real error ("Failed to export ... step 1/3"); the innermost cause says what broke.
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0].strip() if lines else ''}"[:300]
