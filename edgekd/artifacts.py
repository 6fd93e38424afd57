"""Artifacts on disk: atomic writes, sha256, and the per-stage manifest.

Every file edgekd writes goes through a temp file in the same folder and an `os.replace`, so a crash
leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from edgekd.errors import EdgekdError, first_line

MANIFEST_NAME = "manifest.json"
_VERSIONED_PACKAGES = ("edgekd", "torch", "timm", "numpy", "onnx")  # plus every backend's runtime packages


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get the usual file mode
        try:
            os.replace(tmp_path, path)
        except OSError as error:  # name the file the user asked for, not our temporary one
            raise OSError(error.errno, error.strerror, str(path)) from None
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """torch.save to a temporary name, renamed into place. Saved through a file handle: given a path, torch names
    the archive's records after the (random) temporary file, so equal weights gave files with different sha256."""
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
    return Path(path)


def atomic_savez(path: str | Path, **arrays: Any) -> Path:
    """numpy arrays to a compressed .npz, written to a temporary name and renamed."""
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return Path(path)


def load_checkpoint(path: str | Path) -> Any:
    """Load a checkpoint (tensors, numbers, strings, containers of them); never unpickles arbitrary objects.

    Every way a file can fail to be a checkpoint is one EdgekdError naming the file; a file inside a run
    folder also says how to start its stage over.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise EdgekdError(f"{path}: checkpoint not found" if not path.exists() else f"{path}: not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" not in str(error):  # not a pickle at all, rather than a refused object
            raise EdgekdError(f"{path}: not a readable PyTorch checkpoint, truncated or of another format"
                              f"{restart_hint(path)}") from error
        # weights_only refused an object: unpickling it would run code
        raise EdgekdError(f"{path}: refused: it holds Python objects other than tensors, and edgekd loads "
                          "checkpoints with weights_only=True (save a state_dict instead)") from error
    except (RuntimeError, EOFError, ValueError, KeyError, OSError) as error:
        raise EdgekdError(f"{path}: not a readable PyTorch checkpoint, truncated or of another format "
                          f"({first_line(error)}){restart_hint(path)}") from error


def load_state_into(model: Any, path: str | Path) -> Any:
    """`model.load_state_dict` from the checkpoint at `path`; a mismatch names the file and the first keys."""
    return apply_state(model, load_checkpoint(path), path)


def apply_state(model: Any, state: Any, path: str | Path) -> Any:
    """`model.load_state_dict(state)` for a state loaded from `path` (a bare state_dict or {'state_dict': ...})."""
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
        what = type(state).__name__ if not isinstance(state, dict) else "mapping with keys that are not names"
        raise EdgekdError(f"{path}: not a state_dict (a mapping of parameter names to tensors), but a {what}")
    try:
        return model.load_state_dict(state)
    except RuntimeError as error:
        raise EdgekdError(f"{path}: does not fit {type(model).__name__}: {_first_mismatch(str(error))}"
                          f"{restart_hint(Path(path))}") from error


def _first_mismatch(message: str) -> str:
    """The first line of torch's 'Error(s) in loading state_dict' after its header, shortened."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    detail = lines[1] if len(lines) > 1 else (lines[0] if lines else "mismatch")
    return detail if len(detail) <= 240 else detail[:237] + "..."


def restart_hint(path: Path) -> str:
    """For a file inside a run folder (one holding the run lock): how to start its stage over."""
    from edgekd.run_lock import LOCK_NAME

    path = Path(path).resolve()
    for parent in path.parents:
        if (parent / LOCK_NAME).is_file() and parent != path.parent:
            stage = path.relative_to(parent).parts[0]
            return f"; delete it, or rerun with --force --stages {stage} to start that stage over"
    return ""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: str | Path) -> dict[str, str]:
    """sha256 of every file under `root`, keyed by its path relative to `root` (manifest excluded)."""
    root = Path(root)
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME and not p.name.endswith(".tmp")
    }


def sha256_json(obj: Any) -> str:
    """A stable hash of a JSON-able object (config sections, input hash maps)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def package_versions() -> dict[str, str]:
    from edgekd.export import BACKENDS, backend_names  # here: the backends import this module

    runtime_packages = [m for n in backend_names() for m in BACKENDS.get(n).doctor_modules]
    versions = {}
    for name in dict.fromkeys([*_VERSIONED_PACKAGES, *runtime_packages]):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def arithmetic_host() -> dict[str, Any]:
    """What decides a stage's float rounding besides its inputs: the CPU, the kernels torch picked for it and
    torch's intra-op threads. Two runs of a stage give identical weights only where these agree
    (docs/recipes.md, "Reproducibility"); a stage manifest records them so a difference can be traced."""
    import sys

    from edgekd.profile.environment import cpu_model

    facts: dict[str, Any] = {"cpu": cpu_model()}
    torch = sys.modules.get("torch")  # only stages that ran torch: importing it here would cost seconds
    if torch is not None:
        facts.update(torch_cpu_kernels=torch.backends.cpu.get_cpu_capability(), torch_threads=torch.get_num_threads())
    return facts
