"""Report schema round trip, loading errors, ratios and the Markdown rendering."""

import io
import json

import pytest

from edgekd.errors import EdgekdError
from edgekd.profile.stats import LatencyStats
from edgekd.report.html import to_html
from edgekd.report.render import ratios, to_markdown, write_report
from edgekd.report.schema import SCHEMA_VERSION, ParityEntry, Report, load_report

ENV = {"cpu": "Test CPU 3000", "logical_cores": 2, "usable_cores": 2, "os": "Linux", "python": "3.11.0",
       "packages": {"onnxruntime": "1.20.0", "torch": "2.5.0"}}


def latency(p50: float, threads: int = 2) -> dict:
    samples = [p50 * 0.9, p50, p50, p50 * 1.2]
    return {
        "model": "m.onnx", "sha256": "0" * 64, "precision": "fp32", "threads": threads, "batch_size": 1,
        "input_shape": [1, 3, 32, 32], "warmup": 5, "runs": 4, "stats": LatencyStats.from_samples(samples).model_dump(),
        "cold_start_ms": 12.0, "peak_rss_mb": 3.5, "environment": ENV,
    }


def model(role: str, params: int, macs: int, size: int, metrics: dict, p50: float) -> dict:
    return {"role": role, "arch": f"{role}-net", "parameters": params, "trainable_parameters": params, "macs": macs,
            "file_size_bytes": size, "metrics": metrics, "latency": {"onnxruntime": latency(p50)}}


def make_report(**changes) -> Report:
    data = {
        "recipe": "tiny", "task": "gaze", "created": "2025-01-01T00:00:00+00:00", "edgekd_version": "0.1.0",
        "config_hash": "abc123def4567890",
        "metric": {"name": "angular error", "unit": "deg", "lower_is_better": True},
        "models": [
            model("teacher", 12_700_000, 4_100_000_000, 50_800_000, {"general": 2.0}, 8.0),
            model("student", 1_000_000, 1_000_000_000, 4_000_000, {"general": 2.1, "personalized": 1.6}, 2.0),
        ],
        "parity": [{"role": "student", "backend": "onnxruntime", "precision": "fp32", "max_abs_diff": 3e-6,
                    "max_rel_diff": 1e-5, "metric_torch": 2.1, "metric_runtime": 2.1, "metric_delta": 0.0,
                    "passed": True}],
        "environment": ENV,
        **changes,
    }
    report = Report.model_validate(data)
    report.ratios = ratios(report)
    return report


def test_json_round_trip(tmp_path) -> None:
    report = make_report(notes=["synthetic data"])
    paths = write_report(report, tmp_path)
    assert set(paths) == {"json", "md", "html"} and all(p.is_file() for p in paths.values())
    loaded = load_report(paths["json"])
    assert loaded == report
    assert loaded.schema_version == SCHEMA_VERSION
    assert loaded.model("student").latency["onnxruntime"].stats.p50_ms == pytest.approx(2.0)


def test_ratios_teacher_over_student() -> None:
    found = make_report().ratios
    assert found["parameters"] == pytest.approx(12.7)
    assert found["macs"] == pytest.approx(4.1)
    assert found["file_size"] == pytest.approx(12.7)
    assert found["latency_p50_onnxruntime"] == pytest.approx(4.0)


def test_ratios_need_both_roles() -> None:
    report = make_report()
    report.models = [m for m in report.models if m.role == "student"]
    assert ratios(report) == {}


def test_markdown_has_table_rows_ratio_and_parity() -> None:
    text = to_markdown(make_report(notes=["synthetic data"]))
    assert "|  | teacher | student |" in text
    assert "| parameters | 12.7 M | 1 M |" in text
    assert "| MACs | 4.1 G | 1 G |" in text
    assert "| angular error, general (deg, lower is better) | 2 | 2.1 |" in text
    assert "| angular error, personalized (deg, lower is better) | - | 1.6 |" in text
    assert "| latency p50, onnxruntime (ms) | 8 | 2 |" in text
    assert "latency p90, onnxruntime (ms)" in text
    assert "12.7× fewer parameters" in text and "4.1× fewer MACs" in text
    assert "4.0× faster (p50, onnxruntime, 2 threads)" in text
    assert "| student | onnxruntime | fp32 | 3.00e-06 |" in text
    assert "Test CPU 3000" in text and "onnxruntime 1.20.0" in text
    assert "- synthetic data" in text


def test_report_printed_to_a_log_or_pipe_keeps_every_number() -> None:
    from rich.console import Console

    from edgekd.cli.run import print_report

    log = Console(file=io.StringIO())  # not a terminal: 80 columns, as for a log file or a pipe
    print_report(log, to_markdown(make_report()))
    printed = log.file.getvalue()
    assert "| student | onnxruntime | fp32 | 3.00e-06 | 1.00e-05 | 2.1 | 2.1 | +0.00e+00 | yes |" in printed
    assert "…" not in printed


def test_parity_rows_show_the_gated_statistic_beside_the_maximum() -> None:
    int8_row = {"role": "student (qat)", "backend": "openvino", "precision": "int8", "max_abs_diff": 128.0,
                "max_rel_diff": 9.0, "metric_torch": 0.959, "metric_runtime": 0.957, "metric_delta": -0.002,
                "error_stat": "median", "abs_diff_stat": 3.7, "passed": True}
    report = make_report()
    report.parity.append(ParityEntry.model_validate(int8_row))
    text = to_markdown(report)
    assert "| student | onnxruntime | fp32 | 3.00e-06 |" in text  # max gated: nothing added
    assert "| student (qat) | openvino | int8 | 1.28e+02 (median 3.70e+00 gated) |" in text
    assert "1.28e+02 (median 3.70e+00 gated)" in to_html(report)


def test_markdown_says_slower_when_the_student_is_slower() -> None:
    report = make_report()
    report.ratios = {"latency_p50_onnxruntime": 0.5}
    assert "2.0× slower" in to_markdown(report)


def test_load_report_errors_are_one_line(tmp_path) -> None:
    with pytest.raises(EdgekdError, match="report not found"):
        load_report(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(EdgekdError, match="not valid JSON"):
        load_report(bad)
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**make_report().model_dump(mode="json"), "schema_version": 99}))
    with pytest.raises(EdgekdError, match="schema_version 99"):
        load_report(future)
    broken = tmp_path / "broken.json"
    data = make_report().model_dump(mode="json")
    del data["metric"]["unit"]
    broken.write_text(json.dumps(data))
    with pytest.raises(EdgekdError, match="metric.unit") as info:
        load_report(broken)
    assert "\n" not in str(info.value)


def test_ratio_line_says_same_instead_of_one_times() -> None:
    report = make_report()
    report.ratios = {"macs": 1.01, "latency_p50_onnxruntime": 1.0}
    text = to_markdown(report)
    assert "as many MACs" in text and "same speed (p50, onnxruntime, 2 threads)" in text


def test_cpu_model_from_cpuinfo_per_architecture() -> None:
    from edgekd.profile.environment import cpu_model

    x86 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
    rpi = "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd0b\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"
    assert cpu_model(x86) == "AMD EPYC 7B13"
    assert cpu_model(rpi) == "Raspberry Pi 5 Model B Rev 1.0"


def test_markdown_lists_predicted_latencies_as_predicted() -> None:
    from edgekd.report.schema import Prediction

    report = make_report()
    assert "Predicted latency" not in to_markdown(report)
    common = {"source": "export/onnx/student.onnx", "compute_precision": "fp32", "calibration_group": "g"}
    report.predictions = [
        Prediction(role="student", variant="float", precision="fp32", device="rpi5", runtime="onnxruntime",
                   unit="cpu", latency_ms=12.186, calibrated=True, **common),
        Prediction(role="student", variant="qat", precision="int8", device="jetson-orin-nano", runtime="ncnn",
                   unit="gpu", latency_ms=2.05, calibrated=False, **common),
    ]
    text = to_markdown(report)
    assert "## Predicted latency (calibrated device model, not measured)" in text
    assert "| student (float) | rpi5 | onnxruntime | cpu | fp32 (fp32) | 12.186 | yes |" in text
    assert "| student (qat) | jetson-orin-nano | ncnn | gpu | int8 (fp32) | 2.050 | **NO** |" in text
    assert text.index("jetson-orin-nano") < text.index("| rpi5 |")      # sorted by device
