"""One comparison row per quantity: metric drop, noise-aware latency ratio, file size, deployment status.

The latency rule (the reason CI can trust the gate) is documented in `edgekd.report.compare`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edgekd.profile.local import ProfileResult
from edgekd.profile.stats import median_ratio
from edgekd.report.budgets import MB, Budget, Subject
from edgekd.report.schema import MetricSpec

# Re-measured metrics equal "on paper" can differ in the last bits; this much is never a regression.
_FLOAT_TOLERANCE = 1e-9
# Below this many timed runs per side a bootstrap interval says little; such rows use the plain p50 ratio.
MIN_SAMPLES = 20
CONFIDENCE = 0.95


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
    kind: str = ""  # model | metric | latency | size | status | deployment
    subject: dict[str, str] = field(default_factory=dict)  # role, variant, backend, runtime, precision, device
    interval: list[float] | None = None  # bootstrap interval of the latency ratio, when samples allowed one

    @property
    def label(self) -> str:
        """Who the row is about, for tables: the role, plus variant/backend/precision for a deployed file."""
        return Subject(**self.subject).label if self.subject else self.role


def row(subject: Subject, quantity: str, old: Any, new: Any, change: str, budget: str, ok: bool, *,
        note: str = "", kind: str, interval: list[float] | None = None) -> ComparisonRow:
    return ComparisonRow(subject.role, quantity, old, new, change, budget, ok, note, kind, subject.as_dict(), interval)


def metric_row(subject: Subject, label: str, old: float | None, new: float | None, spec: MetricSpec,
               budget: float) -> ComparisonRow:
    budget_text = f"≤ {budget:g} {spec.unit} worse"
    if new is None:
        return row(subject, label, old, None, "missing", budget_text, False, kind="metric")
    worse = (new - old) if spec.lower_is_better else (old - new)
    ok = not math.isnan(worse) and worse <= budget + _FLOAT_TOLERANCE * max(1.0, abs(old))
    verdict = "worse" if worse > 0 else "better" if worse < 0 else "same"
    return row(subject, label, old, new, f"{new - old:+.4g} {spec.unit} ({verdict})", budget_text, ok, kind="metric")


def latency_row(subject: Subject, new: ProfileResult | None, old: ProfileResult, budget: float,
                envs: tuple[dict, dict]) -> ComparisonRow:
    label, budget_text = f"p50 latency, {subject.runtime} (ms)", f"≤ {budget:g}×"
    if new is None:
        return row(subject, label, old.stats.p50_ms, None, "missing", budget_text, False, kind="latency")
    notes = _latency_notes(new, old, *envs)
    samples_new, samples_old = new.samples_ms or [], old.samples_ms or []
    if min(len(samples_new), len(samples_old)) < MIN_SAMPLES:
        ratio = _p50_ratio(new, old)
        notes.append(f"fewer than {MIN_SAMPLES} samples per side: plain p50 ratio, no noise allowance")
        return row(subject, label, old.stats.p50_ms, new.stats.p50_ms, f"{ratio:.2f}×", budget_text,
                   not math.isnan(ratio) and ratio <= budget, note="; ".join(notes), kind="latency")
    estimate = median_ratio(samples_new, samples_old, confidence=CONFIDENCE)
    ok = not math.isnan(estimate.low) and estimate.low <= budget  # fail only when the whole interval is over
    if ok and estimate.ratio > budget:
        notes.append(f"median ratio over budget, but the {CONFIDENCE:.0%} interval reaches it: within noise")
    change = f"{estimate.ratio:.2f}× ({CONFIDENCE:.0%} CI {estimate.low:.2f}–{estimate.high:.2f})"
    return row(subject, label, old.stats.p50_ms, new.stats.p50_ms, change, budget_text, ok,
               note="; ".join(notes), kind="latency", interval=[estimate.low, estimate.high])


def _p50_ratio(new: ProfileResult, old: ProfileResult) -> float:
    return new.stats.p50_ms / old.stats.p50_ms if old.stats.p50_ms > 0 else math.inf


def _latency_notes(new: ProfileResult, old: ProfileResult, env_now: dict, env_base: dict) -> list[str]:
    """Why this ratio may not mean what it seems: another CPU, or other settings."""
    notes = []
    cpu_now = new.environment.get("cpu") or env_now.get("cpu")
    cpu_base = old.environment.get("cpu") or env_base.get("cpu")
    if cpu_now != cpu_base:
        notes.append(f"different CPU: {cpu_base} → {cpu_now}")
    for setting in ("threads", "batch_size", "input_shape", "precision", "mode"):
        if getattr(new, setting) != getattr(old, setting):
            notes.append(f"{setting} {getattr(old, setting)} → {getattr(new, setting)}")
    return notes


def size_row(subject: Subject, old_bytes: int | None, new_bytes: int | None, budget: Budget) -> ComparisonRow | None:
    """A file-size row, only where a size budget applies to this subject."""
    limits = [(f"≤ {budget.max_size_ratio:g}×", "ratio")] if budget.max_size_ratio is not None else []
    limits += [(f"≤ {budget.max_size_mb:g} MB", "mb")] if budget.max_size_mb is not None else []
    if not limits or (old_bytes is None and new_bytes is None):
        return None
    budget_text, old_mb = " and ".join(text for text, _ in limits), _mb(old_bytes)
    if new_bytes is None:
        return row(subject, "file size (MB)", old_mb, None, "missing", budget_text, False, kind="size")
    ratio = new_bytes / old_bytes if old_bytes else None
    ok = all(_size_ok(kind, ratio, new_bytes, budget) for _, kind in limits)
    note = "no baseline size: only an absolute budget can apply" if ratio is None else ""
    change = "-" if ratio is None else f"{ratio:.3f}×"
    return row(subject, "file size (MB)", old_mb, _mb(new_bytes), change, budget_text, ok, note=note, kind="size")


def _size_ok(kind: str, ratio: float | None, new_bytes: int, budget: Budget) -> bool:
    if kind == "mb":
        return new_bytes <= budget.max_size_mb * MB
    return ratio is None or ratio <= budget.max_size_ratio


def _mb(size: int | None) -> float | None:
    return None if size is None else size / MB


def status_row(subject: Subject, old: str, new: str, reason: str) -> ComparisonRow | None:
    """A deployment that passed its parity check and no longer does has regressed; other changes are noted."""
    if old == new:
        return None
    ok = old != "passed"
    return row(subject, "status", None, None, f"{old} → {new}", "stays passed", ok, note=reason, kind="status")
