"""report.html: self-contained, every table and plot present, hostile text escaped; predictions in the schema."""

import json
import re

import pytest

from edgekd.profile.stats import LatencyStats
from edgekd.report.html import to_html
from edgekd.report.plots import Point, pareto_front, pareto_points
from edgekd.report.predictions import PredictionSource, predict_files
from edgekd.report.render import write_report
from edgekd.report.schema import Report, load_report
from tests.unit.test_report import ENV, make_report

HOSTILE = "<script>alert('x')</script>"


def timed(p50: float, precision: str = "fp32", runtime: str = "onnxruntime", n: int = 40) -> dict:
    samples = [p50 * (0.9 + 0.2 * ((i * 7) % n) / (n - 1)) for i in range(n)]  # median exactly p50
    return {
        "mode": "measured-local", "runtime": runtime, "model": "m.onnx", "sha256": "0" * 64, "precision": precision,
        "threads": 2, "batch_size": 1, "input_shape": [1, 3, 32, 32], "warmup": 5, "runs": n,
        "stats": LatencyStats.from_samples(samples).model_dump(), "samples_ms": samples, "cold_start_ms": 12.0,
        "peak_rss_mb": 3.5, "environment": ENV,
    }


def deployment(role: str, variant: str, backend: str, precision: str, metric: float, p50: float | None,
               **extra) -> dict:
    runtime = "onnxruntime" if backend == "onnx" else backend
    return {"role": role, "variant": variant, "backend": backend, "runtime": runtime, "precision": precision,
            "status": "passed", "path": f"export/{backend}/{role}.{precision}", "size_bytes": 1_000_000,
            "metric": metric, "metric_delta_vs_float": metric - 2.1,
            "latency": None if p50 is None else timed(p50, precision, runtime), **extra}


def prediction(role: str, variant: str, device: str, precision: str, latency_ms: float, metric: float) -> dict:
    return {"role": role, "variant": variant, "source": f"export/onnx/{role}.onnx", "precision": precision,
            "compute_precision": precision, "device": device, "runtime": "ncnn", "unit": "cpu", "threads": 4,
            "latency_ms": latency_ms, "metric": metric, "calibrated": True, "calibration_group": f"{device}/ncnn/cpu/{precision}",
            "calibration_models": ["ResNet-18"], "fit_error": {"median_abs_pct": 17.0, "n": 2},
            "lomo_error": {"median_abs_pct": 40.0, "n": 2}}


def rich_report(**changes) -> Report:
    """make_report plus deployments with per-run samples, predictions, a quantization summary and notes."""
    data = {
        "recipe": f"tiny {HOSTILE}",
        "deployments": [
            deployment("teacher", "float", "onnx", "fp32", 2.0, 8.0),
            deployment("student", "float", "onnx", "fp32", 2.1, 2.0, speedup_vs_fp32=1.0),
            deployment("student", "qat", "onnx", "int8", 2.3, 1.5, speedup_vs_fp32=1.33),
            deployment("student", "ptq", "onnx", "int8", 2.6, None),
            deployment("student", "float", "openvino", "fp32", 2.1, 1.8, speedup_vs_fp32=1.0),
            deployment("student", "qat", "tensorrt", "int8", 2.3, None, status="failed", reason=f"no {HOSTILE}"),
        ],
        "predictions": [
            prediction("student", "float", "rpi5", "fp32", 6.5, 2.1),
            prediction("teacher", "float", "rpi5", "fp32", 30.0, 2.0),
            prediction("student", "qat", "rpi4", "int8", 12.0, 2.3),
            prediction("student", "float", f"board{HOSTILE}", "fp32", 3.0, 2.1),  # a name that reaches the plot
        ],
        "deploy": {"onnxruntime": {"precision": "int8", "reason": "fastest measured"}},
        "quantization": {"enabled": True, "float": 2.1, "ptq": 2.6, "qat": 2.3, "quantizers": 42, "eval_samples": 24,
                         "sensitivity_top": [{"module": "stages.0.conv", "cost": 0.21}]},
        "notes": [f"note with {HOSTILE} & ampersand"],
        **changes,
    }
    return make_report(**data)


@pytest.fixture(scope="module")
def page() -> str:
    return to_html(rich_report())


def test_page_is_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<link" not in page and "<script" not in page and "@import" not in page


def test_page_has_every_table(page: str) -> None:
    for heading in ("Teacher vs student vs int8", "Deployments", "Deploy choice per runtime", "Quantization",
                    "Parity (exported file vs PyTorch)", "Environment", "Notes", "Accuracy vs latency (Pareto)",
                    "Latency distributions (measured)"):
        assert f"<h2>{heading}</h2>" in page, heading
    assert "<th>student int8 (QAT)</th>" in page
    assert "<td class=\"reason\">fastest measured</td>" in page and "<td>stages.0.conv</td>" in page
    assert page.count("<tr") >= 30
    assert '<tr class="bad">' in page  # the failed TensorRT row stands out
    assert "Test CPU 3000" in page


def test_page_marks_measured_and_predicted(page: str) -> None:
    assert "1.500 (measured-local)" in page  # int8 column, p50 on onnxruntime, with how it was obtained
    assert '<tr class="predicted">' in page and "<td>predicted</td>" in page
    assert "17% (n=2) / 40% (n=2)" in page  # calibration error next to every predicted number


def test_page_has_both_plots_inline(page: str) -> None:
    for anchor in ("plot-pareto", "plot-latency"):
        figure = re.search(rf'<figure class="plot" id="{anchor}">(.*?)</figure>', page, re.S)
        assert figure and figure.group(1).lstrip().startswith("<svg"), anchor
    pareto = re.search(r'id="plot-pareto">(.*?)</figure>', page, re.S).group(1)
    assert 'aria-label="Accuracy vs latency' in pareto and "predicted points hollow" in pareto
    assert "Hollow markers: predicted" in pareto  # the caption says it in words, not only the marker style


def test_hostile_text_is_escaped(page: str) -> None:
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&amp; ampersand" in page


def test_page_without_samples_or_predictions_still_renders() -> None:
    page = to_html(make_report())
    assert "no per-run latency samples" in page and "No predicted latencies" in page


def test_write_report_writes_html_and_predictions_round_trip(tmp_path) -> None:
    report = rich_report()
    paths = write_report(report, tmp_path)
    assert paths["html"] == tmp_path / "report.html" and paths["html"].read_text().startswith("<!DOCTYPE html>")
    loaded = load_report(paths["json"])
    assert loaded == report and loaded.predictions[0].mode == "predicted"


def test_version_2_report_loads_with_no_predictions(tmp_path) -> None:
    data = make_report().model_dump(mode="json")
    data["schema_version"] = 2
    del data["predictions"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert load_report(tmp_path / "old.json").predictions == []


def test_pareto_points_and_front() -> None:
    points = pareto_points(rich_report())
    assert sum(p.measured for p in points) == 4 and sum(not p.measured for p in points) == 4
    assert {p.device for p in points if p.measured} == {"this host"}
    grid = [Point(str(i), "d", "ncnn", "fp32", lat, metric, True)
            for i, (lat, metric) in enumerate([(1, 5.0), (2, 4.0), (3, 4.5), (4, 1.0), (5, 1.0)])]
    assert [p.label for p in pareto_front(grid, lower_is_better=True)] == ["0", "1", "3"]
    assert [p.label for p in pareto_front(grid, lower_is_better=False)] == ["0"]


def _conv_onnx(path) -> None:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    weight = numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 32, 32])], [weight])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_predict_files_predicts_calibrated_pairs_and_fails_softly(tmp_path) -> None:
    _conv_onnx(tmp_path / "student.onnx")
    # int8 has the fewest calibrated groups: the real predictor on each, in about a second
    sources = [PredictionSource("student", "qat", "student.onnx", "int8", 2.1),
               PredictionSource("teacher", "qat", "missing.onnx", "int8", 2.0)]
    predictions, notes = predict_files(sources, tmp_path)
    assert predictions and all(p.calibrated and p.latency_ms > 0 and p.role == "student" for p in predictions)
    assert {p.precision for p in predictions} == {"int8"} and all(p.metric == 2.1 for p in predictions)
    assert {"rpi4", "rpi5", "jetson-orin-nano-super"} <= {p.device for p in predictions}
    assert notes and all("missing.onnx" in note for note in notes)
