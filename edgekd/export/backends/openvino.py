"""OpenVINO IR (.xml + .bin) through `openvino.convert_model`, from the same ONNX graph the other backends use.

fp32: the fp32 ONNX as is. fp16: the same graph with weights compressed to fp16 (`compress_to_fp16`); the
CPU plugin decides the arithmetic precision (f32 on most x86, bf16 with AMX, f16 on ARM), which parity
and profiling record. int8: the Q/DQ ONNX of a quantized model — OpenVINO turns each Q/DQ pair into a
FakeQuantize and runs int8 kernels where the CPU has them.

Give `source_onnx=` to convert a file that already exists (what the export stage does); otherwise the
ONNX exporter runs first into a temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from edgekd.artifacts import sha256_file
from edgekd.errors import EdgekdError
from edgekd.export.base import Exporter, ExportResult


class OpenVinoExporter(Exporter):
    name = "openvino"
    listing_order = 20
    runtime = "openvino"
    precisions = ("fp32", "fp16", "int8")
    default_precisions = ("fp32", "fp16", "int8")
    file_suffix = ".xml"
    companion_suffixes = (".bin",)
    requires = ("openvino",)
    extra_name = "openvino"
    doctor_modules = ("openvino", "nncf")
    remote_runner = "openvino"
    host_cpu = True
    reads_suffixes = (".xml", ".onnx")

    def declared_input(self, path: Path) -> list:
        import xml.etree.ElementTree as ElementTree

        try:
            root = ElementTree.parse(path).getroot()
        except (ElementTree.ParseError, UnicodeDecodeError) as error:
            raise EdgekdError(f"{path}: not an OpenVINO IR ({error})") from None
        parameter = root.find("./layers/layer[@type='Parameter']/data") if root.tag == "net" else None
        if parameter is None:
            raise EdgekdError(f"{path}: not an OpenVINO IR (no <net> with a Parameter layer)")
        return [int(part) if part.strip().isdigit() else part.strip()
                for part in parameter.get("shape", "").split(",") if part.strip()]

    def open_session(self, path, *, threads, precision, static_shape=None, arithmetic="timed"):
        from edgekd.profile.sessions import OpenVinoSession

        return OpenVinoSession(Path(path), threads, precision, static_shape, arithmetic)

    def _export(self, model, example_input, out_path, *, precision, opset, input_names, output_names,
                source_onnx: str | Path | None = None, simplify: bool = True, dynamic_batch: bool = True) -> ExportResult:
        if source_onnx is not None:
            return self._convert(Path(source_onnx), out_path, precision)
        from edgekd.export.backends.onnx import OnnxExporter

        onnx_precision = "int8" if precision == "int8" else "fp32"
        with tempfile.TemporaryDirectory(prefix="edgekd-ov-") as folder:
            onnx_path = Path(folder) / "model.onnx"
            OnnxExporter().export(model, example_input, onnx_path, precision=onnx_precision, opset=opset,
                                  input_names=input_names, output_names=output_names, simplify=simplify,
                                  dynamic_batch=dynamic_batch, int8_placement="explicit")
            return self._convert(onnx_path, out_path, precision)

    def _convert(self, onnx_path: Path, out_path: Path, precision: str) -> ExportResult:
        import openvino as ov

        has_qdq = _has_qdq(onnx_path)
        if precision == "int8" and not has_qdq:
            raise EdgekdError(f"{onnx_path.name} has no QuantizeLinear/DequantizeLinear nodes: int8 IR needs the "
                              "Q/DQ ONNX of a quantized model")
        if precision != "int8" and has_qdq:
            raise EdgekdError(f"{onnx_path.name} is a Q/DQ (int8) graph: convert it with precision int8")
        try:
            with _qdq_weights(onnx_path) as source:
                converted = ov.convert_model(str(source))
        except Exception as exc:  # the frontend raises its own types with multi-line text
            raise EdgekdError(f"OpenVINO cannot convert {onnx_path.name}: {str(exc).splitlines()[0]}") from exc
        converted.set_rt_info(precision, ["edgekd", "precision"])
        _save_pair(ov, converted, out_path, compress_to_fp16=precision == "fp16")
        bin_path = out_path.with_suffix(".bin")
        return ExportResult(
            backend=self.name, precision=precision, path=out_path, sha256=sha256_file(out_path),
            size_bytes=out_path.stat().st_size + bin_path.stat().st_size, opset=None,
            extra={"bin": str(bin_path), "bin_sha256": sha256_file(bin_path), "source_onnx": onnx_path.name,
                   "openvino": ov.get_version(), "compress_to_fp16": precision == "fp16"},
        )


@contextlib.contextmanager
def _qdq_weights(onnx_path: Path) -> Iterator[Path]:
    """`onnx_path`, or a temporary copy made for OpenVINO: int8 weight initializers (the explicit graph) as float +
    QuantizeLinear/DequantizeLinear, the same values, converted into faster IR (int8_graph.unfolded_weights); and
    residual Adds reading a quantized conv output through its Q/DQ pair (int8_graph.quantized_skip_reads)."""
    import onnx

    from edgekd.export.int8_graph import quantized_skip_reads, unfolded_weights

    proto = onnx.load(str(onnx_path))
    int8_weights = any(i.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) for i in proto.graph.initializer)
    rerouted = quantized_skip_reads(proto)
    if not int8_weights and not rerouted:
        yield onnx_path
        return
    with tempfile.TemporaryDirectory(prefix="edgekd-ov-") as folder:
        source = Path(folder) / onnx_path.name
        onnx.save(unfolded_weights(proto) if int8_weights else proto, str(source))
        yield source


def _has_qdq(onnx_path: Path) -> bool:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in graph.node)


def _save_pair(ov: Any, model: Any, out_path: Path, *, compress_to_fp16: bool) -> None:
    """Write .bin then .xml under temporary names and rename them into place: a reader never sees a
    new .xml next to an old .bin (the .xml is renamed last and is what marks the pair complete)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ov-", dir=out_path.parent) as folder:
        tmp_xml = Path(folder) / out_path.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=compress_to_fp16)
        for tmp in (tmp_xml.with_suffix(".bin"), tmp_xml):
            os.chmod(tmp, 0o644)
            os.replace(tmp, out_path.parent / tmp.name)
