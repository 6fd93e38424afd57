"""Bad input gets one line naming the file, the field path, the bad value and the closest valid name;
exit code 2; no traceback unless --debug; nothing written under runs/."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekd.cli.app import app
from tests.conftest import REPO, run_cli

BASE = (REPO / "recipes" / "_base" / "gaze.yaml").as_posix()
runner = CliRunner()

# (id, recipe text, extra CLI args, fragments the one-line error must contain)
CASES = [
    ("unknown-top-key", "task: gaze\nsed: 1\n", [], ["recipe.yaml", "sed", "did you mean 'seed'"]),
    ("unknown-nested-key", "task: gaze\ndistill:\n  train: {epoch: 3}\n", [],
     ["distill.train.epoch", "did you mean 'epochs'"]),
    ("wrong-type", "task: gaze\ndistill:\n  train: {epochs: ten}\n", [], ["distill.train.epochs", "'ten'"]),
    ("out-of-range", "task: gaze\ndistill: {mask_ratio: 1.5}\n", [], ["distill.mask_ratio", "1.5"]),
    ("unknown-task", "task: gaez\n", [], ["task", "'gaez'", "did you mean 'gaze'"]),
    ("missing-task", "seed: 3\n", [], ["task"]),
    ("unknown-kd-loss", "task: gaze\ndistill:\n  pairs: [{loss: masked_mes, student: stages.2, teacher: stages.2}]\n",
     [], ["distill.pairs[0].loss", "masked_mes", "did you mean 'masked_mse'"]),
    ("unknown-model", "task: gaze\ndistill: {arch: dft_gaze_studnt}\n", [],
     ["distill.arch", "dft_gaze_studnt", "did you mean 'dft_gaze_student'"]),
    ("bad-choice", "task: gaze\nfinetune: {trainable: adapter}\n", [],
     ["finetune.trainable", "'adapter'", "did you mean 'adapters'"]),
    ("bad-image-size", "task: gaze\ndata: {image_size: 50}\n", [], ["data.image_size", "multiple of 32", "50"]),
    ("yaml-syntax", "task: gaze\ndistill: [unclosed\n", [], ["recipe.yaml", "invalid YAML", "line"]),
    ("not-a-mapping", "- task\n- gaze\n", [], ["recipe.yaml", "mapping"]),
    ("missing-base", "_base: nowhere.yaml\ntask: gaze\n", [], ["nowhere.yaml", "not found"]),
    ("bad-set-syntax", f"_base: {BASE}\n", ["--set", "distill.train.epochs"], ["--set", "KEY.PATH=VALUE"]),
    ("set-unknown-path", f"_base: {BASE}\n", ["--set", "distill.train.epoks=2"],
     ["distill.train.epoks", "did you mean 'epochs'"]),
    ("unknown-stage", f"_base: {BASE}\n", ["--stages", "distil"], ["stage 'distil'", "did you mean 'distill'"]),
    ("empty-stages", f"_base: {BASE}\n", ["--stages", " , "], ["--stages names no stage"]),
    ("unknown-layer", f"_base: {BASE}\ndistill:\n  pairs: [{{loss: mse, student: stages.9, teacher: stages.2}}]\n",
     [], ["stages.9", "student layer"]),
    ("folder-without-root", "task: gaze\ndata: {source: folder}\n", [], ["data", "needs data.root"]),
    ("fallback-matches-nothing", f"_base: {BASE}\nquant:\n  fallback: [head.*, stages.7.*]\n", [],
     ["quant.fallback[1]", "'stages.7.*'", "matches no layer"]),
    ("unknown-backend", f"_base: {BASE}\nexport:\n  backends: {{tensorrtt: [fp16]}}\n", [],
     ["export.backends", "tensorrtt"]),
    ("bad-tensorrt-target", f"_base: {BASE}\nexport: {{tensorrt_target: ten}}\n", [],
     ["export.tensorrt_target", "ten"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_recipe_is_one_line_exit_2_and_writes_nothing(case, tmp_path: Path) -> None:
    _, text, extra, fragments = case
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["run", str(recipe), "--runs-dir", str(runs), *extra])
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "Traceback" not in result.output
    assert not runs.exists()


def test_missing_recipe_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "absent.yaml"), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "absent.yaml: recipe file not found" in result.stderr


def test_base_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("_base: b.yaml\ntask: gaze\n")
    (tmp_path / "b.yaml").write_text("_base: a.yaml\n")
    result = runner.invoke(app, ["recipe", "validate", str(tmp_path / "a.yaml")])
    assert result.exit_code == 2
    assert "cycle" in result.stderr and "a.yaml -> b.yaml -> a.yaml" in result.stderr


def test_real_process_exit_code_and_debug_traceback(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("task: gaze\nsed: 1\n")
    plain = run_cli("recipe", "validate", str(recipe))
    assert plain.returncode == 2
    assert plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr
    debug = run_cli("--debug", "recipe", "validate", str(recipe))
    assert debug.returncode != 0 and "Traceback" in debug.stderr
