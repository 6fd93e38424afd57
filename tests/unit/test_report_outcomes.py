"""Outcomes (results that are not the task metric) render with their own unit and direction and are compared
by `edgekd check`, gated only when they share the task metric's unit."""

from __future__ import annotations

from edgekd.report.compare import compare_reports
from edgekd.report.render import to_markdown
from edgekd.report.schema import ModelEntry, Outcome, Report


def _report(success: float, error_px: float, mae: float) -> Report:
    model = ModelEntry(role="student", arch="a", parameters=1, trainable_parameters=1, macs=1, file_size_bytes=1,
                       metrics={"held_out": 1.0},
                       outcomes={"success rate": Outcome(value=success, unit="", lower_is_better=False),
                                 "final error": Outcome(value=error_px, unit="px", lower_is_better=True),
                                 "offline mae": Outcome(value=mae, unit="%", lower_is_better=True)})
    return Report(recipe="r", task="ibvs", created="now", edgekd_version="0", config_hash="c",
                  metric={"name": "command_mae", "unit": "%", "lower_is_better": True}, models=[model])


def test_outcomes_render_with_their_direction() -> None:
    text = to_markdown(_report(0.875, 31.5, 2.0))
    assert "success rate (higher is better) | 0.875" in text
    assert "final error (px, lower is better) | 31.5" in text


def test_outcomes_in_another_unit_are_compared_not_gated() -> None:
    result = compare_reports(_report(0.5, 90.0, 2.0), _report(1.0, 30.0, 2.0), max_metric_drop=0.5, max_latency_ratio=1.5)
    rows = {r.quantity: r for r in result.rows}
    assert rows["success rate"].ok and rows["success rate"].budget == "not gated"
    assert "worse" in rows["success rate"].change and "worse" in rows["final error"].change


def test_outcomes_in_the_task_unit_are_gated() -> None:
    result = compare_reports(_report(1.0, 30.0, 3.0), _report(1.0, 30.0, 2.0), max_metric_drop=0.5, max_latency_ratio=1.5)
    rows = {r.quantity: r for r in result.rows}
    assert not rows["offline mae"].ok
    within = compare_reports(_report(1.0, 30.0, 2.2), _report(1.0, 30.0, 2.0), max_metric_drop=0.5,
                             max_latency_ratio=1.5)
    assert {r.quantity: r for r in within.rows}["offline mae"].ok
