"""The training stages run under `torchrun --nproc_per_node 2` (DDP over gloo on CPU)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgekd.artifacts import load_checkpoint
from tests.conftest import REPO, TINY_RECIPE

pytestmark = pytest.mark.slow


def test_tiny_distillation_under_torchrun(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    assert torchrun.exists() or shutil.which("torchrun")
    cmd = [
        str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "edgekd", "run", str(TINY_RECIPE),
        "--runs-dir", str(tmp_path), "--stages", "data,teacher,distill",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "tiny_gaze"
    for stage in ("data", "teacher", "distill"):
        assert (run / stage / "manifest.json").is_file(), stage
    # rank 0 alone logs and writes: each epoch line appears once, not once per rank
    assert result.stderr.count("distill epoch 1/1") == 1
    state = load_checkpoint(run / "distill" / "student.pt")
    assert any(key.startswith("stages.3") for key in state)
