"""Latency statistics: golden numbers (numpy linear percentiles, population std)."""

import math

import pytest

from edgekd.errors import EdgekdError
from edgekd.profile.stats import LatencyStats


def test_golden_numbers_one_to_ten() -> None:
    stats = LatencyStats.from_samples([7, 3, 10, 1, 5, 2, 9, 4, 8, 6], batch_size=4)  # order must not matter
    assert stats.count == 10
    assert stats.mean_ms == pytest.approx(5.5)
    assert stats.std_ms == pytest.approx(math.sqrt(8.25))
    assert (stats.min_ms, stats.max_ms) == (1.0, 10.0)
    assert stats.p50_ms == pytest.approx(5.5)
    assert stats.p90_ms == pytest.approx(9.1)  # rank 0.9 * 9 = 8.1 -> 9 + 0.1 * (10 - 9)
    assert stats.p99_ms == pytest.approx(9.91)
    assert stats.throughput_per_s == pytest.approx(4 * 1000 / 5.5)


def test_golden_numbers_skewed() -> None:
    stats = LatencyStats.from_samples([1.0, 1.0, 1.0, 2.0, 11.0])
    assert stats.mean_ms == pytest.approx(3.2)
    assert stats.p50_ms == pytest.approx(1.0)
    assert stats.p90_ms == pytest.approx(7.4)  # rank 0.9 * 4 = 3.6 -> 2 + 0.6 * (11 - 2)
    assert stats.p99_ms == pytest.approx(10.64)  # rank 3.96 -> 2 + 0.96 * 9
    assert stats.std_ms == pytest.approx(math.sqrt(15.36))


def test_single_sample() -> None:
    stats = LatencyStats.from_samples([2.5])
    assert stats.p50_ms == stats.p99_ms == stats.min_ms == stats.max_ms == 2.5
    assert stats.std_ms == 0.0
    assert stats.throughput_per_s == pytest.approx(400.0)


def test_empty_or_bad_batch_is_refused() -> None:
    with pytest.raises(EdgekdError, match="no latency samples"):
        LatencyStats.from_samples([])
    with pytest.raises(EdgekdError, match="batch_size"):
        LatencyStats.from_samples([1.0], batch_size=0)


def test_round_trips_through_json() -> None:
    stats = LatencyStats.from_samples([1.0, 2.0, 3.0])
    assert LatencyStats.model_validate_json(stats.model_dump_json()) == stats
