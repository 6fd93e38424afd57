"""Parity: the exported file must compute what the PyTorch model computes, on the same inputs.

Two budgets: a statistic of the absolute output difference (the largest by default), and the change of the task
metric (`metric_runtime - metric_torch`). The statistic can be the median or the 99th percentile of each output instead, as
Polygraphy's `--check-error-stat` allows: an int8 detector's integer kernels round differently from
fake-quantization and from each other, and a distribution-focal box head turns that into box edges that move by
tens of pixels on a few anchors while AP does not change (docs/layout.md, "int8 parity") — the maximum
is then noise, the median is not. The maximum is always reported. The relative difference is reported for
reading, not gated:
it is |a - b| / max(|a|, REL_EPS) with `a` the PyTorch output, so outputs near zero do not blow it up
to infinity (they can still make it large, which is why the absolute budget is the gate).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from edgekd.errors import CheckFailed, EdgekdError

REL_EPS = 1e-6
MetricFn = Callable[[Any, Any], float]
ErrorStat = Literal["max", "p99", "median"]
ERROR_STATS: dict[str, float] = {"max": 100.0, "p99": 99.0, "median": 50.0}  # the percentile of |Δ| each gates


@dataclass
class ParityResult:
    samples: int
    max_abs_diff: float
    max_rel_diff: float
    metric_torch: float | None
    metric_runtime: float | None
    metric_delta: float | None
    budget_max_abs_diff: float
    budget_max_metric_delta: float | None
    passed: bool
    error_stat: str = "max"
    abs_diff_stat: float | None = None  # the gated statistic of |Δ|; equals max_abs_diff when error_stat is max

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def failure_reason(self) -> str:
        """One line naming each budget that was exceeded and by how much; '' when it passed."""
        reasons = []
        gated = self.max_abs_diff if self.abs_diff_stat is None else self.abs_diff_stat
        if not _within(gated, self.budget_max_abs_diff):
            reasons.append(f"{self.error_stat} |Δ| {gated:.3g} > budget {self.budget_max_abs_diff:.3g}")
        if self.budget_max_metric_delta is not None and self.metric_delta is not None:
            if not _within(abs(self.metric_delta), self.budget_max_metric_delta):
                reasons.append(f"metric Δ {self.metric_delta:+.4g} exceeds ±{self.budget_max_metric_delta:.4g}")
        return "; ".join(reasons)


def check_parity(
    torch_model: Any,
    onnx_path: str | Path,
    inputs: np.ndarray,
    *,
    runtime: str = "onnxruntime",
    precision: str = "fp32",
    targets: Any = None,
    metric_fn: MetricFn | None = None,
    max_abs_diff: float,
    max_metric_delta: float | None,
    error_stat: ErrorStat = "max",
    batch_size: int = 64,
    threads: int = 2,
) -> ParityResult:
    """Run PyTorch (eval, no_grad) and `runtime` (CPU) on `inputs`; compare outputs and the metric.

    `onnx_path` is the artifact: an .onnx for onnxruntime, an OpenVINO .xml for openvino. `max_abs_diff` is the
    budget of `error_stat` of |Δ| over every output element: its maximum, 99th percentile or median.

    `metric_fn(outputs, targets)` gets the first output as an array (a model with several outputs:
    the tuple of arrays). With no `metric_fn` the metric fields are None and only outputs are gated.

    >>> result = check_parity(model, "student.onnx", x, targets=y, metric_fn=score, max_abs_diff=1e-4,
    ...                       max_metric_delta=0.01)
    """
    if batch_size < 1:
        raise EdgekdError(f"parity batch_size must be >= 1, got {batch_size}")
    if error_stat not in ERROR_STATS:
        raise EdgekdError(f"parity error_stat must be one of {', '.join(ERROR_STATS)}, got {error_stat!r}")
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    if len(inputs) == 0:
        raise EdgekdError("parity check needs at least one input sample")
    reference = _torch_outputs(torch_model, inputs, batch_size)
    outputs = _runtime_outputs(Path(onnx_path), runtime, precision, inputs, batch_size, threads)
    if len(reference) != len(outputs):
        raise EdgekdError(f"{Path(onnx_path).name}: {len(outputs)} outputs, the PyTorch model has {len(reference)}")
    abs_diff, rel_diff, stat = _differences(reference, outputs, ERROR_STATS[error_stat])
    metric_torch = metric_runtime = delta = None
    if metric_fn is not None:
        metric_torch = float(metric_fn(_for_metric(reference), targets))
        metric_runtime = float(metric_fn(_for_metric(outputs), targets))
        delta = metric_runtime - metric_torch
    # np.percentile propagates NaN like np.max: a NaN anywhere fails whichever statistic is gated.
    passed = _within(stat, max_abs_diff) and (
        max_metric_delta is None or delta is None or _within(abs(delta), max_metric_delta)
    )
    return ParityResult(len(inputs), abs_diff, rel_diff, metric_torch, metric_runtime, delta,
                        max_abs_diff, max_metric_delta, passed, error_stat, stat)


def assert_parity(result: ParityResult, context: str) -> None:
    """Raise CheckFailed (exit 1) when `result` is out of budget; `context` names what was checked."""
    if not result.passed:
        raise CheckFailed(f"{context}: parity out of budget — {result.failure_reason()}")


def _within(value: float, budget: float) -> bool:
    # Written so that NaN (a broken graph) is never "within" any budget.
    return not math.isnan(value) and value <= budget


def _torch_outputs(model: Any, inputs: np.ndarray, batch_size: int) -> list[np.ndarray]:
    import torch

    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    chunks: list[list[np.ndarray]] = []
    try:
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                out = model(torch.from_numpy(inputs[start:start + batch_size]).to(device))
                chunks.append([t.detach().float().cpu().numpy() for t in flatten_outputs(out)])
    finally:
        model.train(was_training)
    return _concat(chunks)


def flatten_outputs(out: Any) -> list[Any]:
    """A model's outputs (a tensor, or tuples, lists and dicts of them) as a flat list, in order."""
    if isinstance(out, dict):
        return [t for value in out.values() for t in flatten_outputs(value)]
    if isinstance(out, (tuple, list)):
        return [t for value in out for t in flatten_outputs(value)]
    return [out]


def _runtime_outputs(path: Path, runtime: str, precision: str, inputs: np.ndarray, batch_size: int,
                     threads: int) -> list[np.ndarray]:
    from edgekd.profile.sessions import open_session

    # f32 arithmetic: the check is of the file; a CPU that would run fp16 files in bf16 (AMX) must not fail it.
    session = open_session(path, runtime, threads=threads, precision=precision, pin_f32=True)
    first = session.input_shape[0] if session.input_shape else None
    fixed = first if isinstance(first, int) else None
    step = fixed or batch_size
    chunks = []
    for start in range(0, len(inputs), step):
        batch = inputs[start:start + step]
        padded = _pad(batch, fixed) if fixed else batch  # a static-batch file gets full batches, then is trimmed
        chunks.append([np.asarray(o, dtype=np.float32)[:len(batch)] for o in session.run(padded)])
    return _concat(chunks)


def _pad(batch: np.ndarray, size: int) -> np.ndarray:
    missing = size - len(batch)
    return batch if missing == 0 else np.concatenate([batch, np.zeros((missing, *batch.shape[1:]), batch.dtype)])


def _concat(chunks: list[list[np.ndarray]]) -> list[np.ndarray]:
    return [np.concatenate([chunk[i] for chunk in chunks]) for i in range(len(chunks[0]))]


def _differences(reference: list[np.ndarray], runtime: list[np.ndarray],
                 percentile: float) -> tuple[float, float, float]:
    """(max |Δ|, max relative Δ, the `percentile` of |Δ| of each output — the largest over outputs, so that a
    small-valued output (scores) does not dilute a large-valued one (box edges))."""
    abs_max = rel_max = stat = 0.0
    for a, b in zip(reference, runtime):
        if a.shape != b.shape:
            raise EdgekdError(f"output shape differs: PyTorch {a.shape}, runtime {b.shape}")
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        # np.max propagates NaN, so a NaN anywhere fails the absolute budget.
        abs_max = max(abs_max, float(np.max(diff)), key=_nan_first)
        rel = diff / np.maximum(np.abs(a.astype(np.float64)), REL_EPS)
        rel_max = max(rel_max, float(np.max(rel)), key=_nan_first)
        if percentile < 100.0:
            stat = max(stat, float(np.percentile(diff, percentile)), key=_nan_first)
    return abs_max, rel_max, abs_max if percentile >= 100.0 else stat


def _nan_first(value: float) -> float:
    return math.inf if math.isnan(value) else value


def _for_metric(outputs: list[np.ndarray]) -> Any:
    return outputs[0] if len(outputs) == 1 else tuple(outputs)
