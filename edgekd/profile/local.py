"""Latency on this host with ONNX Runtime or OpenVINO (CPU): one model, or several interleaved for fair ratios.

Timing covers the runtime's inference call only (input already built), with `time.perf_counter_ns`.
`peak_rss_mb` is the largest increase of this process's resident memory (/proc/self/statm) over its
level just before the session was created, sampled after creation, after the first inference and after
warm-up. It is what loading and running this model costs the process — not the process's lifetime peak,
which `ru_maxrss` gives and which is useless once anything bigger ran earlier. It undercounts when the
allocator reuses memory freed earlier in the process, so compare it within one call, not across runs.
None where /proc is missing. ONNX Runtime's one-time start-up is paid by a throwaway session first, so
neither `cold_start_ms` nor `peak_rss_mb` of the first model loaded carries it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from edgekd.artifacts import sha256_file
from edgekd.errors import EdgekdError
from edgekd.profile.environment import host_environment
from edgekd.profile.sessions import open_session, runtime_for
from edgekd.profile.stats import LatencyStats

Progress = Callable[[int, int], None]  # (timed runs done, timed runs in total)
INPUT_SEED = 0


class ProfileResult(BaseModel):
    """One model's latency, with every setting needed to reproduce or distrust it."""

    model_config = ConfigDict(extra="forbid")

    mode: str = "measured-local"
    runtime: str = "onnxruntime"
    settings: dict[str, Any] = {}
    model: str
    sha256: str
    precision: str
    threads: int
    batch_size: int
    input_shape: list[int]
    warmup: int
    runs: int
    rounds: int = 1
    stats: LatencyStats
    # Every timed run (ms, 0.1 µs resolution): distributions and noise-aware comparisons need them, not just
    # percentiles. None in results from older reports.
    samples_ms: list[float] | None = None
    cold_start_ms: float
    peak_rss_mb: float | None
    environment: dict[str, Any]


@dataclass
class _Loaded:
    path: Path
    session: Any  # edgekd.profile.sessions.Session
    feed: np.ndarray
    cold_start_ms: float
    rss_mb: float | None
    samples: list[float] = field(default_factory=list)


def profile_onnxruntime(
    onnx_path: str | Path,
    *,
    input_shape: Sequence[int],
    threads: int = 2,
    warmup: int = 10,
    runs: int = 100,
    progress: Progress | None = None,
) -> ProfileResult:
    """Latency of one ONNX file on this host's CPU.

    >>> result = profile_onnxruntime("student.onnx", input_shape=(1, 3, 64, 64), runs=200)
    >>> result.stats.p50_ms
    """
    results = profile_side_by_side({"model": Path(onnx_path)}, input_shape=input_shape, threads=threads,
                                   warmup=warmup, runs=runs, rounds=1, progress=progress)
    return results["model"]


def profile_side_by_side(
    paths: dict[str, Path],
    *,
    input_shape: Sequence[int],
    threads: int,
    warmup: int,
    runs: int,
    rounds: int = 5,
    progress: Progress | None = None,
    precisions: dict[str, str] | None = None,
    input_shapes: dict[str, Sequence[int]] | None = None,
) -> dict[str, ProfileResult]:
    """Profile several files together: all sessions are loaded first, then timed in interleaved rounds.

    Files may mix runtimes: .onnx runs on ONNX Runtime, .xml on OpenVINO (both on this CPU).
    `precisions` names each file's precision where the file does not record it (OpenVINO IR);
    `input_shapes` gives a file its own input shape (a teacher that reads the whole camera frame).

    Round r gives each model its share of `runs`, in forward order on even rounds and reversed on odd
    ones, so slow drift of the machine (thermal throttling, a noisy neighbour) hits every model alike.
    This is the measurement speed-ratio claims should use.

    >>> results = profile_side_by_side({"teacher": t, "student": s}, input_shape=(1, 3, 64, 64),
    ...                                threads=2, warmup=10, runs=200)
    """
    shape = _validate(paths, input_shape, threads, warmup, runs, rounds)
    shapes = {name: _validate({name: path}, (input_shapes or {}).get(name, shape), threads, warmup, runs, rounds)
              for name, path in paths.items()}
    _prime_runtime(threads)
    precisions = precisions or {}
    loaded = {name: _load(Path(path), shapes[name], threads, warmup, precisions.get(name, "fp32"))
              for name, path in paths.items()}
    rounds = min(rounds, runs)
    _timed_rounds(list(loaded.values()), runs, rounds, progress)
    environment = host_environment()
    return {name: _result(item, shapes[name], threads, warmup, runs, rounds, environment)
            for name, item in loaded.items()}


def _validate(paths, input_shape, threads, warmup, runs, rounds) -> list[int]:
    shape = [int(d) for d in input_shape]
    checks = [
        (bool(paths), "no models to profile"),
        (bool(shape) and all(d >= 1 for d in shape), f"input_shape must be positive sizes, got {shape}"),
        (threads >= 1, f"threads must be >= 1, got {threads}"),
        (warmup >= 0, f"warmup must be >= 0, got {warmup}"),
        (runs >= 1, f"runs must be >= 1, got {runs}"),
        (rounds >= 1, f"rounds must be >= 1, got {rounds}"),
    ]
    for ok, message in checks:
        if not ok:
            raise EdgekdError(message)
    for path in paths.values():
        if not Path(path).is_file():
            raise EdgekdError(f"model file not found: {path}")
        runtime_for(path)  # an unknown format fails here, before anything is loaded
    return shape


def _load(path: Path, shape: list[int], threads: int, warmup: int, precision: str) -> _Loaded:
    before = _rss_mb()
    start = time.perf_counter_ns()
    session = open_session(path, runtime_for(path), threads=threads, precision=precision, static_shape=shape)
    after_create = _rss_mb()
    feed = _feed(session, path, shape)
    session.run(feed)
    cold_ms = (time.perf_counter_ns() - start) / 1e6
    after_first = _rss_mb()
    for _ in range(warmup):
        session.run(feed)
    rss = None if before is None else max(after_create, after_first, _rss_mb()) - before
    return _Loaded(path, session, feed, cold_ms, rss)


def _prime_runtime(threads: int) -> None:
    """Pay ONNX Runtime's one-time process start-up (library pages, environment, allocators) on a throwaway
    one-node graph, so the first real model's cold start and memory are not charged for it."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    result = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "prime", [value], [result])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # an IR version every supported ONNX Runtime reads
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    session.run(None, {"x": np.zeros(1, np.float32)})


def _feed(session: Any, path: Path, shape: list[int]) -> np.ndarray:
    expected = session.input_shape
    fixed_mismatch = len(expected) != len(shape) or any(
        isinstance(e, int) and e != s for e, s in zip(expected, shape)
    )
    if fixed_mismatch:
        raise EdgekdError(f"{path.name}: the model takes input shape {expected}, profiling asked for {shape}")
    return np.random.default_rng(INPUT_SEED).standard_normal(shape).astype(session.input_dtype)


def _timed_rounds(loaded: list[_Loaded], runs: int, rounds: int, progress: Progress | None) -> None:
    total, done = runs * len(loaded), 0
    for index, count in enumerate(_split(runs, rounds)):
        order = loaded if index % 2 == 0 else loaded[::-1]
        for item in order:
            item.samples.extend(_time_runs(item.session, item.feed, count))
            done += count
            if progress is not None:
                progress(done, total)


def _split(runs: int, rounds: int) -> list[int]:
    base, extra = divmod(runs, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


def _time_runs(session: Any, feed: np.ndarray, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter_ns()
        session.run(feed)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def _result(item: _Loaded, shape, threads, warmup, runs, rounds, environment) -> ProfileResult:
    meta = item.session.metadata()
    return ProfileResult(
        runtime=item.session.runtime,
        settings=item.session.settings(),
        model=item.path.name,
        sha256=sha256_file(item.path),
        precision=meta.get("edgekd.precision", "unknown"),
        threads=threads,
        batch_size=shape[0],
        input_shape=shape,
        warmup=warmup,
        runs=runs,
        rounds=rounds,
        stats=LatencyStats.from_samples(item.samples, batch_size=shape[0]),
        samples_ms=rounded_samples(item.samples),
        cold_start_ms=item.cold_start_ms,
        peak_rss_mb=item.rss_mb,
        environment=environment,
    )


def rounded_samples(samples: Sequence[float]) -> list[float]:
    return [round(float(value), 4) for value in samples]


def _rss_mb() -> float | None:
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
