"""Latency statistics from raw per-run samples (milliseconds)."""

from __future__ import annotations

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
