"""`edgekd recipe validate`: every file given is checked, and checking needs no optional extra."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from edgekd.cli.app import app
from tests.conftest import REPO, TINY_RECIPE, run_cli

runner = CliRunner()
LAYOUT = REPO / "recipes" / "layout" / "picodet_fgd.yaml"  # names YOLOs (compare_yolo) from the `yolo` extra


def test_every_file_is_validated_and_each_bad_one_gets_a_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("task: gaze\ndistill: [unclosed\n")
    absent_checkpoint = tmp_path / "absent_checkpoint.yaml"
    absent_checkpoint.write_text("task: gaze\nteacher: {checkpoint: absent.pt}\n")
    files = [broken, TINY_RECIPE, absent_checkpoint, REPO / "recipes" / "quickstart.yaml"]
    result = runner.invoke(app, ["recipe", "validate", *map(str, files)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 2 and "broken.yaml" in errors[0] and "invalid YAML" in errors[0], errors
    assert "absent_checkpoint.yaml" in errors[1] and "teacher.checkpoint" in errors[1] and "absent.pt" in errors[1]
    ok = [line for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert [line.split()[1] for line in ok] == [str(TINY_RECIPE), str(files[3])]


def test_all_good_files_exit_0() -> None:
    result = runner.invoke(app, ["recipe", "validate", str(TINY_RECIPE), str(REPO / "recipes" / "quickstart.yaml")])
    assert result.exit_code == 0 and result.stdout.count("ok ") == 2, result.output


def _without_ultralytics(tmp_path: Path) -> dict[str, str]:
    stub = tmp_path / "stub" / "ultralytics"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('ultralytics is not installed')\n")
    return {"PYTHONPATH": str(stub.parent)}


def test_a_recipe_naming_a_yolo_validates_without_ultralytics(tmp_path: Path) -> None:
    result = run_cli("recipe", "validate", str(LAYOUT), env=_without_ultralytics(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_running_it_without_ultralytics_stops_before_any_stage(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = run_cli("run", str(LAYOUT), "--runs-dir", str(runs), env=_without_ultralytics(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "pip install 'edgekd[yolo]'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (runs / "picodet_fgd" / "data").exists()
