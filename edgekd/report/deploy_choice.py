"""Which precision each runtime should ship, decided from measurements, never assumed.

int8 is not automatically faster: on an x86 CPU ONNX Runtime runs the convs of a TensorRT-style Q/DQ file in
float, and on a small model the Quantize/Dequantize work around each int8 kernel can cost more than the
integer arithmetic saves.
'auto' therefore picks the fastest *measured* precision whose metric is within budget, and the reason
says how the candidates compared.
"""

from __future__ import annotations

from typing import Iterable

from edgekd.report.schema import DeployChoice, DeploymentEntry

ELIGIBLE_VARIANTS = ("float", "qat")
# A lower precision must beat a higher one by more than this to be chosen: two files within a few percent of
# each other are the same speed within the noise of one profiling run, and the higher precision is safer.
MIN_GAIN = 0.03
PREFERENCE = ("fp32", "fp16", "int8")


def speedups(entries: list[DeploymentEntry]) -> None:
    """Fill `speedup_vs_fp32`: the same role's fp32 p50 on the same runtime divided by this entry's p50."""
    fp32 = {(e.role, e.runtime): e.latency.stats.p50_ms for e in entries
            if e.precision == "fp32" and e.variant == "float" and e.latency is not None}
    for entry in entries:
        base = fp32.get((entry.role, entry.runtime))
        if entry.latency is not None and base and entry.latency.stats.p50_ms > 0:
            entry.speedup_vs_fp32 = base / entry.latency.stats.p50_ms


def choose(
    entries: Iterable[DeploymentEntry], policy: dict[str, str], *, budget: float, lower_is_better: bool,
    role: str = "student",
) -> dict[str, DeployChoice]:
    """{runtime: choice} for every runtime in `policy` ('auto' or a fixed precision)."""
    entries = [e for e in entries if e.role == role and e.variant in ELIGIBLE_VARIANTS]
    return {runtime: _choose_one([e for e in entries if e.runtime == runtime], runtime, wanted, budget,
                                 lower_is_better)
            for runtime, wanted in policy.items()}


def _choose_one(entries, runtime: str, wanted: str, budget: float, lower_is_better: bool) -> DeployChoice:
    measured = [e for e in entries if e.status == "passed" and e.latency is not None]
    if wanted != "auto":
        entry = next((e for e in entries if e.precision == wanted), None)
        if entry is None:
            return DeployChoice(precision=None, reason=f"{wanted} was not exported for {runtime}")
        return DeployChoice(precision=wanted, reason=f"fixed by the recipe (export.deploy.{runtime}); "
                            + (_timing(entry) if entry.latency else f"status {entry.status}"))
    eligible = [e for e in measured if _within_budget(e, budget, lower_is_better)]
    if not eligible:
        return DeployChoice(precision=None, reason=f"no {runtime} file passed parity and was measured on this host")
    fastest = min(eligible, key=lambda e: e.latency.stats.p50_ms)
    close = [e for e in eligible if e.latency.stats.p50_ms <= fastest.latency.stats.p50_ms * (1 + MIN_GAIN)]
    best = min(close, key=lambda e: PREFERENCE.index(e.precision) if e.precision in PREFERENCE else len(PREFERENCE))
    others = [e for e in measured if e is not best]
    compared = "; ".join(_versus(e, best) for e in others)
    excluded = [e.precision for e in measured if e not in eligible]
    lead = "fastest measured" if best is fastest else (
        f"{fastest.precision} is within {MIN_GAIN:.0%}: not measurably faster, so the higher precision")
    reason = f"{lead}: {_timing(best)}" + (f"; {compared}" if compared else "")
    if excluded:
        reason += f"; over the metric budget: {', '.join(excluded)}"
    return DeployChoice(precision=best.precision, reason=reason)


def _within_budget(entry: DeploymentEntry, budget: float, lower_is_better: bool) -> bool:
    if entry.precision != "int8" or entry.metric_delta_vs_float is None:
        return True
    worse = entry.metric_delta_vs_float if lower_is_better else -entry.metric_delta_vs_float
    return worse <= budget


def _timing(entry: DeploymentEntry) -> str:
    return f"{entry.precision} p50 {entry.latency.stats.p50_ms:.3f} ms"


def _versus(entry: DeploymentEntry, best: DeploymentEntry) -> str:
    ratio = entry.latency.stats.p50_ms / best.latency.stats.p50_ms
    return f"{entry.precision} {entry.latency.stats.p50_ms:.3f} ms ({ratio:.2f}× the time)"
