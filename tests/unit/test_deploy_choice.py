"""Which precision to ship per runtime: decided from measured latency and the metric budget, with the reason."""

from __future__ import annotations

import pytest

from edgekd.profile.local import ProfileResult
from edgekd.profile.stats import LatencyStats
from edgekd.report.deploy_choice import choose, speedups
from edgekd.report.schema import DeploymentEntry


def latency(p50: float, runtime: str = "onnxruntime", precision: str = "fp32") -> ProfileResult:
    return ProfileResult(
        runtime=runtime, model=f"student.{precision}", sha256="0" * 64, precision=precision, threads=2, batch_size=1,
        input_shape=[1, 3, 32, 32], warmup=5, runs=3, stats=LatencyStats.from_samples([p50 * 0.9, p50, p50 * 1.2]),
        cold_start_ms=5.0, peak_rss_mb=None, environment={"cpu": "Test CPU"},
    )


def entry(precision: str, p50: float | None, *, runtime: str = "onnxruntime", variant: str | None = None,
          role: str = "student", status: str = "passed", delta: float | None = None) -> DeploymentEntry:
    variant = variant or ("qat" if precision == "int8" else "float")
    return DeploymentEntry(
        role=role, variant=variant, backend=runtime, runtime=runtime, precision=precision, status=status,
        metric_delta_vs_float=delta, latency=latency(p50, runtime, precision) if p50 is not None else None,
    )


def pick(entries, policy=None, budget: float = 0.5, lower_is_better: bool = True):
    return choose(entries, policy or {"onnxruntime": "auto"}, budget=budget, lower_is_better=lower_is_better)


def test_auto_picks_the_fastest_within_budget() -> None:
    choice = pick([entry("fp32", 4.0), entry("int8", 2.0, delta=0.1)])["onnxruntime"]
    assert choice.precision == "int8"
    assert choice.reason.startswith("fastest measured: int8 p50 2.000 ms")
    assert "fp32 4.000 ms (2.00× the time)" in choice.reason


def test_int8_over_the_metric_budget_is_excluded_and_named() -> None:
    # lower is better: a +0.8 error increase is worse than the 0.5 budget
    choice = pick([entry("fp32", 4.0), entry("int8", 2.0, delta=0.8)])["onnxruntime"]
    assert choice.precision == "fp32"
    assert choice.reason.endswith("over the metric budget: int8")


def test_budget_direction_follows_the_metric() -> None:
    # higher is better: a drop of 0.8 is over budget, a gain of 0.8 is fine
    dropped = pick([entry("fp32", 4.0), entry("int8", 2.0, delta=-0.8)], lower_is_better=False)
    gained = pick([entry("fp32", 4.0), entry("int8", 2.0, delta=0.8)], lower_is_better=False)
    assert dropped["onnxruntime"].precision == "fp32" and gained["onnxruntime"].precision == "int8"


def test_slower_int8_loses_to_fp32_and_the_reason_gives_the_ratio() -> None:
    choice = pick([entry("fp32", 2.0), entry("int8", 3.0, delta=0.0)])["onnxruntime"]
    assert choice.precision == "fp32"
    assert choice.reason == "fastest measured: fp32 p50 2.000 ms; int8 3.000 ms (1.50× the time)"


def test_fixed_precision_is_honoured_even_when_slower() -> None:
    entries = [entry("fp32", 2.0), entry("int8", 3.0, delta=0.9)]
    choice = pick(entries, {"onnxruntime": "int8"})["onnxruntime"]
    assert choice.precision == "int8"
    assert choice.reason == "fixed by the recipe (export.deploy.onnxruntime); int8 p50 3.000 ms"


def test_fixed_precision_without_a_measurement_gives_its_status() -> None:
    choice = pick([entry("fp16", None, runtime="tensorrt", status="bundle")], {"tensorrt": "fp16"})["tensorrt"]
    assert choice.precision == "fp16" and choice.reason.endswith("status bundle")


def test_fixed_precision_that_was_not_exported() -> None:
    choice = pick([entry("fp32", 2.0)], {"onnxruntime": "fp16"})["onnxruntime"]
    assert choice.precision is None and choice.reason == "fp16 was not exported for onnxruntime"


@pytest.mark.parametrize("entries", [
    [],
    [entry("fp32", None, status="bundle")],  # exported, never measured
    [entry("fp32", 2.0, status="failed")],   # measured but failed parity
])
def test_nothing_measured_means_no_choice(entries) -> None:
    choice = pick(entries)["onnxruntime"]
    assert choice.precision is None and "no onnxruntime file passed parity and was measured" in choice.reason


def test_each_runtime_is_decided_from_its_own_entries() -> None:
    entries = [entry("fp32", 2.0), entry("int8", 1.0, delta=0.0),
               entry("fp32", 1.0, runtime="openvino"), entry("fp16", 3.0, runtime="openvino")]
    choices = pick(entries, {"onnxruntime": "auto", "openvino": "auto"})
    assert choices["onnxruntime"].precision == "int8" and choices["openvino"].precision == "fp32"


def test_other_roles_and_ptq_variants_are_not_candidates() -> None:
    entries = [entry("fp32", 4.0), entry("int8", 1.0, role="teacher", delta=0.0),
               entry("int8", 1.0, variant="ptq", delta=0.0)]
    assert pick(entries)["onnxruntime"].precision == "fp32"


def test_speedups_fill_speedup_vs_fp32_per_role_and_runtime() -> None:
    entries = [entry("fp32", 4.0), entry("int8", 2.0), entry("fp32", 8.0, role="teacher"),
               entry("int8", 1.0, role="teacher"), entry("fp16", 3.0, runtime="openvino"),
               entry("fp32", None, runtime="tensorrt", status="bundle")]
    speedups(entries)
    student_fp32, student_int8, teacher_fp32, teacher_int8, ov_fp16, trt = entries
    assert student_fp32.speedup_vs_fp32 == pytest.approx(1.0)
    assert student_int8.speedup_vs_fp32 == pytest.approx(2.0)
    assert teacher_int8.speedup_vs_fp32 == pytest.approx(8.0) and teacher_fp32.speedup_vs_fp32 == pytest.approx(1.0)
    assert ov_fp16.speedup_vs_fp32 is None  # no fp32 on openvino to compare with
    assert trt.speedup_vs_fp32 is None


def test_a_lower_precision_within_noise_of_a_higher_one_is_not_chosen() -> None:
    entries = [entry("fp32", 4.00), entry("fp16", 3.96), entry("int8", 5.0, delta=0.0)]
    choice = pick(entries)["onnxruntime"]
    assert choice.precision == "fp32"
    assert "not measurably faster" in choice.reason


def test_a_clearly_faster_lower_precision_is_chosen() -> None:
    entries = [entry("fp32", 4.00), entry("fp16", 3.00)]
    assert pick(entries)["onnxruntime"].precision == "fp16"
