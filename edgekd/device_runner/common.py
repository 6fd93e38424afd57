"""What every part of the device runner shares: the result marker, hashes, the input feed and the errors.

Timing matches edgekd.profile.local: `run()` only, input built beforehand, perf_counter_ns, seed 0 normal input.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import subprocess

RESULT_MARKER = "EDGEKD-RESULT "
INPUT_SEED = 0


class RunnerError(Exception):
    """A refusal with a kind the caller maps to its own error ("hash", "runtime", "input")."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(expected: dict[str, str]) -> dict[str, str]:
    """Refuse unless every file has exactly the hash the sender computed before upload."""
    for name, want in expected.items():
        if not os.path.isfile(name):
            raise RunnerError("hash", f"{name} is missing on the device")
        have = sha256_file(name)
        if have != want:
            raise RunnerError("hash", f"sha256 mismatch for {name}: expected {want[:16]}…, device has {have[:16]}…")
    return expected


def read_text(path: str) -> str:
    try:
        with open(path, errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def command_output(argv: list[str]) -> str:
    """A device tool's stdout, or "" when it is missing, fails or hangs."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def import_runtime(module: str):
    """A runtime's python module (the submodule itself for a dotted name), or a refusal naming it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RunnerError("runtime", f"python module {module!r} is not installed on the device") from None


def usable_cores() -> int:
    # Containers and taskset pin a process to fewer cores than the board has; latency depends on this one.
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, IndexError, ValueError):
        return None


def resolve_shape(declared: list, requested: list[int] | None) -> list[int]:
    """The requested shape, or the model's own with a symbolic batch taken as 1 (edge inference is batch 1)."""
    if requested:
        if len(requested) != len(declared) or any(isinstance(d, int) and d > 0 and d != r
                                                  for d, r in zip(declared, requested)):
            raise RunnerError("input", f"the model takes input shape {declared}, profiling asked for {requested}")
        return requested
    shape = [d if isinstance(d, int) and d > 0 else (1 if i == 0 else None) for i, d in enumerate(declared)]
    if None in shape:
        raise RunnerError("input", f"the model input {declared} has dynamic sizes; pass --input-shape")
    return shape


def random_input(shape: list[int], dtype=None):
    """The seeded standard-normal input every runtime is timed on (float32 unless the model takes another)."""
    np = import_runtime("numpy")
    return np.random.default_rng(INPUT_SEED).standard_normal(shape).astype(dtype or np.float32)
