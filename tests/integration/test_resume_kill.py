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


def kill_mid_stage(runs: Path) -> Path:
    """Start the teacher stage, SIGKILL it after its first checkpoints; the checkpoint it left."""
    checkpoint = runs / "tiny_gaze" / "teacher" / "checkpoints" / "last.pt"
    victim = subprocess.Popen(command(runs), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # let it get a few steps further than the first checkpoint
    assert victim.poll() is None, "the run finished before it could be killed"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    return checkpoint


def test_kill_9_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    reference = subprocess.run(command(tmp_path / "ref"), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr

    checkpoint = kill_mid_stage(tmp_path / "run")
    stage = checkpoint.parent.parent
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


def test_truncated_checkpoint_is_named_with_how_to_start_over_and_force_does(tmp_path: Path) -> None:
    """A checkpoint cut short (a full disk, a copy interrupted): one line naming it and the way out, exit 2."""
    checkpoint = kill_mid_stage(tmp_path / "run")
    checkpoint.write_bytes(checkpoint.read_bytes()[:400])

    broken = subprocess.run(command(tmp_path / "run"), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert broken.returncode == 2, broken.stderr[-2000:]
    assert "Traceback" not in broken.stderr
    line = broken.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and str(checkpoint) in line, line
    assert "not a readable PyTorch checkpoint" in line and "--force --stages teacher" in line, line

    again = subprocess.run(command(tmp_path / "run") + ["--force"], cwd=REPO, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" not in again.stderr
    assert (checkpoint.parent.parent / "teacher.pt").is_file()
