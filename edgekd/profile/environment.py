"""Where a measurement was taken: CPU, cores, OS, Python and package versions — from files, not imports."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from edgekd.artifacts import package_versions

# /proc/cpuinfo names the CPU differently per architecture: x86 has "model name"; Raspberry Pi
# kernels put the board in "Model"; other ARM kernels only have "Hardware" or nothing at all.
_CPUINFO_KEYS = ("model name", "Model", "Hardware", "cpu model", "Processor")


def cpu_model(cpuinfo: str | None = None) -> str:
    """A human name for this CPU (or board), best effort; never raises."""
    text = cpuinfo if cpuinfo is not None else _read("/proc/cpuinfo")
    fields = _fields(text)
    for key in _CPUINFO_KEYS:
        if fields.get(key):
            return fields[key]
    board = _read("/proc/device-tree/model").strip("\x00\n ")  # Jetson and other device-tree boards
    return board or platform.processor() or platform.machine() or "unknown"


def host_environment() -> dict[str, Any]:
    """Facts about this host that make a latency number comparable (or not) with another one."""
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": _usable_cores(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": package_versions(),
    }


def _usable_cores() -> int | None:
    # Containers and taskset pin a process to fewer cores than the machine has; latency depends on this one.
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def _fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""
