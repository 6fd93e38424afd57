"""The whole ibvs pipeline at tiny size through the CLI: teacher pipeline, episodes, closed-loop flights of
every controller (PyTorch and exported), pipeline latency, and a report that carries all of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.report.schema import load_report
from tests.conftest import REPO, run_tiny_recipe

pytestmark = pytest.mark.slow
RECIPE = REPO / "tests" / "recipes" / "tiny_ibvs.yaml"
STAGES = ("data", "teacher", "collect", "distill", "dagger", "evaluate", "qat", "export", "profile", "flight",
          "report")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return run_tiny_recipe(tmp_path_factory, RECIPE)


def test_every_stage_completes(run_dir: Path) -> None:
    for stage in STAGES:
        assert (run_dir / stage / "manifest.json").is_file(), stage


def test_teacher_flights_are_logged_in_the_documented_format(run_dir: Path) -> None:
    index = json.loads((run_dir / "collect" / "train" / "index.json").read_text())
    assert index["format"] == "edgekd-ibvs-episodes/1" and index["command_scale"] == [24, 9, 41]
    assert len(index["episodes"]) == 3
    for entry in index["episodes"]:
        assert (run_dir / "collect" / "train" / entry["file"]).is_file() and entry["frames"] > 0


def test_every_controller_flies_every_start(run_dir: Path) -> None:
    flights = json.loads((run_dir / "evaluate" / "flights.json").read_text())
    assert set(flights) == {"oracle", "teacher", "student", "student_bc"}
    for result in flights.values():
        assert len(result["flights"]) == 8 + 1  # the paper's 8 starts + 1 random
        assert result["paper_starts"]["flights"] == 8
    deployed = json.loads((run_dir / "flight" / "flights.json").read_text())
    assert {"student/onnxruntime/fp32", "student/onnxruntime/int8"} <= set(deployed)


def test_report_has_closed_loop_metrics_and_the_pipeline_ratio(run_dir: Path) -> None:
    report = load_report(run_dir / "report.json")
    assert report.task == "ibvs" and report.metric.name == "command_mae"
    models = {entry.role: entry for entry in report.models}
    assert set(models) == {"teacher", "student"}
    for role in ("teacher", "student"):
        assert set(models[role].metrics) == {"held_out"}
        for key in ("paper 8 starts: success rate", "paper 8 starts: error mean px", "all starts: iou"):
            assert key in models[role].outcomes
    outcome = models["student"].outcomes["paper 8 starts: success rate [onnxruntime int8]"]
    assert not outcome.lower_is_better and 0 <= outcome.value <= 1
    assert models["student"].outcomes["paper 8 starts: error mean px"].unit == "px"
    assert report.ratios["pipeline_latency_p50_onnxruntime_fp32"] > 0
    assert any("frame in → command out" in note for note in report.notes)
    teacher_rows = [d for d in report.deployments if d.role == "teacher"]
    assert teacher_rows and all(d.precision == "fp32" for d in teacher_rows)
