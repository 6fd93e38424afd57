"""The regression gate behind `edgekd check`: compare a report with a baseline, row by row.

Metrics are compared in their own unit ("worse by at most `max_metric_drop`", direction taken from
`metric.lower_is_better`); latency as the ratio current p50 / baseline p50 per runtime, never as an
absolute time. Latency from different hosts is still compared, but the row says the CPUs differ.
Anything the baseline has and the current report lacks fails: a gate must not pass because data vanished.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from edgekd.errors import EdgekdError
from edgekd.profile.local import ProfileResult
from edgekd.report.schema import MetricSpec, ModelEntry, Report

# Re-measured metrics equal "on paper" can differ in the last bits; this much is never a regression.
_FLOAT_TOLERANCE = 1e-9


@dataclass
class ComparisonRow:
    role: str
    quantity: str
    baseline: float | None
    current: float | None
    change: str
    budget: str
    ok: bool
    note: str = ""


@dataclass
class Comparison:
    rows: list[ComparisonRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(not row.ok for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"failed": self.failed, "rows": [asdict(row) for row in self.rows], "notes": self.notes}


def compare_reports(current: Report, baseline: Report, *, max_metric_drop: float, max_latency_ratio: float) -> Comparison:
    """Rows for every metric and p50 latency of every model in the baseline; `.failed` on any regression.

    >>> comparison = compare_reports(load_report("report.json"), load_report("base.json"),
    ...                              max_metric_drop=0.1, max_latency_ratio=1.2)
    """
    _check_comparable(current, baseline, max_metric_drop, max_latency_ratio)
    comparison = Comparison(notes=_notes(current, baseline))
    for base in baseline.models:
        now = current.model(base.role)
        if now is None:
            comparison.rows.append(ComparisonRow(base.role, "model", None, None, "missing", "-", False))
            continue
        comparison.rows += _metric_rows(now, base, current.metric, max_metric_drop)
        comparison.rows += _latency_rows(now, base, current, baseline, max_latency_ratio)
    for now in current.models:
        if baseline.model(now.role) is None:
            comparison.rows.append(ComparisonRow(now.role, "model", None, None, "new", "-", True, "no baseline"))
    return comparison


def _check_comparable(current: Report, baseline: Report, max_metric_drop: float, max_latency_ratio: float) -> None:
    if not max_metric_drop >= 0:
        raise EdgekdError(f"max_metric_drop must be >= 0, got {max_metric_drop}")
    if not max_latency_ratio > 0:
        raise EdgekdError(f"max_latency_ratio must be > 0, got {max_latency_ratio}")
    if current.task != baseline.task or current.metric != baseline.metric:
        raise EdgekdError(
            f"reports are not comparable: {current.task}/{current.metric.name} vs baseline "
            f"{baseline.task}/{baseline.metric.name}"
        )


def _notes(current: Report, baseline: Report) -> list[str]:
    notes = []
    if current.config_hash != baseline.config_hash:
        notes.append(f"recipes differ (config {current.config_hash[:12]} vs baseline {baseline.config_hash[:12]})")
    if current.recipe != baseline.recipe:
        notes.append(f"recipe names differ ({current.recipe} vs baseline {baseline.recipe})")
    return notes


def _metric_rows(now: ModelEntry, base: ModelEntry, spec: MetricSpec, budget: float) -> list[ComparisonRow]:
    rows = []
    for name, old in base.metrics.items():
        label = f"{spec.name} ({name})"
        if name not in now.metrics:
            rows.append(ComparisonRow(now.role, label, old, None, "missing", "-", False))
            continue
        rows.append(_metric_row(now.role, label, old, now.metrics[name], spec, budget))
    for name in now.metrics.keys() - base.metrics.keys():
        rows.append(ComparisonRow(now.role, f"{spec.name} ({name})", None, now.metrics[name], "new", "-", True, "no baseline"))
    return rows


def _metric_row(role: str, label: str, old: float, new: float, spec: MetricSpec, budget: float) -> ComparisonRow:
    worse = (new - old) if spec.lower_is_better else (old - new)
    ok = not math.isnan(worse) and worse <= budget + _FLOAT_TOLERANCE * max(1.0, abs(old))
    verdict = "worse" if worse > 0 else "better" if worse < 0 else "same"
    change = f"{new - old:+.4g} {spec.unit} ({verdict})"
    return ComparisonRow(role, label, old, new, change, f"≤ {budget:g} {spec.unit} worse", ok)


def _latency_rows(now: ModelEntry, base: ModelEntry, current: Report, baseline: Report, budget: float) -> list[ComparisonRow]:
    rows = []
    for runtime, old in base.latency.items():
        label = f"p50 latency, {runtime} (ms)"
        new = now.latency.get(runtime)
        if new is None:
            rows.append(ComparisonRow(now.role, label, old.stats.p50_ms, None, "missing", f"≤ {budget:g}×", False))
            continue
        ratio = new.stats.p50_ms / old.stats.p50_ms if old.stats.p50_ms > 0 else math.inf
        ok = not math.isnan(ratio) and ratio <= budget
        note = _latency_note(new, old, current.environment, baseline.environment)
        rows.append(ComparisonRow(now.role, label, old.stats.p50_ms, new.stats.p50_ms, f"{ratio:.2f}×", f"≤ {budget:g}×", ok, note))
    return rows


def _latency_note(new: ProfileResult, old: ProfileResult, env_now: dict, env_base: dict) -> str:
    """Why this ratio may not mean what it seems: another CPU, or other settings."""
    notes = []
    cpu_now = new.environment.get("cpu") or env_now.get("cpu")
    cpu_base = old.environment.get("cpu") or env_base.get("cpu")
    if cpu_now != cpu_base:
        notes.append(f"different CPU: {cpu_base} → {cpu_now}")
    for setting in ("threads", "batch_size", "input_shape", "precision", "mode"):
        if getattr(new, setting) != getattr(old, setting):
            notes.append(f"{setting} {getattr(old, setting)} → {getattr(new, setting)}")
    return "; ".join(notes)
