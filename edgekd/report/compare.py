"""The regression gate behind `edgekd check`: compare a report with a baseline, row by row.

What is compared, for every model (role) and every deployed file (role, variant, backend, precision) that the
baseline has:

- **Metrics** in their own unit: "worse by at most `max_metric_drop`", direction from `metric.lower_is_better`.
- **Latency** per runtime as a ratio current / baseline of median run times, never as an absolute time.
  Both reports keep every timed run (`samples_ms`), so the ratio gets a 95% percentile-bootstrap confidence
  interval (2000 resamples of each list, fixed seed: the same reports always get the same verdict).
  **A regression is declared only when the whole interval is above `max_latency_ratio`** — a median that is
  over budget while the interval still reaches the budget is noise, noted on the row, not a failure.
  Reports without samples (older ones), or with fewer than 20 runs a side, fall back to the plain p50 ratio
  against the budget, and the row says so. The interval covers run-to-run noise within each measurement, not
  a machine that is busier during one of them: profile on a quiet runner, or re-measure the baseline there.
  Latency from different hosts is still compared, but the row says the CPUs differ.
- **File size** of models and deployed files, only where a size budget (`max_size_ratio`, `max_size_mb`) is set.
- **Status** of a deployed file: one that passed its parity check and no longer does fails.

Budgets are global (the command line) and can be overridden per role, variant, backend, runtime, precision or
device by a budgets file (`edgekd.report.budgets`). Anything the baseline has and the current report lacks fails:
a gate must not pass because data vanished. New models, metrics or files are listed and pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from edgekd.errors import EdgekdError
from edgekd.profile.local import ProfileResult
from edgekd.report.budgets import Budget, Rule, Subject, check_budget, resolve
from edgekd.report.compare_rows import ComparisonRow, latency_row, metric_row, row, size_row, status_row
from edgekd.report.schema import DeploymentEntry, MetricSpec, ModelEntry, Report

__all__ = ["Comparison", "ComparisonRow", "compare_reports"]


@dataclass
class Comparison:
    rows: list[ComparisonRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(not row.ok for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"failed": self.failed, "rows": [{**asdict(r), "label": r.label} for r in self.rows],
                "notes": self.notes}


@dataclass(frozen=True)
class _Gate:
    """What every row builder needs: both reports, the global budget and the budget-file rules."""

    current: Report
    baseline: Report
    default: Budget
    rules: tuple[Rule, ...]

    def budget(self, subject: Subject) -> Budget:
        return resolve(self.default, self.rules, subject)

    @property
    def envs(self) -> tuple[dict, dict]:
        return self.current.environment, self.baseline.environment


def compare_reports(
    current: Report,
    baseline: Report,
    *,
    max_metric_drop: float,
    max_latency_ratio: float,
    max_size_ratio: float | None = None,
    max_size_mb: float | None = None,
    rules: tuple[Rule, ...] = (),
    allow_other_recipe: bool = False,
) -> Comparison:
    """Rows for every metric, latency (and budgeted size) of every model and deployed file in the baseline.

    >>> comparison = compare_reports(load_report("report.json"), load_report("base.json"),
    ...                              max_metric_drop=0.1, max_latency_ratio=1.2)
    >>> comparison.failed
    """
    default = Budget(max_metric_drop, max_latency_ratio, max_size_ratio, max_size_mb)
    _check_comparable(current, baseline, default, allow_other_recipe)
    gate = _Gate(current, baseline, default, tuple(rules))
    comparison = Comparison(notes=_notes(current, baseline))
    comparison.rows += _model_rows(gate)
    comparison.rows += _deployment_rows(gate)
    return comparison


def _check_comparable(current: Report, baseline: Report, default: Budget, allow_other_recipe: bool) -> None:
    check_budget(default)
    if current.recipe != baseline.recipe and not allow_other_recipe:
        # A gate against another recipe's baseline passes or fails for reasons unrelated to the change under test.
        raise EdgekdError(f"the baseline is of recipe '{baseline.recipe}', this report of '{current.recipe}'; "
                          "compare reports of one recipe, or pass --allow-other-recipe (a renamed recipe)")
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


def _model_rows(gate: _Gate) -> list[ComparisonRow]:
    rows = []
    for base in gate.baseline.models:
        now = gate.current.model(base.role)
        if now is None:
            rows.append(row(Subject(base.role), "model", None, None, "missing", "-", False, kind="model"))
            continue
        rows += _model_metric_rows(gate, now, base)
        rows += [_latency(gate, _runtime_subject(base.role, runtime, old), now.latency.get(runtime), old)
                 for runtime, old in base.latency.items()]
        rows += _size(gate, Subject(base.role), base.file_size_bytes, now.file_size_bytes)
    for now in gate.current.models:
        if gate.baseline.model(now.role) is None:
            rows.append(row(Subject(now.role), "model", None, None, "new", "-", True, note="no baseline", kind="model"))
    return rows


def _model_metric_rows(gate: _Gate, now: ModelEntry, base: ModelEntry) -> list[ComparisonRow]:
    spec, subject = gate.current.metric, Subject(now.role)
    budget = gate.budget(subject).max_metric_drop
    rows = [metric_row(subject, f"{spec.name} ({name})", old, now.metrics.get(name), spec, budget)
            for name, old in base.metrics.items()]
    for name in now.metrics.keys() - base.metrics.keys():
        rows.append(row(subject, f"{spec.name} ({name})", None, now.metrics[name], "new", "-", True,
                        note="no baseline", kind="metric"))
    return rows + _outcome_rows(subject, now, base, spec, budget)


def _outcome_rows(subject: Subject, now: ModelEntry, base: ModelEntry, spec: MetricSpec, budget: float):
    """Outcomes in the task metric's unit are gated by the same budget; others are compared, not gated
    (a budget in one unit says nothing about another)."""
    rows = []
    for name, old in base.outcomes.items():
        new = now.outcomes.get(name)
        own = MetricSpec(name=name, unit=old.unit, lower_is_better=old.lower_is_better)
        compared = metric_row(subject, name, old.value, None if new is None else new.value, own,
                              budget if old.unit == spec.unit else math.inf)
        if old.unit != spec.unit:
            compared.budget, compared.note = "not gated", "a different unit than the task metric"
        rows.append(compared)
    return rows


def _runtime_subject(role: str, runtime: str, profile: ProfileResult) -> Subject:
    return Subject(role, runtime=runtime, precision=profile.precision, device=_device(profile))


def _device(profile: ProfileResult | None) -> str:
    # Remote and TensorRT-on-device results name their device; everything else ran on this host.
    return (profile.environment.get("device") if profile else None) or "host"


def _latency(gate: _Gate, subject: Subject, new: ProfileResult | None, old: ProfileResult) -> ComparisonRow:
    return latency_row(subject, new, old, gate.budget(subject).max_latency_ratio, gate.envs)


def _size(gate: _Gate, subject: Subject, old: int | None, new: int | None) -> list[ComparisonRow]:
    size = size_row(subject, old, new, gate.budget(subject))
    return [] if size is None else [size]


def _deployment_key(entry: DeploymentEntry) -> tuple[str, str, str, str]:
    return entry.role, entry.variant, entry.backend, entry.precision


def _deployment_subject(entry: DeploymentEntry) -> Subject:
    return Subject(entry.role, entry.variant, entry.backend, entry.runtime, entry.precision, _device(entry.latency))


def _deployment_rows(gate: _Gate) -> list[ComparisonRow]:
    current = {_deployment_key(d): d for d in gate.current.deployments}
    rows = []
    for base in gate.baseline.deployments:
        now = current.pop(_deployment_key(base), None)
        if now is None:
            rows.append(row(_deployment_subject(base), "deployment", None, None, "missing", "-", False,
                            kind="deployment"))
            continue
        rows += _one_deployment(gate, now, base)
    for now in current.values():
        rows.append(row(_deployment_subject(now), "deployment", None, None, "new", "-", True, note="no baseline",
                        kind="deployment"))
    return rows


def _one_deployment(gate: _Gate, now: DeploymentEntry, base: DeploymentEntry) -> list[ComparisonRow]:
    subject = _deployment_subject(now)
    budget = gate.budget(subject)
    rows = [status_row(subject, base.status, now.status, now.reason)]
    if base.metric is not None:
        spec = gate.current.metric
        rows.append(metric_row(subject, spec.name, base.metric, now.metric, spec, budget.max_metric_drop))
    if base.latency is not None:
        rows.append(latency_row(subject, now.latency, base.latency, budget.max_latency_ratio, gate.envs))
    rows += _size(gate, subject, base.size_bytes, now.size_bytes)
    return [r for r in rows if r is not None]
