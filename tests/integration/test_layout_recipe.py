"""The whole layout pipeline at tiny size through the CLI: synthetic pages, teacher, the student without KD and
with FGD, their COCO AP, int8, export in both post-processing modes, and a report that carries all of it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from edgekd.report.schema import load_report
from tests.conftest import REPO, run_tiny_recipe

pytestmark = pytest.mark.slow
RECIPE = REPO / "tests" / "recipes" / "tiny_layout.yaml"
STAGES = ("data", "teacher", "student_plain", "distill", "evaluate", "qat", "export", "profile", "postprocess",
          "yolo", "report")
# The YOLO comparison needs the optional `yolo` extra (which `make test` installs); without it the run goes on
# without the comparison and the test of it is skipped.
HAS_ULTRALYTICS = importlib.util.find_spec("ultralytics") is not None


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    overrides = ("compare_yolo=yolov8n",) if HAS_ULTRALYTICS else ()
    return run_tiny_recipe(tmp_path_factory, RECIPE, overrides=overrides)


def test_every_stage_completes(run_dir: Path) -> None:
    for stage in STAGES:
        assert (run_dir / stage / "manifest.json").is_file(), stage


def test_data_is_coco_and_training_stages_keep_their_checkpoints(run_dir: Path) -> None:
    train = json.loads((run_dir / "data" / "annotations" / "train.json").read_text())
    assert len(train["images"]) == 24 and train["annotations"]
    assert [c["name"] for c in train["categories"]] == ["text", "title", "list", "table", "figure"]
    for stage in ("teacher", "student_plain", "distill"):
        assert (run_dir / stage / "checkpoints" / "last.pt").is_file(), stage
    distill = json.loads((run_dir / "distill" / "metrics.json").read_text())
    assert distill["kd"] == "fgd" and distill["scale"] > 0 and distill["history"][0]["kd"] > 0


def test_all_three_models_are_scored_on_the_validation_split(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert metrics["images"] == 8
    for key in ("teacher", "student_plain", "student"):
        assert 0 <= metrics[key]["AP50"] <= 1 and 0 <= metrics[key]["AP"] <= metrics[key]["AP50"]
        assert set(metrics[key]["per_class"]) == {"text", "title", "list", "table", "figure"}


def test_both_postprocessing_modes_are_exported_and_timed(run_dir: Path) -> None:
    modes = json.loads((run_dir / "postprocess" / "modes.json").read_text())
    assert modes["configured"] == "host"
    assert (run_dir / modes["files"]["graph"]).is_file() and (run_dir / modes["files"]["host"]).is_file()
    assert modes["p50_ms"]["host"] > 0 and modes["p50_ms"]["graph"] > 0
    assert modes["AP50"]["host"] == pytest.approx(modes["AP50"]["graph"], abs=1e-6)


def test_report_has_both_roles_the_plain_student_and_the_mode_comparison(run_dir: Path) -> None:
    report = load_report(run_dir / "report.json")
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert report.task == "layout" and report.metric.name == "AP50" and not report.metric.lower_is_better
    models = {entry.role: entry for entry in report.models}
    assert set(models) == {"teacher", "student"}
    assert models["teacher"].metrics == {"val": pytest.approx(metrics["teacher"]["AP50"])}
    assert models["student"].metrics == {"val": pytest.approx(metrics["student"]["AP50"])}
    plain = models["student"].outcomes["AP50 without KD"]
    assert plain.value == pytest.approx(metrics["student_plain"]["AP50"]) and not plain.lower_is_better
    assert "AP@[.5:.95]" in models["teacher"].outcomes and "AP@[.5:.95] without KD" in models["student"].outcomes
    assert report.ratios["postprocess_graph_over_host_p50"] > 0
    assert any("NMS in the graph" in note for note in report.notes)
    assert any("without KD" in note for note in report.notes)
    assert {d.precision for d in report.deployments if d.role == "teacher"} == {"fp32"}


@pytest.mark.skipif(not HAS_ULTRALYTICS, reason="the optional yolo extra (Ultralytics) is not installed")
def test_yolo_is_timed_beside_the_exported_models(run_dir: Path) -> None:
    yolo = json.loads((run_dir / "yolo" / "yolo_latency.json").read_text())
    assert yolo["model"] == "yolov8n" and yolo["input"] == [1, 3, 128, 96]
    assert set(yolo["p50_ms"]) == {"teacher", "student", "yolov8n"} and min(yolo["p50_ms"].values()) > 0
    assert (run_dir / yolo["files"]["yolov8n"]).is_file()
    low, high = yolo["yolo_over_student_p50_interval"]
    assert low <= yolo["yolo_over_student_p50"] <= high
    report = load_report(run_dir / "report.json")
    assert report.ratios["yolov8n_over_student_p50"] == pytest.approx(yolo["yolo_over_student_p50"])
    assert any("yolov8n (Ultralytics" in note for note in report.notes)
