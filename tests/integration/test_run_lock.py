"""One process per run folder: a second `edgekd run` on a folder in use exits 2 at once naming the first, and
after kill -9 of the first the next run takes the lock straight away (the kernel dropped it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY_RECIPE

pytestmark = pytest.mark.slow


def edgekd_run(runs: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edgekd", "run", str(TINY_RECIPE), "--runs-dir", str(runs), *extra]


def test_a_second_run_is_refused_at_once_and_a_killed_run_leaves_no_lock(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    lock = runs / "tiny_gaze" / ".lock"
    first = subprocess.Popen(edgekd_run(runs, "--stages", "data,teacher", "--set", "teacher.train.epochs=500"),
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while first.poll() is None and time.monotonic() < deadline:
            if lock.is_file() and lock.read_text().startswith("{") and (runs / "tiny_gaze" / "teacher").is_dir():
                break
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the second could start"
        assert json.loads(lock.read_text())["pid"] == first.pid

        started = time.monotonic()
        second = subprocess.run(edgekd_run(runs, "--stages", "data"), cwd=REPO, capture_output=True, text=True,
                                timeout=120)
        took = time.monotonic() - started
        assert second.returncode == 2, second.stderr
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and "in use" in lines[0], second.stderr
        assert "Traceback" not in second.stderr
        assert took < 30, f"refused after {took:.1f} s"  # the interpreter's start-up is most of it
        assert not (runs / "tiny_gaze" / "teacher" / "manifest.json").exists()
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()

    after = subprocess.run(edgekd_run(runs, "--stages", "data"), cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert after.returncode == 0, after.stderr
    assert "up to date" in after.stderr  # the data stage the killed run completed is kept
