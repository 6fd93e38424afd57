"""Noise-aware latency gate: the bootstrap interval of the median ratio, and the verdicts it gives.

Synthetic sample lists are fine here: these tests pin the statistics; tests/integration/test_check_gate.py
checks the verdict on real measurements.
"""

import numpy as np
import pytest

from edgekd.profile.stats import LatencyStats, median_ratio
from edgekd.report.compare import compare_reports
from edgekd.report.schema import Report
from test_compare import report


def noisy(median: float, n: int = 200, seed: int = 0, spread: float = 0.05) -> list[float]:
    """Latency-like samples: a floor near the median plus a long right tail (a few slow runs)."""
    rng = np.random.default_rng(seed)
    body = median * (1 + spread * rng.standard_normal(n))
    tail = rng.random(n) < 0.05
    return list(np.where(tail, body * 3, body))


def with_samples(current: list[float], baseline: list[float]) -> tuple[Report, Report]:
    reports = []
    for samples in (current, baseline):
        rep = report(p50=float(np.median(samples)))
        for model in rep.models:
            latency = model.latency["onnxruntime"]
            latency.samples_ms = list(samples)
            latency.stats = LatencyStats.from_samples(samples)
        reports.append(rep)
    return reports[0], reports[1]


def latency_rows(comparison) -> list:
    return [row for row in comparison.rows if row.kind == "latency"]


def gate(current: Report, baseline: Report, ratio: float = 1.2):
    return compare_reports(current, baseline, max_metric_drop=0.1, max_latency_ratio=ratio)


def test_interval_brackets_the_ratio_and_is_reproducible() -> None:
    first = median_ratio(noisy(2.0, seed=1), noisy(2.0, seed=2))
    assert first.low <= first.ratio <= first.high
    assert first.low < 1.0 < first.high  # same distribution: 1 is a plausible ratio
    assert median_ratio(noisy(2.0, seed=1), noisy(2.0, seed=2)) == first  # fixed seed, same verdict


def test_ratio_is_the_ratio_of_numpy_medians() -> None:
    current, baseline = noisy(3.0, seed=3), noisy(2.0, seed=4)
    assert median_ratio(current, baseline).ratio == pytest.approx(np.median(current) / np.median(baseline))


def test_interval_narrows_with_more_samples() -> None:
    few = median_ratio(noisy(2.0, n=30, seed=5), noisy(2.0, n=30, seed=6))
    many = median_ratio(noisy(2.0, n=2000, seed=5), noisy(2.0, n=2000, seed=6))
    assert many.high - many.low < few.high - few.low


def test_zero_medians_do_not_give_nan() -> None:
    assert median_ratio([0.0] * 30, [0.0] * 30).ratio == 1.0
    assert median_ratio([1.0] * 30, [0.0] * 30).low == float("inf")


def test_same_distribution_passes_for_many_seeds() -> None:
    for seed in range(20):
        current, baseline = with_samples(noisy(2.0, seed=seed), noisy(2.0, seed=100 + seed))
        assert not gate(current, baseline).failed, seed


def test_clearly_slower_fails_with_the_interval_shown() -> None:
    current, baseline = with_samples(noisy(2.6, seed=1), noisy(2.0, seed=2))
    comparison = gate(current, baseline)
    assert comparison.failed
    row = latency_rows(comparison)[0]
    assert row.interval[0] > 1.2 and "95% CI" in row.change


def test_over_budget_median_within_noise_passes_with_a_note() -> None:
    # Few, very spread runs: the median ratio is over budget, but the interval reaches back under it.
    current, baseline = with_samples(noisy(2.6, n=25, seed=0, spread=0.4), noisy(2.0, n=25, seed=50, spread=0.4))
    row = latency_rows(gate(current, baseline))[0]
    assert row.interval[0] <= 1.2 < float(row.change.split("×")[0])  # the premise of the test
    assert row.ok and "within noise" in row.note


def test_old_reports_without_samples_fall_back_to_p50_ratio() -> None:
    row = latency_rows(gate(report(p50=2.3), report(p50=2.0)))[0]
    assert row.ok and row.interval is None and row.change == "1.15×"
    assert "plain p50 ratio" in row.note
    current, _ = with_samples(noisy(2.0), noisy(2.0))
    mixed = latency_rows(gate(current, report(p50=2.0)))[0]  # samples on one side only
    assert "plain p50 ratio" in mixed.note
