"""The whole gaze pipeline at tiny size through the CLI: every stage, the report, skip-on-rerun, the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.artifacts import sha256_file
from edgekd.report.schema import load_report
from tests.conftest import TINY_RECIPE, run_cli

pytestmark = pytest.mark.slow
STAGES = ("data", "teacher", "distill", "finetune", "personalize", "qat", "export", "profile", "report")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, object]:
    runs = tmp_path_factory.mktemp("runs")
    result = run_cli("run", str(TINY_RECIPE), "--runs-dir", str(runs), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return runs, result


def test_every_stage_writes_a_manifest_that_hashes_its_outputs(finished_run) -> None:
    runs, _ = finished_run
    for stage in STAGES:
        manifest = json.loads((runs / "tiny_gaze" / stage / "manifest.json").read_text())
        assert manifest["stage"] == stage and manifest["outputs"], stage
        for rel, digest in manifest["outputs"].items():
            assert sha256_file(runs / "tiny_gaze" / stage / rel) == digest, (stage, rel)


def test_report_compares_teacher_and_student(finished_run) -> None:
    runs, result = finished_run
    report = load_report(runs / "tiny_gaze" / "report.json")
    models = {entry.role: entry for entry in report.models}
    assert set(models) == {"teacher", "student"}
    assert 3_000_000 < models["teacher"].parameters < 4_000_000
    assert models["student"].parameters < 300_000
    for entry in models.values():
        assert set(entry.metrics) >= {"general", "new_subjects", "new_subjects_personalized"}
        assert entry.latency["onnxruntime"].stats.p50_ms > 0
    assert report.ratios["parameters"] > 10 and report.ratios["macs"] > 3
    assert all(p.passed for p in report.parity if "ptq" not in p.role)
    assert (runs / "tiny_gaze" / "report.md").is_file()
    assert "latency p50" in result.stdout  # the table is printed at the end of `edgekd run`


def test_rerun_skips_every_stage(finished_run) -> None:
    runs, _ = finished_run
    again = run_cli("run", str(TINY_RECIPE), "--runs-dir", str(runs))
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("up to date, skipped") == len(STAGES)


def test_check_passes_against_itself_and_fails_against_a_better_baseline(finished_run, tmp_path: Path) -> None:
    runs, _ = finished_run
    report = runs / "tiny_gaze" / "report.json"
    assert run_cli("check", str(report), "--baseline", str(report)).returncode == 0
    better = json.loads(report.read_text())
    for entry in better["models"]:
        entry["metrics"]["general"] -= 1.0  # the baseline was a degree better: this run regressed
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(better))
    gate = run_cli("check", str(report), "--baseline", str(baseline), "--max-metric-drop", "0.5")
    assert gate.returncode == 1, gate.stdout
    assert "FAIL" in gate.stdout


def test_every_backend_and_precision_has_a_row_with_parity_and_latency(finished_run) -> None:
    runs, result = finished_run
    report = load_report(runs / "tiny_gaze" / "report.json")
    rows = {(d.role, d.variant, d.backend, d.precision): d for d in report.deployments}
    runnable = [("student", "float", "onnx", "fp32"), ("student", "qat", "onnx", "int8"),
                ("student", "float", "openvino", "fp32"), ("student", "float", "openvino", "fp16"),
                ("student", "qat", "openvino", "int8")]
    for key in runnable:
        row = rows[key]
        assert row.status == "passed" and row.metric is not None and row.max_abs_diff is not None, key
        assert row.latency is not None and row.latency.stats.p50_ms > 0, key  # timed side by side
        assert row.size_bytes > 0 and row.metric_delta_vs_float is not None, key
    for precision in ("fp16", "int8"):  # no TensorRT here: the on-device bundle, linted for the target
        bundle = rows[("student", "float" if precision == "fp16" else "qat", "tensorrt", precision)]
        assert bundle.status == "bundle", bundle.reason
        assert (runs / "tiny_gaze" / bundle.path).is_file()
    assert rows[("student", "ptq", "onnx", "int8")].metric is not None  # the PTQ baseline is reported
    assert {"onnxruntime", "openvino"} <= set(report.deploy)
    assert report.deploy["onnxruntime"].precision in ("fp32", "int8")
    assert {"float", "ptq", "qat"} <= set(report.quantization)
    assert (runs / "tiny_gaze" / "qat" / "sensitivity.json").is_file()
    assert "Deployments" in result.stdout and "Deploy choice" in result.stdout


def test_qat_and_export_commands_resume_a_finished_run(finished_run) -> None:
    runs, _ = finished_run
    qat = run_cli("qat", str(TINY_RECIPE), "--runs-dir", str(runs))
    assert qat.returncode == 0, qat.stderr[-2000:]
    assert "PTQ int8" in qat.stdout and "QAT int8" in qat.stdout
    assert "qat: up to date, skipped" in qat.stderr
    export = run_cli("export", str(TINY_RECIPE), "--runs-dir", str(runs))
    assert export.returncode == 0, export.stderr[-2000:]
    assert "artifacts.json" in export.stdout and "export: up to date, skipped" in export.stderr
