"""The regression gate: metric drops and latency ratios against budgets, missing data fails."""

import pytest

from edgekd.errors import EdgekdError
from edgekd.profile.stats import LatencyStats
from edgekd.report.compare import compare_reports
from edgekd.report.schema import Report


def latency(p50: float, cpu: str = "Test CPU") -> dict:
    return {
        "model": "m.onnx", "sha256": "0" * 64, "precision": "fp32", "threads": 2, "batch_size": 1,
        "input_shape": [1, 3, 32, 32], "warmup": 5, "runs": 3,
        "stats": LatencyStats.from_samples([p50, p50, p50]).model_dump(),
        "cold_start_ms": 10.0, "peak_rss_mb": None, "environment": {"cpu": cpu},
    }


def report(metrics: dict | None = None, p50: float = 2.0, lower_is_better: bool = True, cpu: str = "Test CPU",
           roles: tuple = ("teacher", "student")) -> Report:
    metrics = {"general": 2.0, "personalized": 1.5} if metrics is None else metrics
    models = [
        {"role": role, "arch": "net", "parameters": 10, "trainable_parameters": 10, "macs": 100,
         "file_size_bytes": 1000, "metrics": dict(metrics), "latency": {"onnxruntime": latency(p50, cpu)}}
        for role in roles
    ]
    return Report.model_validate({
        "recipe": "tiny", "task": "gaze", "created": "2025-01-01", "edgekd_version": "0.1.0", "config_hash": "h",
        "metric": {"name": "err", "unit": "deg", "lower_is_better": lower_is_better}, "models": models,
        "environment": {"cpu": cpu},
    })


def check(current: Report, baseline: Report, drop: float = 0.1, ratio: float = 1.2):
    return compare_reports(current, baseline, max_metric_drop=drop, max_latency_ratio=ratio)


def failed_rows(comparison) -> list[tuple[str, str]]:
    return [(row.role, row.quantity) for row in comparison.rows if not row.ok]


def test_identical_reports_pass() -> None:
    comparison = check(report(), report(), drop=0.0)
    assert not comparison.failed
    # 2 roles x (2 metrics + 1 latency)
    assert len(comparison.rows) == 6
    assert comparison.to_dict()["failed"] is False


def test_metric_worse_than_budget_fails() -> None:
    comparison = check(report({"general": 2.2, "personalized": 1.5}), report())
    assert comparison.failed
    assert failed_rows(comparison) == [("teacher", "err (general)"), ("student", "err (general)")]
    row = comparison.rows[0]
    assert (row.baseline, row.current) == (2.0, 2.2) and "worse" in row.change


def test_metric_worse_within_budget_and_better_pass() -> None:
    assert not check(report({"general": 2.05, "personalized": 1.0}), report()).failed


def test_higher_is_better_metric() -> None:
    base = report({"acc": 0.90}, lower_is_better=False)
    assert check(report({"acc": 0.85}, lower_is_better=False), base, drop=0.01).failed
    assert not check(report({"acc": 0.95}, lower_is_better=False), base, drop=0.0).failed


def test_latency_ratio_over_budget_fails() -> None:
    comparison = check(report(p50=2.6), report(p50=2.0))
    assert failed_rows(comparison) == [("teacher", "p50 latency, onnxruntime (ms)"),
                                       ("student", "p50 latency, onnxruntime (ms)")]
    assert comparison.rows[2].change == "1.30×"
    assert not check(report(p50=2.2), report(p50=2.0)).failed


def test_missing_metric_role_or_runtime_fails() -> None:
    assert ("student", "err (personalized)") in failed_rows(check(report({"general": 2.0}), report()))
    assert ("student", "model") in failed_rows(check(report(roles=("teacher",)), report()))
    current = report()
    current.models[1].latency = {}
    assert ("student", "p50 latency, onnxruntime (ms)") in failed_rows(check(current, report()))


def test_new_metric_or_role_is_reported_not_failed() -> None:
    comparison = check(report({"general": 2.0, "personalized": 1.5, "extra": 1.0}), report())
    assert not comparison.failed
    assert any(row.change == "new" for row in comparison.rows)


def test_different_cpu_is_noted_but_still_compared() -> None:
    comparison = check(report(p50=5.0, cpu="Other CPU"), report(p50=2.0))
    assert comparison.failed
    assert "different CPU: Test CPU → Other CPU" in comparison.rows[2].note


def test_different_metric_is_refused() -> None:
    with pytest.raises(EdgekdError, match="not comparable"):
        check(report(lower_is_better=False), report())


def test_nan_metric_fails() -> None:
    assert check(report({"general": float("nan"), "personalized": 1.5}), report()).failed
