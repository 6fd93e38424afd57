"""The backend registry: `BACKENDS.get("onnx").export(model, example, path)`.

Each backend is one module in `edgekd/export/backends/` with one `Exporter` subclass (edgekd.export.base says
what it owns). Every module there is registered at import, so adding a backend is that one file (plus, when
the device runner should time its files, one file in edgekd/device_runner/runtimes/) and users never import a
backend module for its side effect. No backend imports onnx/openvino/tensorrt until it exports. Runtime names,
precisions and the file suffix → runtime map are read from here by the recipe schema, the CLI, `doctor`,
profiling and the report.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

from edgekd.errors import EdgekdError
from edgekd.export import backends as _backend_package
from edgekd.export.base import PRECISIONS, Exporter, ExportResult
from edgekd.registry import Registry, unknown_name_message

BACKENDS: Registry[Exporter] = Registry("backend")
EXPORTERS = BACKENDS  # the name earlier code and notebooks use
# Runtimes the device latency model has calibration points for (devices/*.yaml) that no backend exports to yet:
# a report can predict them, edgekd cannot make their files.
PREDICTION_ONLY_RUNTIMES = ("pytorch",)


def _discover_backends() -> list[Exporter]:
    """One instance of the Exporter subclass each module in edgekd/export/backends/ defines, in listing order."""
    found = []
    for info in pkgutil.iter_modules(_backend_package.__path__):
        module = importlib.import_module(f"{_backend_package.__name__}.{info.name}")
        own = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
               if issubclass(cls, Exporter) and cls.__module__ == module.__name__ and not inspect.isabstract(cls)]
        if len(own) != 1:
            raise RuntimeError(f"{module.__name__} must define exactly one Exporter subclass, found {len(own)}")
        found.append(own[0]())
    return sorted(found, key=lambda backend: (backend.listing_order, backend.name))


_DISCOVERED = _discover_backends()
for _backend in _DISCOVERED:
    BACKENDS.register(_backend.name)(_backend)
_NAMES = tuple(backend.name for backend in _DISCOVERED)  # listing order (BACKENDS.names() is alphabetical)


def backend_names() -> list[str]:
    return list(_NAMES)


def runtime_names() -> list[str]:
    """The runtimes edgekd exports to, in registration order."""
    return [BACKENDS.get(name).runtime for name in _NAMES]


def all_runtime_names() -> list[str]:
    """Exported-to runtimes, then those the latency model can only predict."""
    return [*runtime_names(), *PREDICTION_ONLY_RUNTIMES]


def backend_for_runtime(runtime: str) -> Exporter:
    for name in _NAMES:
        if BACKENDS.get(name).runtime == runtime:
            return BACKENDS.get(name)
    raise EdgekdError(unknown_name_message("runtime", runtime, runtime_names()))


def local_runtimes() -> list[str]:
    """Runtimes whose files this host can execute (parity and timing)."""
    return [BACKENDS.get(name).runtime for name in _NAMES if BACKENDS.get(name).runs_here()]


def backend_for_file(path: str | Path, *, runner_only: bool = False) -> Exporter | None:
    """The backend whose own file format `path` is, by its suffix; with `runner_only`, among the backends the
    device runner executes (edgekd/device_runner/runtimes). None when there is none."""
    suffix = Path(path).suffix
    for name in _NAMES:
        backend = BACKENDS.get(name)
        if backend.file_suffix == suffix and (backend.remote_runner or not runner_only):
            return backend
    return None


def runtime_for_file(path: str | Path) -> str:
    """The runtime that executes a file, by its suffix (.onnx: ONNX Runtime, .xml: OpenVINO, .engine: TensorRT)."""
    backend = backend_for_file(path)
    if backend is None:
        known = ", ".join(BACKENDS.get(name).file_suffix for name in _NAMES)
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
