"""Check a model file here before it is sent to a device: it is a model, and an asked-for input shape fits it.

Without this, `deploy` and remote `profile` connect, copy and start the device's runner only to learn that the
file is not a model or that `--input-shape` has the wrong rank. Each backend reads its own format's declared
input (`declared_input`); no runtime is opened here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from edgekd.errors import EdgekdError
from edgekd.device_runner.common import RunnerError, resolve_shape


def check_model_file(path: Path, input_shape: Optional[Sequence[int]] = None) -> None:
    """EdgekdError unless `path` reads as a model whose single input takes `input_shape` (when given)."""
    declared = _declared_input(Path(path))
    if input_shape is None or declared is None:
        return
    try:
        resolve_shape(declared, list(input_shape))
    except RunnerError:
        shape = ",".join(map(str, input_shape))
        raise EdgekdError(f"--input-shape {shape} does not fit {path}, which takes {declared}") from None


def _declared_input(path: Path) -> Optional[list]:
    """What the backend that owns the file's format reads from it (edgekd.export.base.Exporter.declared_input)."""
    from edgekd.export import backend_for_file

    backend = backend_for_file(path)
    return backend.declared_input(path) if backend is not None else None
