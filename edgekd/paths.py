"""Paths a user names: text files read with one clear error, outputs checked writable before any work starts.

A command that would fail writing its result only after minutes of exporting or timing wastes the user's time
and may leave half its files behind, so every output option is checked up front (docs/refusals.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from edgekd.errors import EdgekdError, first_line


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of `path`; a missing file, a folder or bytes that are not UTF-8 are one EdgekdError."""
    path = Path(path)
    if not path.exists():
        raise EdgekdError(f"{path}: {what} not found")
    if path.is_dir():
        raise EdgekdError(f"{path}: is a folder, expected a {what}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise EdgekdError(f"{path}: not UTF-8 text (byte {error.start}); save the {what} as UTF-8") from None
    except OSError as error:
        raise EdgekdError(f"{path}: cannot read the {what}: {error.strerror or first_line(error)}") from None


def check_output_file(path: str | Path | None, option: str) -> None:
    """Refuse an output file path that cannot be written: an existing folder, or a parent that is a file."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise EdgekdError(f"{option} {path}: is a folder; give a file path")
    _check_parents(path.parent, option, path)


def check_output_dir(path: str | Path | None, option: str) -> None:
    """Refuse an output folder path that cannot be created or written: an existing file, or a parent that is one."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise EdgekdError(f"{option} {path}: is a file, expected a folder")
    _check_parents(path if path.exists() else path.parent, option, path)


def _check_parents(folder: Path, option: str, target: Path) -> None:
    """The nearest existing ancestor of `folder` must be a folder that this process may write in."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise EdgekdError(f"{option} {target}: {candidate} is a file, not a folder")
            if not os.access(candidate, os.W_OK | os.X_OK):
                raise EdgekdError(f"{option} {target}: {candidate} is not writable")
            return
