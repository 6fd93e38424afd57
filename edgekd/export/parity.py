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

An absolute budget cannot fail a model whose outputs are tiny: a random-weight lcnet_050 has logits of order
1e-6, so its int8 file passed "1.7e-07 <= 0.1" while its top-1 agreed with PyTorch on 0 of 16 images, and a file
with a zeroed classifier passes 1e-3 when the logits are of order 1e-6. The scaled statistics (`scaled_stats`)
are measured against the output itself, so a broken file fails them whatever the output's magnitude: the
relative L2 error ||a-b|| / ||a||, the same quantity as an SNR in dB (-20 log10 rel_l2: gate whichever reads
better), the cosine similarity (blind to a pure change of scale, which the other two see), and for classifier
outputs ([N, C], opt-in: a [N, 2] regression output has no classes) top-1 and top-5 agreement. Each has its own
optional budget; every budget given is gated, and a NaN anywhere fails all of them. `SCALED_BUDGETS` holds
measured defaults per precision for `edgekd export timm:NAME`.
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
TOP_K = 5  # top-5 agreement: is the reference's top-1 class among the runtime's top min(TOP_K, C)?

# Default scaled budgets per precision for `edgekd export timm:NAME`: `check_parity(..., **SCALED_BUDGETS[p])`.
# Measured with random timm weights on the 8 seeded N(0,1) 224x224 inputs `edgekd export` uses; SNR in dB (worst
# output), top-1 agreement over the 8 inputs. The honest int8 file is compared with the fake-quantized model
# (NNCF PTQ on 16 N(0,1) images, the int8 exporter as of f9ef635); fp16 is OpenVINO's fp16 IR with f32 arithmetic.
#
#   file                                             SNR (dB)        top-1       absolute max |Δ|
#   fp32: ONNX Runtime 12 models, OpenVINO 7         114 .. 134      1.0         up to 7.4e-6
#   fp16: OpenVINO 12 models (mobilenetv3 lowest)    48.8 .. 73.4    1.0         up to 1.2e-2
#   int8 ORT+OV resnet18, ORT mobilenetv3/effnet-b0  21.8 .. 45.3    0.875-1.0   up to 0.16
#   broken: classifier weights zeroed                0.0 .. 0.28     0.0         lcnet 3.8e-7, effnet-b0 1.5e-5
#   broken: a conv's output channels permuted, most  -3.4 .. 3.5     0.0-1.0     lcnet 5e-7, effnet-b0 2.5e-5
#     but the first conv of resnet18 / mobilenetv2 / 22.5 / 18.5 /   1.0         3e-2 / 0.56 / 7e-3
#     regnetx_002, and a middle one of mobilenetv2   15.5, 15.9
#   int8 files that compute something else: OV      0.0 .. 3.9      0.0-0.375   lcnet 2.2e-7 (passed 0.1)
#     mobilenetv3 / effnet-b0 / lcnet, ORT lcnet
# (A conv in a residual branch that random init silences — timm's zero-init last BN, convnext's 1e-6 layer
# scale — changes nothing when permuted; those edits are not broken files and are left out.)
#
# Random-weight nets give (nearly) every noise input the same class, so a broken file can keep top-1 agreement
# at 1.0: SNR is the gate, top-1 agreement a backstop in the units users read (0.75 tolerates 2 of 8 near-ties).
# fp32 60 dB (rel. L2 1e-3) and fp16 30 dB (3%) sit far below every honest file and above every broken one.
# int8 12 dB (25%) is from first principles as much as measured: 8-bit quantization noise is about 20-40 dB on
# trained nets, a broken file 0 dB or below; it passes the weakest honest int8 file here by 9.8 dB and fails
# the worst bad one by 8 dB, but cannot tell a first-conv permutation of a random resnet18 (22.5 dB) from
# quantization noise — the fp32 and fp16 budgets do.
SCALED_BUDGETS: dict[str, dict[str, float]] = {
    "fp32": {"min_snr_db": 60.0, "min_top1_agreement": 0.75},
    "fp16": {"min_snr_db": 30.0, "min_top1_agreement": 0.75},
    "int8": {"min_snr_db": 12.0, "min_top1_agreement": 0.5},
}


@dataclass
class ScaledStats:
    """Scale-free statistics of a runtime's outputs against the reference: the worst output's of each.

    The agreements are None when they were not asked for, or when no output is classifier-shaped ([N, C], C >= 2).
    """

    rel_l2: float  # ||a-b|| / ||a||: 0 when identical, inf for a nonzero difference on a zero reference
    snr_db: float  # 10 log10(Σa² / Σ(a-b)²): inf when identical
    cosine: float  # of the flattened output: 1 when both are zero, 0 when exactly one is
    top1_agreement: float | None = None  # fraction of samples whose argmax agrees
    top5_agreement: float | None = None  # fraction whose reference top-1 is among the runtime's top-5


@dataclass
class ParityResult:
    samples: int
    max_abs_diff: float
    max_rel_diff: float
    metric_torch: float | None
    metric_runtime: float | None
    metric_delta: float | None
    budget_max_abs_diff: float | None  # None: |Δ| is reported, not gated
    budget_max_metric_delta: float | None
    passed: bool
    error_stat: str = "max"
    abs_diff_stat: float | None = None  # the gated statistic of |Δ|; equals max_abs_diff when error_stat is max
    # Scaled statistics (the worst output's), always measured; the agreements only when asked for.
    rel_l2: float | None = None
    snr_db: float | None = None
    cosine: float | None = None
    top1_agreement: float | None = None
    top5_agreement: float | None = None
    # Their budgets; None: not gated.
    budget_min_snr_db: float | None = None
    budget_max_rel_l2: float | None = None
    budget_min_cosine: float | None = None
    budget_min_top1_agreement: float | None = None
    # The execution that was checked: the session settings (runtime version, threads, inference precision) —
    # the same rule the profiler times with unless `arithmetic` said otherwise.
    arithmetic: str = "timed"
    execution: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as strict JSON can hold them: an infinite value (SNR of identical outputs, +inf; of a zero
        reference with an error, -inf) becomes the string "inf" / "-inf"."""
        return {k: (("inf" if v > 0 else "-inf") if isinstance(v, float) and math.isinf(v) else v)
                for k, v in asdict(self).items()}

    def failure_reason(self) -> str:
        """One line naming each budget that was exceeded and by how much; '' when it passed.

        A budget whose statistic was not measured (an older result, or top-1 agreement of a model with no
        classifier-shaped output) is not reported here: `check_parity` decides what can be gated.
        """
        reasons = []
        gated = self.max_abs_diff if self.abs_diff_stat is None else self.abs_diff_stat
        if self.budget_max_abs_diff is not None and not _within(gated, self.budget_max_abs_diff):
            reasons.append(f"{self.error_stat} |Δ| {gated:.3g} > budget {self.budget_max_abs_diff:.3g}")
        if _exceeds(self.snr_db, self.budget_min_snr_db, lower=True):
            reasons.append(f"SNR {self.snr_db:.1f} dB < budget {self.budget_min_snr_db:g} dB")
        if _exceeds(self.rel_l2, self.budget_max_rel_l2, lower=False):
            reasons.append(f"rel L2 {self.rel_l2:.3g} > budget {self.budget_max_rel_l2:g}")
        if _exceeds(self.cosine, self.budget_min_cosine, lower=True):
            reasons.append(f"cosine {self.cosine:.6f} < budget {self.budget_min_cosine:g}")
        if _exceeds(self.top1_agreement, self.budget_min_top1_agreement, lower=True):
            reasons.append(f"top-1 agreement {self.top1_agreement:.2f} < budget {self.budget_min_top1_agreement:g}")
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
    max_abs_diff: float | None = None,
    max_metric_delta: float | None = None,
    error_stat: ErrorStat = "max",
    min_snr_db: float | None = None,
    max_rel_l2: float | None = None,
    min_cosine: float | None = None,
    min_top1_agreement: float | None = None,
    agreement: bool = False,
    batch_size: int = 64,
    threads: int = 2,
    arithmetic: str = "timed",
) -> ParityResult:
    """Run PyTorch (eval, no_grad) and `runtime` (CPU) on `inputs`; compare outputs and the metric.

    `onnx_path` is the artifact: an .onnx for onnxruntime, an OpenVINO .xml for openvino. `max_abs_diff` is the
    budget of `error_stat` of |Δ| over every output element: its maximum, 99th percentile or median. It is
    absolute, so it cannot fail a model whose outputs are tiny; the scaled budgets can: `min_snr_db`,
    `max_rel_l2`, `min_cosine` (each the worst output's), and `min_top1_agreement` for classifier outputs.
    Every budget that is not None is gated; at least one must be given (a check that gates nothing passes
    every file). `agreement=True` measures top-1/top-5 agreement of the classifier-shaped outputs ([N, C],
    C >= 2) without gating them; `min_top1_agreement` implies it, and is not gated for a model with no such
    output (its other budgets still are).

    `metric_fn(outputs, targets)` gets the first output as an array (a model with several outputs:
    the tuple of arrays). With no `metric_fn` the metric fields are None and only outputs are gated.

    >>> result = check_parity(model, "student.onnx", x, targets=y, metric_fn=score, max_abs_diff=1e-4,
    ...                       max_metric_delta=0.01)
    >>> result = check_parity(model, "model.xml", x, runtime="openvino", precision="fp16",
    ...                       **SCALED_BUDGETS["fp16"])
    """
    if batch_size < 1:
        raise EdgekdError(f"parity batch_size must be >= 1, got {batch_size}")
    if error_stat not in ERROR_STATS:
        raise EdgekdError(f"parity error_stat must be one of {', '.join(ERROR_STATS)}, got {error_stat!r}")
    _check_budgets(max_abs_diff, max_metric_delta, metric_fn, min_snr_db, max_rel_l2, min_cosine, min_top1_agreement)
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    if len(inputs) == 0:
        raise EdgekdError("parity check needs at least one input sample")
    reference = _torch_outputs(torch_model, inputs, batch_size)
    outputs, execution = _runtime_outputs(Path(onnx_path), runtime, precision, inputs, batch_size, threads, arithmetic)
    if len(reference) != len(outputs):
        raise EdgekdError(f"{Path(onnx_path).name}: {len(outputs)} outputs, the PyTorch model has {len(reference)}")
    abs_diff, rel_diff, stat = _differences(reference, outputs, ERROR_STATS[error_stat])
    scaled = scaled_stats(reference, outputs, agreement=agreement or min_top1_agreement is not None)
    metric_torch = metric_runtime = delta = None
    if metric_fn is not None:
        metric_torch = float(metric_fn(_for_metric(reference), targets))
        metric_runtime = float(metric_fn(_for_metric(outputs), targets))
        delta = metric_runtime - metric_torch
    result = ParityResult(len(inputs), abs_diff, rel_diff, metric_torch, metric_runtime, delta,
                          max_abs_diff, max_metric_delta, False, error_stat, stat, **asdict(scaled),
                          budget_min_snr_db=min_snr_db, budget_max_rel_l2=max_rel_l2, budget_min_cosine=min_cosine,
                          budget_min_top1_agreement=min_top1_agreement, arithmetic=arithmetic, execution=execution)
    # One rule for passing and for the message: passed exactly when no budget is named as exceeded.
    # np.percentile propagates NaN like np.max, and every scaled statistic is NaN on a NaN: NaN fails every gate.
    result.passed = result.failure_reason() == ""
    return result


def _check_budgets(max_abs_diff: float | None, max_metric_delta: float | None, metric_fn: MetricFn | None,
                   min_snr_db: float | None, max_rel_l2: float | None, min_cosine: float | None,
                   min_top1_agreement: float | None) -> None:
    """Refuse budgets no file can meet or that gate nothing: either would make the check meaningless."""
    output_budgets = (max_abs_diff, min_snr_db, max_rel_l2, min_cosine, min_top1_agreement)
    if all(b is None for b in output_budgets) and (max_metric_delta is None or metric_fn is None):
        raise EdgekdError("parity check with no budget would pass any file: give max_abs_diff, min_snr_db, "
                          "max_rel_l2, min_cosine, min_top1_agreement, or max_metric_delta with a metric_fn")
    for name, value, low, high in (("max_abs_diff", max_abs_diff, 0.0, math.inf),
                                   ("max_rel_l2", max_rel_l2, 0.0, math.inf),
                                   ("min_cosine", min_cosine, -1.0, 1.0),
                                   ("min_top1_agreement", min_top1_agreement, 0.0, 1.0)):
        if value is not None and not low <= value <= high:
            raise EdgekdError(f"parity {name} must be in [{low:g}, {high:g}], got {value}")
    if min_snr_db is not None and math.isnan(min_snr_db):
        raise EdgekdError("parity min_snr_db must be a number, got nan")


def assert_parity(result: ParityResult, context: str) -> None:
    """Raise CheckFailed (exit 1) when `result` is out of budget; `context` names what was checked."""
    if not result.passed:
        raise CheckFailed(f"{context}: parity out of budget — {result.failure_reason()}")


def _within(value: float, budget: float) -> bool:
    # Written so that NaN (a broken graph) is never "within" any budget.
    return not math.isnan(value) and value <= budget


def _at_least(value: float, budget: float) -> bool:
    # The lower-bound twin of `_within`: NaN is never at least anything.
    return not math.isnan(value) and value >= budget


def _exceeds(value: float | None, budget: float | None, *, lower: bool) -> bool:
    """Whether a measured statistic is out of its budget; an ungated (None) budget or unmeasured value is not."""
    if budget is None or value is None:
        return False
    return not (_at_least(value, budget) if lower else _within(value, budget))


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
                     threads: int, arithmetic: str) -> tuple[list[np.ndarray], dict[str, Any]]:
    from edgekd.profile.sessions import open_session

    # "timed": the execution the profiler times (OpenVINO: f32 for fp32/int8 files, the plugin's choice for fp16),
    # so that a latency and the accuracy next to it in the report come from one and the same execution.
    session = open_session(path, runtime, threads=threads, precision=precision, arithmetic=arithmetic)
    first = session.input_shape[0] if session.input_shape else None
    fixed = first if isinstance(first, int) else None
    step = fixed or batch_size
    chunks = []
    for start in range(0, len(inputs), step):
        batch = inputs[start:start + step]
        padded = _pad(batch, fixed) if fixed else batch  # a static-batch file gets full batches, then is trimmed
        chunks.append([np.asarray(o, dtype=np.float32)[:len(batch)] for o in session.run(padded)])
    return _concat(chunks), session.settings()


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


def _nan_last(value: float) -> float:
    # For statistics where smaller is worse (SNR, cosine, agreement): NaN ranks below everything.
    return -math.inf if math.isnan(value) else value


def scaled_stats(reference: list[np.ndarray], runtime: list[np.ndarray], *, agreement: bool = False) -> ScaledStats:
    """The scaled statistics of each output, aggregated as the worst output's (largest rel_l2, smallest SNR,
    cosine and agreement), so that a well-matched large output does not hide a broken small one."""
    if len(reference) != len(runtime) or not reference:
        raise EdgekdError(f"scaled parity needs the same, nonzero number of outputs: {len(reference)} vs "
                          f"{len(runtime)}")
    per_output = [output_stats(a, b, agreement=agreement) for a, b in zip(reference, runtime)]
    worst = ScaledStats(
        rel_l2=max((s.rel_l2 for s in per_output), key=_nan_first),
        snr_db=min((s.snr_db for s in per_output), key=_nan_last),
        cosine=min((s.cosine for s in per_output), key=_nan_last),
    )
    classifiers = [s for s in per_output if s.top1_agreement is not None]
    if classifiers:
        worst.top1_agreement = min((s.top1_agreement for s in classifiers), key=_nan_last)
        worst.top5_agreement = min((s.top5_agreement for s in classifiers), key=_nan_last)
    return worst


def output_stats(a: np.ndarray, b: np.ndarray, *, agreement: bool = False) -> ScaledStats:
    """Scaled statistics of one runtime output `b` against its reference `a` (float64 sums; NaN propagates)."""
    if a.shape != b.shape:
        raise EdgekdError(f"output shape differs: PyTorch {a.shape}, runtime {b.shape}")
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    with np.errstate(all="ignore"):  # inf/NaN outputs give inf/NaN statistics, which fail their gates
        signal, noise = float(np.sum(a64 * a64)), float(np.sum((a64 - b64) ** 2))
        stats = ScaledStats(rel_l2=_rel_l2(signal, noise), snr_db=_snr_db(signal, noise),
                            cosine=_cosine(a64, b64, signal))
    if agreement and is_classifier_output(a):
        stats.top1_agreement, stats.top5_agreement = _agreements(a, b)
    return stats


def is_classifier_output(array: np.ndarray) -> bool:
    """[N, C] with C >= 2: the shape top-k agreement is defined on."""
    return array.ndim == 2 and array.shape[1] >= 2


def _rel_l2(signal: float, noise: float) -> float:
    if noise == 0.0:
        return 0.0
    return math.inf if signal == 0.0 else math.sqrt(noise) / math.sqrt(signal)


def _snr_db(signal: float, noise: float) -> float:
    if math.isnan(signal) or math.isnan(noise):
        return math.nan
    if noise == 0.0:
        return math.inf
    if signal == 0.0 or math.isinf(noise):
        return -math.inf
    return 10.0 * math.log10(signal / noise) if not math.isinf(signal) else math.nan


def _cosine(a: np.ndarray, b: np.ndarray, signal: float) -> float:
    other = float(np.sum(b * b))
    if math.isnan(signal) or math.isnan(other):
        return math.nan
    if signal == 0.0 or other == 0.0:
        return 1.0 if signal == other else 0.0
    cos = float(np.dot(a, b)) / (math.sqrt(signal) * math.sqrt(other))  # inf/inf: NaN, which fails
    return cos if math.isnan(cos) else min(1.0, max(-1.0, cos))


def _agreements(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(top-1, top-5) agreement of [N, C] logits; NaN when either side is not finite (argmax would pick a NaN)."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.nan, math.nan
    k = min(TOP_K, a.shape[1])
    expected = np.argmax(a, axis=1)
    top1 = float(np.mean(np.argmax(b, axis=1) == expected))
    top_k = np.argpartition(-b, k - 1, axis=1)[:, :k]
    top5 = float(np.mean(np.any(top_k == expected[:, None], axis=1)))
    return top1, top5


def _for_metric(outputs: list[np.ndarray]) -> Any:
    return outputs[0] if len(outputs) == 1 else tuple(outputs)
