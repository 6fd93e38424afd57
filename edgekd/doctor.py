"""`edgekd doctor`: what this installation can do — runtimes, optional extras, device specs."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path
from typing import Any

# runtime name -> (import name, extra that installs it)
RUNTIME_PACKAGES = {
    "pytorch": ("torch", None),
    "onnxruntime": ("onnxruntime", None),
    "openvino": ("openvino", "openvino"),
    "tensorrt": ("tensorrt", "tensorrt"),
}
EXTRA_PACKAGES = {
    "openvino": ["openvino", "nncf"],
    "yolo": ["ultralytics"],
    "remote": ["paramiko"],
    "tensorrt": ["tensorrt"],
    "dev": ["pytest"],
}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def runtimes() -> list[dict[str, Any]]:
    rows = []
    for name, (module, extra) in RUNTIME_PACKAGES.items():
        available = _importable(module)
        hint = "" if available else (f"pip install 'edgekd[{extra}]'" if extra else f"pip install {module}")
        rows.append({"runtime": name, "available": available, "version": _version(module), "hint": hint})
    return rows


def extras() -> list[dict[str, Any]]:
    rows = []
    for extra, packages in EXTRA_PACKAGES.items():
        missing = [p for p in packages if _version(p) is None]
        rows.append({"extra": extra, "installed": not missing, "missing": missing})
    return rows


def device_specs(search: Path | None = None) -> list[str]:
    """Device spec files in ./devices (or `search`); the device model itself comes with profiling."""
    folder = search or Path.cwd() / "devices"
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.name.startswith("_")) if folder.is_dir() else []


def collect() -> dict[str, Any]:
    return {"edgekd": _version("edgekd"), "runtimes": runtimes(), "extras": extras(), "devices": device_specs()}
