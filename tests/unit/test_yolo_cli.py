"""`edgekd yolo-compare` refuses bad input in one line (exit 2), with or without Ultralytics installed."""

from __future__ import annotations

import sys

from typer.testing import CliRunner

from edgekd.cli.app import app

runner = CliRunner()


def _one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    return lines[0]


def test_unknown_model_name_is_one_line_with_a_suggestion(tmp_path) -> None:
    result = runner.invoke(app, ["yolo-compare", "--model", "yolov8q", "--out", str(tmp_path / "x")])
    line = _one_line_error(result)
    assert "unknown YOLO model 'yolov8q'" in line and "did you mean" in line
    assert not (tmp_path / "x").exists()


def test_missing_ultralytics_names_the_extra_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # `import ultralytics` now raises ImportError
    result = runner.invoke(app, ["yolo-compare", "--imgsz", "64", "--out", str(tmp_path / "x")])
    line = _one_line_error(result)
    assert "pip install 'edgekd[yolo]'" in line and "AGPL" in line


def test_an_image_size_off_the_stride_grid_is_refused(tmp_path) -> None:
    line = _one_line_error(runner.invoke(app, ["yolo-compare", "--imgsz", "100", "--out", str(tmp_path / "x")]))
    assert "multiple of 32" in line
