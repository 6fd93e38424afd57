"""One process per run folder: an OS file lock on `runs/<recipe>/.lock`, held while `edgekd run` works.

Two runs of one recipe would both train and both write manifests, so a manifest could describe weights another
process wrote (two learning rates, one teacher). The lock is `flock` on an open file: the kernel drops it when the
process ends, however it ends (kill -9 included), so there is never a stale lock to clean up. The file also holds
who took it (pid, command, start time), which the refused run names. Read-only commands (`report`, `check`,
`profile` of existing files) do not take it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from edgekd.errors import EdgekdError

LOCK_NAME = ".lock"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock for the `with` block; an EdgekdError at once if another process holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no flock; edgekd's targets (Linux hosts, Pi, Jetson) all have it
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EdgekdError(f"{run_dir} is in use by another edgekd run ({_holder(path)}); wait for it to finish, "
                              f"or use another --runs-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_me()).encode())
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race a process opening it)


def _me() -> dict[str, object]:
    return {"pid": os.getpid(), "command": " ".join(["edgekd", *sys.argv[1:]]),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text())
        return f"pid {holder['pid']}, started {holder['started']}: {holder['command']}"
    except (OSError, ValueError, KeyError, TypeError):  # written a moment after the lock is taken
        return "pid unknown"
