"""Latency statistics from raw per-run samples (milliseconds), and the noise-aware ratio of two sample lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from edgekd.errors import EdgekdError


class LatencyStats(BaseModel):
    """Summary of `count` timed runs. Percentiles use numpy's default (linear) interpolation;
    `std_ms` is the population standard deviation (numpy's default, ddof=0)."""

    model_config = ConfigDict(extra="forbid")

    count: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    throughput_per_s: float

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float], batch_size: int = 1) -> "LatencyStats":
        """>>> LatencyStats.from_samples([1.0, 2.0, 3.0, 4.0]).p50_ms
        2.5
        """
        data = np.asarray(samples_ms, dtype=np.float64)
        if data.size == 0:
            raise EdgekdError("no latency samples to summarise")
        if batch_size < 1:
            raise EdgekdError(f"batch_size must be >= 1, got {batch_size}")
        p50, p90, p99 = np.percentile(data, [50, 90, 99])
        mean = float(data.mean())
        return cls(
            count=int(data.size),
            mean_ms=mean,
            std_ms=float(data.std()),
            min_ms=float(data.min()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            max_ms=float(data.max()),
            throughput_per_s=batch_size * 1000.0 / mean if mean > 0 else float("inf"),
        )


# Bootstrap resamples are drawn this many at a time so a 10k-sample list never needs a huge array.
_BOOTSTRAP_CHUNK_VALUES = 2_000_000


@dataclass(frozen=True)
class RatioEstimate:
    """current median / baseline median, with a bootstrap confidence interval [low, high]."""

    ratio: float
    low: float
    high: float
    confidence: float


def median_ratio(
    current_ms: Sequence[float],
    baseline_ms: Sequence[float],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RatioEstimate:
    """Ratio of medians and its percentile-bootstrap interval (each list resampled on its own).

    The seed is fixed so the same two sample lists always give the same verdict.

    >>> estimate = median_ratio([1.0, 1.1, 0.9] * 20, [1.0, 1.05, 0.95] * 20)
    >>> estimate.low <= estimate.ratio <= estimate.high
    True
    """
    current, baseline = _as_samples(current_ms), _as_samples(baseline_ms)
    if resamples < 1 or not 0 < confidence < 1:
        raise EdgekdError(f"need resamples >= 1 and 0 < confidence < 1, got {resamples}, {confidence}")
    rng = np.random.default_rng(seed)
    ratios = np.concatenate([
        _ratio_of_medians(_resampled_medians(rng, current, n), _resampled_medians(rng, baseline, n))
        for n in _chunks(resamples, max(current.size, baseline.size))
    ])
    tail = (1 - confidence) / 2
    # Order statistics (no interpolation): an interval end is a ratio that was actually resampled, and inf stays inf.
    low, high = np.quantile(ratios, tail, method="lower"), np.quantile(ratios, 1 - tail, method="higher")
    point = _ratio_of_medians(np.median(current, keepdims=True), np.median(baseline, keepdims=True))[0]
    return RatioEstimate(float(point), float(low), float(high), confidence)


def _as_samples(samples: Sequence[float]) -> np.ndarray:
    data = np.asarray(samples, dtype=np.float64)
    if data.ndim != 1 or data.size == 0:
        raise EdgekdError("no latency samples to compare")
    return data


def _chunks(total: int, width: int) -> list[int]:
    size = max(1, _BOOTSTRAP_CHUNK_VALUES // width)
    return [min(size, total - start) for start in range(0, total, size)]


def _resampled_medians(rng: np.random.Generator, data: np.ndarray, count: int) -> np.ndarray:
    return np.median(rng.choice(data, size=(count, data.size), replace=True), axis=1)


def _ratio_of_medians(current: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    # A zero baseline median (a timer that rounded to 0) makes any slowdown infinite and 0/0 "same", never NaN.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = current / baseline
    return np.where(baseline > 0, ratios, np.where(current > 0, np.inf, 1.0))
