"""`edgekd doctor`: what this installation can do — runtimes, optional extras, device specs.

Private (`_doctor`): a submodule named `doctor` would replace the `edgekd.doctor` verb on the package once
imported, so `edgekd.doctor()` would work only once per interpreter.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from typing import Any

# Extras that are not a backend's (a backend's extra and modules come from the registry, edgekd.export).
OTHER_EXTRAS = {
    "yolo": ["ultralytics"],
    "remote": ["paramiko"],
    "dev": ["pytest"],
}


def _runtime_packages() -> dict[str, tuple[str, str | None]]:
    """runtime name -> (the module it is imported as, the extra that installs it); PyTorch first."""
    from edgekd.export import BACKENDS, backend_names

    packages: dict[str, tuple[str, str | None]] = {"pytorch": ("torch", None)}
    for name in backend_names():
        backend = BACKENDS.get(name)
        packages[backend.runtime] = (backend.doctor_modules[0], backend.extra_name)
    return packages


def _extra_packages() -> dict[str, list[str]]:
    from edgekd.export import BACKENDS, backend_names

    extras = {}
    for name in backend_names():
        backend = BACKENDS.get(name)
        if backend.extra_name:
            extras[backend.extra_name] = list(dict.fromkeys(backend.doctor_modules))
    return {**extras, **OTHER_EXTRAS}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def runtimes() -> list[dict[str, Any]]:
    from edgekd.export import BACKENDS, backend_names

    notes = {BACKENDS.get(name).runtime: BACKENDS.get(name).doctor_note() for name in backend_names()}
    available_by_runtime = {BACKENDS.get(name).runtime: BACKENDS.get(name).is_available() for name in backend_names()}
    rows = []
    for name, (module, extra) in _runtime_packages().items():
        available = available_by_runtime.get(name, _importable(module))
        hint = "" if available else (f"pip install 'edgekd[{extra}]'" if extra else f"pip install {module}")
        rows.append({"runtime": name, "available": available, "version": _version(module), "hint": hint,
                     "note": notes.get(name, "")})
    return rows


def extras() -> list[dict[str, Any]]:
    rows = []
    for extra, packages in _extra_packages().items():
        missing = [p for p in packages if _version(p) is None]
        rows.append({"extra": extra, "installed": not missing, "missing": missing})
    return rows


def collect() -> dict[str, Any]:
    from edgekd.devices import list_devices

    # The devices `--device` resolves (edgekd.devices.devices_dir), wherever doctor is run from.
    return {"edgekd": _version("edgekd"), "runtimes": runtimes(), "extras": extras(), "devices": list_devices(),
            "training": training()}


def training() -> dict[str, Any]:
    """Where recipes can train here: the CUDA GPUs torch sees (memory, compute capability, bf16) and the CPU's bf16."""
    import torch

    from edgekd.compute import cpu_bf16, cuda_summary

    return {"torch_cuda_build": torch.version.cuda, "cuda": cuda_summary(), "cpu_bf16": cpu_bf16()}
