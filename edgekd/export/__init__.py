"""The backend registry: `BACKENDS.get("onnx").export(model, example, path)`.

Each backend is one module with one `Exporter` subclass (edgekd.export.base says what it owns); it is
registered here by listing its module in BACKEND_MODULES, so users never import a backend module for its
side effect. No backend imports onnx/openvino/tensorrt until it exports. Runtime names, precisions and the
file suffix → runtime map are read from here by the recipe schema, the CLI, `doctor`, profiling and the report.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from edgekd.errors import EdgekdError
from edgekd.export.base import PRECISIONS, Exporter, ExportResult
from edgekd.registry import Registry, unknown_name_message

BACKENDS: Registry[Exporter] = Registry("backend")
EXPORTERS = BACKENDS  # the name earlier code and notebooks use
# module → class: adding a backend is one file plus its line here (docs/decisions.md, "Adding a backend").
BACKEND_MODULES = {
    "onnx": "OnnxExporter",
    "openvino": "OpenVinoExporter",
    "tensorrt": "TensorRtExporter",
    "ncnn": "NcnnExporter",
    "executorch": "ExecuTorchExporter",
    "litert": "LiteRtExporter",
}
# Runtimes the device latency model has calibration points for (devices/*.yaml) that no backend exports to yet:
# a report can predict them, edgekd cannot make their files.
PREDICTION_ONLY_RUNTIMES = ("pytorch",)


def _register_backends() -> None:
    for module, cls in BACKEND_MODULES.items():
        backend = getattr(importlib.import_module(f"edgekd.export.{module}"), cls)()
        BACKENDS.register(backend.name)(backend)


_register_backends()


def backend_names() -> list[str]:
    return list(BACKEND_MODULES)


def runtime_names() -> list[str]:
    """The runtimes edgekd exports to, in registration order."""
    return [BACKENDS.get(name).runtime for name in BACKEND_MODULES]


def all_runtime_names() -> list[str]:
    """Exported-to runtimes, then those the latency model can only predict."""
    return [*runtime_names(), *PREDICTION_ONLY_RUNTIMES]


def backend_for_runtime(runtime: str) -> Exporter:
    for name in BACKEND_MODULES:
        if BACKENDS.get(name).runtime == runtime:
            return BACKENDS.get(name)
    raise EdgekdError(unknown_name_message("runtime", runtime, runtime_names()))


def local_runtimes() -> list[str]:
    """Runtimes whose files this host can execute (parity and timing)."""
    return [BACKENDS.get(name).runtime for name in BACKEND_MODULES if BACKENDS.get(name).runs_here()]


def backend_for_file(path: str | Path, *, runner_only: bool = False) -> Exporter | None:
    """The backend whose own file format `path` is, by its suffix; with `runner_only`, among the backends the
    device runner executes (edgekd/profile/remote_runner.py). None when there is none."""
    suffix = Path(path).suffix
    for name in BACKEND_MODULES:
        backend = BACKENDS.get(name)
        if backend.file_suffix == suffix and (backend.remote_runner or not runner_only):
            return backend
    return None


def runtime_for_file(path: str | Path) -> str:
    """The runtime that executes a file, by its suffix (.onnx: ONNX Runtime, .xml: OpenVINO, .engine: TensorRT)."""
    backend = backend_for_file(path)
    if backend is None:
        known = ", ".join(BACKENDS.get(name).file_suffix for name in BACKEND_MODULES)
        raise EdgekdError(f"{Path(path).name}: no runtime edgekd knows runs '{Path(path).suffix}' files ({known})")
    return backend.runtime


def runner_runtime_for(path: str | Path) -> str | None:
    """The runtime the device runner executes a file under (.onnx: onnxruntime, .xml: openvino); None when the
    device runner does not run files of that kind."""
    backend = backend_for_file(path, runner_only=True)
    return backend.remote_runner if backend else None


__all__ = ["BACKENDS", "EXPORTERS", "Exporter", "ExportResult", "PRECISIONS", "backend_for_runtime", "backend_names",
           "runtime_names", "all_runtime_names", "local_runtimes", "backend_for_file", "runtime_for_file",
           "runner_runtime_for"]
