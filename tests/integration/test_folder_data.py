"""A user's data folder in the documented format drives the pipeline like the synthetic generator does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TINY_RECIPE, run_cli

pytestmark = pytest.mark.slow


def test_teacher_trains_on_a_user_folder(tmp_path: Path) -> None:
    generated = run_cli("run", str(TINY_RECIPE), "--runs-dir", str(tmp_path / "gen"), "--stages", "data")
    assert generated.returncode == 0, generated.stderr[-2000:]
    folder = tmp_path / "gen" / "tiny_gaze" / "data"

    args = ["--set", "data.source=folder", "--set", f"data.root={folder}", "--set", "teacher.train.epochs=1"]
    result = run_cli("run", str(TINY_RECIPE), "--runs-dir", str(tmp_path / "user"), "--stages", "data,teacher", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    data_stage = tmp_path / "user" / "tiny_gaze" / "data"
    source = json.loads((data_stage / "source.json").read_text())
    assert source["root"] == str(folder.resolve())
    assert not list(data_stage.rglob("*.png"))  # the user's images are read in place, not copied
    metrics = json.loads((tmp_path / "user" / "tiny_gaze" / "teacher" / "metrics.json").read_text())
    assert metrics["general"] > 0


def test_a_missing_folder_is_one_line_exit_2(tmp_path: Path) -> None:
    args = ["--set", "data.source=folder", "--set", f"data.root={tmp_path / 'nowhere'}"]
    result = run_cli("run", str(TINY_RECIPE), "--runs-dir", str(tmp_path / "runs"), "--stages", "data", *args)
    assert result.returncode == 2, result.stderr
    assert "nowhere" in result.stderr and "data.root" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
