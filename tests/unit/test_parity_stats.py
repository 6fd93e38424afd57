"""Scaled parity statistics (relative L2, SNR, cosine, top-k agreement) and their budgets, on hand-made arrays.

The runtime side of `check_parity` is replaced by given arrays, so every budget is exercised without a runtime;
tests/backend/test_parity_broken.py runs the same budgets on real exported files.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekd.errors import CheckFailed, EdgekdError  # noqa: E402
from edgekd.export import parity as parity_module  # noqa: E402
from edgekd.export.parity import (  # noqa: E402
    SCALED_BUDGETS,
    ParityResult,
    assert_parity,
    check_parity,
    output_stats,
    scaled_stats,
)
from edgekd.recipe.common import ExportConfig, ParityBudget  # noqa: E402

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((8, 10)).astype(np.float32)


def _parity(reference: np.ndarray, runtime: np.ndarray | list[np.ndarray], monkeypatch, **budgets) -> ParityResult:
    """`check_parity` of an identity model (its output is its input, `reference`) against given runtime outputs."""
    outputs = runtime if isinstance(runtime, list) else [runtime]
    monkeypatch.setattr(parity_module, "_runtime_outputs",
                        lambda *args: ([np.asarray(o, np.float32) for o in outputs], {"inference_precision": "f32"}))
    return check_parity(torch.nn.Identity(), "unused.onnx", reference, **budgets)


# --- the statistics -----------------------------------------------------------------------------------------------

def test_identical_outputs_are_perfect() -> None:
    stats = output_stats(LOGITS, LOGITS.copy(), agreement=True)
    assert (stats.rel_l2, stats.snr_db, stats.cosine) == (0.0, math.inf, 1.0)
    assert (stats.top1_agreement, stats.top5_agreement) == (1.0, 1.0)


def test_a_scaled_output_keeps_its_cosine_and_agreement_but_not_its_snr() -> None:
    stats = output_stats(LOGITS, 2 * LOGITS, agreement=True)
    assert stats.rel_l2 == pytest.approx(1.0) and stats.snr_db == pytest.approx(0.0, abs=1e-9)
    assert stats.cosine == pytest.approx(1.0) and stats.top1_agreement == 1.0


def test_snr_and_relative_l2_are_one_quantity_in_two_units() -> None:
    noisy = LOGITS + 0.01 * RNG.standard_normal(LOGITS.shape).astype(np.float32)
    stats = output_stats(LOGITS, noisy)
    assert stats.snr_db == pytest.approx(-20 * math.log10(stats.rel_l2))
    assert 35 < stats.snr_db < 45 and 0.9999 < stats.cosine < 1.0


def test_the_statistics_do_not_depend_on_the_outputs_magnitude() -> None:
    noisy = LOGITS + 0.05 * RNG.standard_normal(LOGITS.shape).astype(np.float32)
    big, tiny = output_stats(LOGITS, noisy), output_stats(LOGITS * 1e-6, noisy * 1e-6)
    assert tiny.snr_db == pytest.approx(big.snr_db, abs=1e-3) and tiny.cosine == pytest.approx(big.cosine)


def test_zero_reference() -> None:
    zeros = np.zeros((4, 3), np.float32)
    both = output_stats(zeros, zeros)
    assert (both.rel_l2, both.snr_db, both.cosine) == (0.0, math.inf, 1.0)
    one = output_stats(zeros, zeros + 1e-3)
    assert (one.rel_l2, one.snr_db, one.cosine) == (math.inf, -math.inf, 0.0)
    assert output_stats(LOGITS, np.zeros_like(LOGITS)).cosine == 0.0  # a zeroed classifier


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_nan_or_inf_makes_every_statistic_fail(bad: float) -> None:
    runtime = LOGITS.copy()
    runtime[3, 4] = bad
    stats = output_stats(LOGITS, runtime, agreement=True)
    assert not stats.rel_l2 <= 1e9 and not stats.snr_db >= -1e9 and not stats.cosine >= -1.0
    assert math.isnan(stats.top1_agreement) and math.isnan(stats.top5_agreement)


def test_agreement_counts_samples() -> None:
    runtime = LOGITS.copy()
    expected = np.argmax(LOGITS, axis=1)
    runtime[0, expected[0]] = LOGITS[0].min() - 1  # sample 0: its top-1 class drops to last place
    second = np.argsort(LOGITS[1])[-2]
    runtime[1, second] = LOGITS[1].max() + 1  # sample 1: top-1 swaps with the runner-up, still in the top-5
    stats = output_stats(LOGITS, runtime, agreement=True)
    assert stats.top1_agreement == pytest.approx(6 / 8) and stats.top5_agreement == pytest.approx(7 / 8)


def test_top5_is_top_c_for_fewer_than_five_classes() -> None:
    two = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    stats = output_stats(two, two[:, ::-1].copy(), agreement=True)
    assert stats.top1_agreement == 0.0 and stats.top5_agreement == 1.0  # top-2 of 2 classes holds every class


@pytest.mark.parametrize("shape", [(8,), (8, 1), (8, 3, 4), (8, 3, 4, 4)])
def test_agreement_is_for_classifier_shaped_outputs_only(shape: tuple[int, ...]) -> None:
    array = RNG.standard_normal(shape).astype(np.float32)
    stats = output_stats(array, array, agreement=True)
    assert stats.top1_agreement is None and stats.top5_agreement is None
    assert output_stats(LOGITS, LOGITS).top1_agreement is None  # not asked for


def test_several_outputs_report_the_worst_one() -> None:
    boxes = RNG.standard_normal((8, 4, 6)).astype(np.float32) * 100
    good_boxes = boxes + 1e-3 * RNG.standard_normal(boxes.shape).astype(np.float32)
    broken_scores = LOGITS[:, ::-1].copy()
    worst = scaled_stats([boxes, LOGITS], [good_boxes, broken_scores], agreement=True)
    alone = output_stats(LOGITS, broken_scores, agreement=True)
    assert (worst.rel_l2, worst.snr_db, worst.cosine) == (alone.rel_l2, alone.snr_db, alone.cosine)
    assert worst.top1_agreement == alone.top1_agreement  # the boxes output has no classes


def test_nan_ranks_worst_over_outputs() -> None:
    nan_out = LOGITS.copy()
    nan_out[0, 0] = math.nan
    worst = scaled_stats([LOGITS, LOGITS], [LOGITS * 3, nan_out], agreement=True)
    assert all(math.isnan(v) for v in (worst.rel_l2, worst.snr_db, worst.cosine, worst.top1_agreement))


# --- the budgets --------------------------------------------------------------------------------------------------

def test_each_scaled_budget_passes_and_fails(monkeypatch) -> None:
    noisy = LOGITS + 0.01 * RNG.standard_normal(LOGITS.shape).astype(np.float32)  # about 40 dB
    for budget, good, bad in (("min_snr_db", 30.0, 50.0), ("max_rel_l2", 0.03, 0.003),
                              ("min_cosine", 0.999, 0.99999)):
        assert _parity(LOGITS, noisy, monkeypatch, **{budget: good}).passed, budget
        failed = _parity(LOGITS, noisy, monkeypatch, **{budget: bad})
        assert not failed.passed and failed.failure_reason(), budget
    swapped = LOGITS.copy()
    swapped[:2] = swapped[:2, ::-1]  # two of eight samples disagree
    assert _parity(LOGITS, swapped, monkeypatch, min_top1_agreement=0.75).passed
    result = _parity(LOGITS, swapped, monkeypatch, min_top1_agreement=0.9)
    assert not result.passed and result.failure_reason() == "top-1 agreement 0.75 < budget 0.9"


def test_failure_reason_names_every_exceeded_budget_in_one_line(monkeypatch) -> None:
    result = _parity(LOGITS, LOGITS[:, ::-1].copy(), monkeypatch, max_abs_diff=1e-3, min_snr_db=20,
                     max_rel_l2=0.1, min_cosine=0.99, min_top1_agreement=0.9)
    reason = result.failure_reason()
    assert not result.passed and "\n" not in reason
    parts = reason.split("; ")
    assert [p.split(" ")[0] for p in parts] == ["max", "SNR", "rel", "cosine", "top-1"], reason
    assert parts[1].startswith("SNR ") and parts[1].endswith(" dB < budget 20 dB")
    with pytest.raises(CheckFailed, match="parity out of budget — max |Δ|"):
        assert_parity(result, "model.onnx")


def test_the_absolute_budget_passes_tiny_outputs_the_scaled_ones_fail(monkeypatch) -> None:
    tiny = LOGITS * 1e-6
    zeroed_classifier = np.zeros_like(tiny)
    result = _parity(tiny, zeroed_classifier, monkeypatch, max_abs_diff=1e-3, **SCALED_BUDGETS["fp32"])
    assert result.max_abs_diff < 1e-5 and "|Δ|" not in result.failure_reason()  # the old check: passed
    assert not result.passed and result.snr_db == 0.0 and result.top1_agreement is not None


def test_nan_fails_every_budget(monkeypatch) -> None:
    runtime = LOGITS.copy()
    runtime[5, 2] = math.nan
    result = _parity(LOGITS, runtime, monkeypatch, max_abs_diff=math.inf, min_snr_db=-math.inf, max_rel_l2=math.inf,
                     min_cosine=-1.0, min_top1_agreement=0.0)
    assert not result.passed
    assert result.failure_reason().count("nan") == 5, result.failure_reason()


def test_max_abs_diff_none_is_not_gated_but_still_reported(monkeypatch) -> None:
    result = _parity(LOGITS, LOGITS * 3, monkeypatch, min_cosine=0.999)  # cosine is blind to scale
    assert result.passed and result.budget_max_abs_diff is None and result.max_abs_diff > 1.0


def test_agreement_budget_is_not_gated_without_a_classifier_output(monkeypatch) -> None:
    maps = RNG.standard_normal((4, 3, 5, 5)).astype(np.float32)
    result = _parity(maps, maps, monkeypatch, min_top1_agreement=0.99, min_snr_db=20)
    assert result.passed and result.top1_agreement is None
    assert not _parity(maps, -maps, monkeypatch, min_top1_agreement=0.99, min_snr_db=20).passed


def test_a_check_that_gates_nothing_or_cannot_pass_is_refused(monkeypatch) -> None:
    with pytest.raises(EdgekdError, match="no budget would pass any file"):
        _parity(LOGITS, LOGITS, monkeypatch)
    with pytest.raises(EdgekdError, match="no budget"):
        _parity(LOGITS, LOGITS, monkeypatch, max_metric_delta=0.1)  # no metric_fn: the metric is not measured
    for bad in ({"min_top1_agreement": 1.5}, {"min_cosine": -2.0}, {"max_rel_l2": -0.1}, {"min_snr_db": math.nan}):
        with pytest.raises(EdgekdError, match="must be"):
            _parity(LOGITS, LOGITS, monkeypatch, **bad)


def test_old_style_calls_and_results_keep_working(monkeypatch) -> None:
    result = _parity(LOGITS, LOGITS + 1e-5, monkeypatch, max_abs_diff=1e-4, max_metric_delta=None, error_stat="p99")
    assert result.passed and result.rel_l2 is not None and result.top1_agreement is None
    old = ParityResult(4, 0.5, 0.1, None, None, None, 1e-3, None, False)  # positional, as before the scaled stats
    assert old.failure_reason() == "max |Δ| 0.5 > budget 0.001" and old.to_dict()["budget_min_snr_db"] is None


def test_scaled_budgets_cover_every_precision_with_known_arguments(monkeypatch) -> None:
    assert set(SCALED_BUDGETS) == {"fp32", "fp16", "int8"}
    snr = [SCALED_BUDGETS[p]["min_snr_db"] for p in ("fp32", "fp16", "int8")]
    assert snr == sorted(snr, reverse=True) and snr[-1] > 4  # looser with fewer bits; above every bad file measured
    for budgets in SCALED_BUDGETS.values():
        assert _parity(LOGITS, LOGITS, monkeypatch, **budgets).passed
        assert ParityBudget(max_abs_diff=None, **budgets).max_abs_diff is None


def test_recipe_parity_budget_fields() -> None:
    budget = ParityBudget()
    assert budget.max_abs_diff == 1e-3 and budget.min_snr_db is None and budget.min_top1_agreement is None
    assert ExportConfig().parity_int8.max_abs_diff == 0.1  # recipe defaults unchanged
    assert ParityBudget(max_abs_diff=None, min_snr_db=25, min_cosine=0.99).max_abs_diff is None
    for bad in ({"min_top1_agreement": 1.2}, {"min_cosine": 1.5}, {"max_rel_l2": -1}, {"min_snr": 3},
                {"min_snr_db": float("nan")}):
        with pytest.raises(ValueError):
            ParityBudget(**bad)
