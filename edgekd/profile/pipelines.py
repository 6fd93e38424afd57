"""Timing whole pipelines (pre-processing + network + post-processing) side by side on the same inputs.

The network-only profiler (local.py) times one session call; a task whose deployed unit is more than one
network call (a teacher that is perception + a control law, a detector with NMS on the host) times its
callables here, in the same alternating-rounds scheme, so their ratio comes from the same minutes.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence


def time_pipelines(pipelines: dict[str, Callable[[Any], Any]], inputs: Sequence[Any], *, runs: int, rounds: int,
                   warmup: int) -> dict[str, list[float]]:
    """Milliseconds per call of each pipeline on `inputs` (cycled); pipelines alternate, forward then reversed
    order, every round, so slow drift of the machine hits all of them alike."""
    for run in pipelines.values():
        for index in range(warmup):
            run(inputs[index % len(inputs)])
    samples: dict[str, list[float]] = {name: [] for name in pipelines}
    per_round = max(runs // max(rounds, 1), 1)
    for round_index in range(max(rounds, 1)):
        order = list(pipelines) if round_index % 2 == 0 else list(pipelines)[::-1]
        for name in order:
            for index in range(per_round):
                item = inputs[(round_index * per_round + index) % len(inputs)]
                start = time.perf_counter_ns()
                pipelines[name](item)
                samples[name].append((time.perf_counter_ns() - start) / 1e6)
    return samples
