"""A training stage killed with SIGKILL resumes from its last checkpoint to the same final weights
as an uninterrupted run with the same seed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from edgekd.artifacts import load_checkpoint
from tests.conftest import REPO, TINY_RECIPE

pytestmark = pytest.mark.slow
ARGS = ["--stages", "data,teacher", "--set", "teacher.train.epochs=4", "--set", "teacher.train.checkpoint_every_steps=1"]


def command(runs: Path) -> list[str]:
    return [sys.executable, "-m", "edgekd", "run", str(TINY_RECIPE), "--runs-dir", str(runs), *ARGS]


def test_kill_9_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    reference = subprocess.run(command(tmp_path / "ref"), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr

    stage = tmp_path / "run" / "tiny_gaze" / "teacher"
    checkpoint = stage / "checkpoints" / "last.pt"
    victim = subprocess.Popen(command(tmp_path / "run"), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # let it get a few steps further than the first checkpoint
    assert victim.poll() is None, "the run finished before it could be killed"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed_at = load_checkpoint(checkpoint)["global_step"]
    assert not (stage / "manifest.json").exists()
    assert not (stage / "teacher.pt").exists()

    resumed = subprocess.run(command(tmp_path / "run"), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from step {killed_at}" in resumed.stderr
    expected = load_checkpoint(tmp_path / "ref" / "tiny_gaze" / "teacher" / "teacher.pt")
    got = load_checkpoint(stage / "teacher.pt")
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
