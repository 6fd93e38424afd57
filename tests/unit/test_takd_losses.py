"""MonoTAKD losses (papers.md §4.2): golden numbers derived by hand in the comments."""

from __future__ import annotations

import math

import pytest
import torch

from edgekd.distill import takd
from edgekd.distill.losses import KD_LOSSES


def bev(*values: float) -> torch.Tensor:
    """A (1, 1, 2, 2) map from four values, row-major."""
    return torch.tensor(values, dtype=torch.float64).reshape(1, 1, 2, 2)


# Shared hand case.  F_TA = [0, 2, 4, 8] → n(F_TA) = [0, .25, .5, 1]
F_TA = bev(0, 2, 4, 8)
F_T = bev(0.0, 0.25, 0.0, 0.4)
F_S = bev(0, 4, 4, 8)        # n(F_S) = [0, .5, .5, 1]
F_S_RES = bev(0.0, 0.0, 0.5, 1.0)


def test_losses_are_registered() -> None:
    for name in ("imd", "cmrd", "bev_kd", "qfl", "logit_kd", "depth_focal"):
        assert name in KD_LOSSES


def test_minmax_normalise_per_sample_and_per_batch() -> None:
    x = torch.cat([bev(1, 3, 5, 9), bev(2, 2, 2, 4)])
    # per sample: (x − 1)/8 = [0, .25, .5, 1]; (x − 2)/2 = [0, 0, 0, 1]
    torch.testing.assert_close(takd.minmax_normalise(x), torch.cat([bev(0, .25, .5, 1), bev(0, 0, 0, 1)]))
    # whole batch (the official code): min 1, max 9 → second sample (x − 1)/8 = [1/8, 1/8, 1/8, 3/8]
    torch.testing.assert_close(takd.minmax_normalise(x, scope="batch")[1:], bev(1 / 8, 1 / 8, 1 / 8, 3 / 8))


def test_residual_zeroes_entries_below_six_tenths_of_the_max() -> None:
    # |n(F_TA) − F_T| = |[0, .25, .5, 1] − [0, .25, 0, .4]| = [0, 0, .5, .6]; 0.6 · .6 = .36 → .5 and .6 stay
    torch.testing.assert_close(takd.residual_target(F_TA, F_T), bev(0, 0, 0.5, 0.6))
    # a larger F_T entry: |[0, .25, .5, 1] − [.5, .25, 0, .1]| = [.5, 0, .5, .9]; .54 threshold → only .9 stays
    torch.testing.assert_close(takd.residual_target(F_TA, bev(0.5, 0.25, 0.0, 0.1)), bev(0, 0, 0, 0.9))


def test_imd_value_and_gradient_reach_the_student() -> None:
    student = F_S.clone().requires_grad_(True)
    loss = takd.imd(student, F_TA)
    # n(F_S) − n(F_TA) = [0, .25, 0, 0] → mean of squares = .0625 / 4 = 0.015625
    assert loss.item() == pytest.approx(0.015625)
    loss.backward()
    # dL/dn = 2·diff/4 = [0, .125, 0, 0].  n1 = (F1 − F0)/(F3 − F0) with F0 = min 0, F3 = max 8, F1 = 4:
    # dn1/dF1 = 1/8; dn1/dF0 = (F1 − F3)/8² = −1/16; dn1/dF3 = −(F1 − F0)/8² = −1/16
    # → grad = .125 · [−1/16, 1/8, 0, −1/16] = [−0.0078125, 0.015625, 0, −0.0078125]
    torch.testing.assert_close(student.grad, bev(-0.0078125, 0.015625, 0.0, -0.0078125))


def test_imd_detached_like_the_official_code_gives_no_gradient() -> None:
    student = F_S.clone().requires_grad_(True)
    loss = takd.imd(student, F_TA, detach=True)
    assert loss.item() == pytest.approx(0.015625)  # same value as above
    assert not loss.requires_grad


def test_cmrd_and_bev_kd() -> None:
    # F_res = [0, 0, .5, .6]; F_S' = [0, 0, .5, 1] → squares [0, 0, 0, .16] → mean .04
    assert takd.cmrd(F_S_RES, F_T, assistant=F_TA).item() == pytest.approx(0.04)
    # masked: mask [1, 1, 0, 1] → .16 / 3
    mask = bev(1, 1, 0, 1)
    assert takd.cmrd(F_S_RES, F_T, mask, assistant=F_TA).item() == pytest.approx(0.16 / 3)
    # L_bev = IMD + 0.2 · CMRD = 0.015625 + 0.2 · 0.04 = 0.023625
    total = takd.bev_kd(F_S, F_T, student_residual=F_S_RES, assistant=F_TA)
    assert total.item() == pytest.approx(0.023625)


def test_cmrd_gradient_reaches_the_residual_branch_only() -> None:
    residual = F_S_RES.clone().requires_grad_(True)
    assistant = F_TA.clone().requires_grad_(True)
    takd.cmrd(residual, F_T, assistant=assistant).backward()
    # d/dF_S' mean((F_S' − F_res)²) = 2·[0, 0, 0, .4]/4 = [0, 0, 0, .2]
    torch.testing.assert_close(residual.grad, bev(0, 0, 0, 0.2))
    assert assistant.grad is None


def cells(*values: float) -> torch.Tensor:
    """A (1, 1, 1, 3) head map."""
    return torch.tensor(values, dtype=torch.float64).reshape(1, 1, 1, 3)


def test_quality_focal_loss_on_hand_logits() -> None:
    student = cells(math.log(3), 0.0, 0.0)                          # sigmoid: .75, .5, .5
    teacher = cells(-math.log(3), math.log(9), -math.log(19))      # sigmoid: .25, .9, .05
    # cell 0: BCE = −(.25 ln .75 + .75 ln .25) = .0719205 + 1.0397208 = 1.1116413; |.75 − .25|² = .25 → .2779103
    # cell 1: BCE = ln 2 = .6931472; |.5 − .9|² = .16 → .1109035
    # cell 2: BCE = ln 2; |.5 − .05|² = .2025 → .1403623  (counted, but not a positive: .05 ≤ .1)
    # positives (> .1): 2 → (.2779103 + .1109035 + .1403623) / 2 = .2645881
    assert takd.quality_focal(student, teacher).item() == pytest.approx(0.2645881, abs=1e-6)


def box_maps(first: list[float], second: list[float]) -> torch.Tensor:
    """A (1, 2, 1, 3) box map: channel 0 and channel 1 over three cells."""
    return torch.tensor([first, second], dtype=torch.float64).reshape(1, 2, 1, 3)


TEACHER_LOGITS = cells(0.0, math.log(3), -math.log(19))  # scores .5, .75, .05 (the last below 0.1)


def test_score_weighted_box_regression_skips_cells_below_point_one() -> None:
    student = box_maps([1.0, 0.0, 5.0], [0.5, 0.0, 0.0])
    teacher = box_maps([0.0, 0.05, 0.0], [0.0, 0.0, 0.0])
    # smooth L1, β = 1/9: |d| ≥ β → |d| − β/2 = |d| − 1/18; |d| < β → d²/(2β) = 4.5·d²
    # cell 0: (1 − 1/18) + (.5 − 1/18) = 1.3888889, × score .5 = .6944444
    # cell 1: 4.5 · .05² = .01125, × score .75 = .0084375
    # cell 2: score .05 → not a positive, ignored;  2 positives → (.6944444 + .0084375) / 2 = .3514410
    value = takd.score_weighted_regression(student, teacher, TEACHER_LOGITS).item()
    assert value == pytest.approx(0.3514410, abs=1e-6)
    far_off = box_maps([1.0, 0.0, -50.0], [0.5, 0.0, 9.0])
    assert takd.score_weighted_regression(far_off, teacher, TEACHER_LOGITS).item() == pytest.approx(value)


def test_logit_kd_weights_cls_box_and_direction() -> None:
    teacher = {"heatmap": TEACHER_LOGITS, "box": box_maps([0.0, 0.05, 0.0], [0.0] * 3),
               "rot": box_maps([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]), "dir": cells(math.log(3), -math.log(3), 0.0)}
    student = {"heatmap": TEACHER_LOGITS.clone(), "box": box_maps([1.0, 0.0, 5.0], [0.5, 0.0, 0.0]),
               "rot": box_maps([0.0, 1.0, 0.0], [1.0, 1.0, 1.0]), "dir": cells(math.log(3), 0.0, 5.0)}
    terms = takd.logit_kd_terms(student, teacher)
    # cls: the student's scores equal the teacher's → |σ − s|^2 = 0 → 0
    assert terms["cls"].item() == pytest.approx(0.0)
    # box over box and yaw-axis channels: the previous test's cells (.6944444, .0084375) plus the axis's sin off
    # by 1 at cell 1: (1 − 1/18) × .75 = .7083333 → / 2 positives = .7056076, × 2.0 = 1.4112153
    assert terms["box"].item() == pytest.approx(1.4112153, abs=1e-6)
    # dir: BCE(x, t) = softplus(x) − t·x. cell 0: ln 4 − .75·ln 3 = .5623351, × .5; cell 1: ln 2 (x = 0), × .75;
    # cell 2 is not a positive → (.2811676 + .5198604) / 2 = .4005140, × 0.4 = .1602056
    assert terms["dir"].item() == pytest.approx(0.1602056, abs=1e-6)
    assert KD_LOSSES.get("logit_kd")(student, teacher).item() == pytest.approx(1.5714209, abs=1e-6)


def test_caddn_depth_focal_loss_balances_foreground() -> None:
    logits = torch.tensor([[0.0, 0.0], [math.log(3), 0.0], [5.0, -5.0]], dtype=torch.float64)
    logits = logits.t().reshape(1, 2, 1, 3)                  # (N, D, H, W): three pixels, two bins
    target = torch.tensor([[[0, 0, -1]]])                    # third pixel: no LiDAR return
    foreground = torch.tensor([[[True, False, True]]])
    # pixel 0: p_t = .5 → −.25 · .5² · ln .5 = .0433217, foreground × 13 = .5631823
    # pixel 1: p_t = .75 → −.25 · .25² · ln .75 = .0044950, background × 1
    # pixel 2 ignored; 2 valid pixels → (.5631823 + .0044950) / 2 = .2838387
    value = takd.depth_focal(logits, target, foreground=foreground).item()
    assert value == pytest.approx(0.2838387, abs=1e-6)
