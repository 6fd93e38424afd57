"""The runtimes the device runner times: one module per runtime, named as the runtime (`onnxruntime.py`).

Each module has `PACKAGES` (the distributions whose versions the environment reports) and a `Model` class:
`Model(path, threads, shape, precision)` loads the file and builds a seeded input, `.run()` runs it once and
returns its outputs as arrays, and `.shape`, `.precision`, `.settings` say what was timed. A module imports its
runtime only when a Model is built, so the runner starts on a device that has a single runtime installed.
"""

from __future__ import annotations

import importlib
import os

from ..common import RunnerError


def names() -> list[str]:
    """Every runtime with a module here (found by file name, so a new runtime is one new file)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return sorted(f[:-3] for f in os.listdir(here) if f.endswith(".py") and not f.startswith("_"))


def module(name: str):
    if name not in names():
        raise RunnerError("runtime", f"runtime {name!r} is not supported by the runner; use {names()}")
    return importlib.import_module(f"{__name__}.{name}")


def packages() -> tuple[str, ...]:
    return tuple(p for name in names() for p in module(name).PACKAGES)


def load(name: str, path: str, threads: int, shape: list[int] | None, precision: str):
    """A loaded Model; a runtime's own exception on an unreadable file becomes one line naming the file."""
    model_class = module(name).Model
    try:
        return model_class(path, threads, shape, precision)
    except RunnerError:
        raise
    except Exception as exc:  # runtimes raise their own types for unreadable graphs
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunnerError("runtime", f"{name} cannot load {os.path.basename(path)}: {first}") from None
