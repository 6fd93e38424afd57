"""Exporters: `EXPORTERS.get("onnx").export(model, example, path)`.

Backends are registered here, so users never import a backend module for its side effect.
No backend imports onnx/openvino/tensorrt until it exports.
"""

from __future__ import annotations

from edgekd.export.base import Exporter, ExportResult
from edgekd.registry import Registry

EXPORTERS: Registry[Exporter] = Registry("exporter")


def _register_backends() -> None:
    from edgekd.export.onnx import OnnxExporter
    from edgekd.export.openvino import OpenVinoExporter
    from edgekd.export.tensorrt import TensorRtExporter

    EXPORTERS.register("onnx")(OnnxExporter())
    EXPORTERS.register("openvino")(OpenVinoExporter())
    EXPORTERS.register("tensorrt")(TensorRtExporter())


_register_backends()

__all__ = ["EXPORTERS", "Exporter", "ExportResult"]
