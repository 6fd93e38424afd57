"""The layout recipe with `teacher.yolo`: a YOLOv8n trained with Ultralytics' loss teaches the PicoDet student
through FGD on the shared strides, is scored like any teacher and exported and parity-checked beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.report.schema import load_report
from tests.conftest import REPO, run_tiny_recipe, require_yolo_extra

require_yolo_extra()
pytestmark = pytest.mark.slow
RECIPE = REPO / "tests" / "recipes" / "tiny_layout.yaml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    # int8 is the student's business and is covered by the PicoDet-teacher run; leaving it out keeps this short.
    return run_tiny_recipe(tmp_path_factory, RECIPE, overrides=("teacher.yolo=yolov8n", "quant.enabled=false"))


def test_the_yolo_teacher_trains_on_ultralytics_loss_and_teaches_through_fgd(run_dir: Path) -> None:
    teacher = json.loads((run_dir / "teacher" / "metrics.json").read_text())
    assert teacher["arch"] == "yolov8n" and set(teacher["history"][0]) >= {"box", "cls", "dfl"}
    distill = json.loads((run_dir / "distill" / "metrics.json").read_text())
    assert distill["teacher"] == "yolov8n" and distill["kd"] == "fgd" and distill["history"][0]["kd"] > 0


def test_the_yolo_teacher_is_scored_exported_and_parity_checked_like_a_picodet(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert 0 <= metrics["teacher"]["AP50"] <= 1 and set(metrics["teacher"]["per_class"]) == {
        "text", "title", "list", "table", "figure"}
    report = load_report(run_dir / "report.json")
    assert {m.role: m.arch for m in report.models} == {"teacher": "yolov8n", "student": "picodet_lcnet_x0_25"}
    teacher_checks = [p for p in report.parity if p.role == "teacher"]
    assert {p.backend for p in teacher_checks} >= {"onnxruntime", "openvino"}
    assert all(p.passed for p in teacher_checks)
