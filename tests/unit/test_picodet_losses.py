"""PicoDet losses and SimOTA: golden numbers worked out by hand in the comments."""

from __future__ import annotations

import math

import pytest
import torch

from edgekd.tasks.layout.assigner import SimOTAConfig, candidate_masks, simota_assign
from edgekd.tasks.layout.det_losses import (
    PicoDetLoss,
    aligned_iou,
    distribution_focal_loss,
    giou_loss,
    varifocal_loss,
)

LN3 = math.log(3.0)


def test_varifocal_loss_golden() -> None:
    # sigmoid(0) = 0.5, sigmoid(ln 3) = 0.75, sigmoid(−ln 3) = 0.25.
    logits = torch.tensor([0.0, LN3, -LN3, LN3])
    target = torch.tensor([0.8, 0.0, 0.0, 1.0])
    expected = [
        # positive q = 0.8: BCE = −(0.8 ln 0.5 + 0.2 ln 0.5) = ln 2, weighted by q
        0.8 * math.log(2.0),
        # negative, p = 0.75: BCE = −ln(1 − 0.75) = ln 4, weighted by α p^γ = 0.75 · 0.75²
        0.75 * 0.75**2 * math.log(4.0),
        # negative, p = 0.25: BCE = −ln 0.75, weighted by 0.75 · 0.25²
        0.75 * 0.25**2 * -math.log(0.75),
        # positive q = 1, p = 0.75: BCE = −ln 0.75, weighted by 1
        -math.log(0.75),
    ]
    torch.testing.assert_close(varifocal_loss(logits, target), torch.tensor(expected))


def test_distribution_focal_loss_between_two_bins() -> None:
    # Logits ln 3 at bin 2, ln 2 at bin 3, 0 elsewhere: exp-sum = 6·1 + 3 + 2 = 11, so p2 = 3/11, p3 = 2/11.
    logits = torch.zeros(8)
    logits[2], logits[3] = LN3, math.log(2.0)
    # Target 2.3: 0.7 of the CE goes to bin 2, 0.3 to bin 3.
    expected = 0.7 * math.log(11 / 3) + 0.3 * math.log(11 / 2)  # = 1.420923
    got = distribution_focal_loss(logits[None], torch.tensor([2.3]))
    torch.testing.assert_close(got, torch.tensor([expected]))
    # A target on a bin is plain CE on that bin: −ln(2/11) at 3.0.
    torch.testing.assert_close(distribution_focal_loss(logits[None], torch.tensor([3.0])),
                               torch.tensor([math.log(11 / 2)]))


def test_giou_loss_golden() -> None:
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 4.0, 3.0]])
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0], [1.0, 1.0, 4.0, 3.0]])
    expected = [
        # overlap 1, union 4 + 4 − 1 = 7, hull (0,0)-(3,3) = 9: GIoU = 1/7 − 2/9 = −5/63 → loss 68/63
        68 / 63,
        # disjoint: IoU 0, union 2, hull (0,0)-(3,1) = 3: GIoU = −1/3 → loss 4/3
        4 / 3,
        # identical boxes: loss 0
        0.0,
    ]
    torch.testing.assert_close(giou_loss(pred, target), torch.tensor(expected))
    torch.testing.assert_close(aligned_iou(pred, target), torch.tensor([1 / 7, 0.0, 1.0]))


# The assigner hand case: stride 8 everywhere (centre radius 2.5 · 8 = 20 px), two classes, scores 0.5.
# GT0 = (0, 0, 40, 60), label 0, centre (20, 30): centre region x ∈ (0, 40), y ∈ (10, 50).
# GT1 = (30, 10, 60, 30), label 1, centre (45, 20): centre region x ∈ (25, 65), y ∈ (0, 40).
GT_BOXES = torch.tensor([[0.0, 0.0, 40.0, 60.0], [30.0, 10.0, 60.0, 30.0]])
GT_LABELS = torch.tensor([0, 1])
POINTS = torch.tensor([
    [20.0, 30.0],    # P0: GT0 box + centre
    [10.0, 20.0],    # P1: GT0 box + centre
    [20.0, 55.0],    # P2: GT0 box only (y 55 is past the centre region) → penalised
    [35.0, 20.0],    # P3: GT0 box + centre AND GT1 box + centre
    [50.0, 20.0],    # P4: GT1 box + centre
    [62.0, 20.0],    # P5: GT1 centre only (x 62 > 60) → penalised
    [100.0, 100.0],  # P6: far from both → not a candidate
    [25.0, 40.0],    # P7: GT0 box + centre
])
PRED_BOXES = torch.tensor([
    [0.0, 0.0, 40.0, 60.0],       # P0 = GT0: IoU(GT0) 1, IoU(GT1) 200/2800 = 1/14
    [0.0, 0.0, 10.0, 10.0],       # P1: IoU(GT0) 100/2400 = 1/24, IoU(GT1) 0
    [0.0, 0.0, 40.0, 60.0],       # P2 = GT0: IoU(GT0) 1 (but penalised), IoU(GT1) 1/14
    [30.0, 10.0, 60.0, 30.0],     # P3 = GT1: IoU(GT1) 1, IoU(GT0) 1/14
    [40.0, 10.0, 60.0, 30.0],     # P4: IoU(GT1) 400/600 = 2/3, IoU(GT0) 0
    [30.0, 10.0, 60.0, 30.0],     # P5 = GT1: IoU(GT1) 1 (but penalised)
    [90.0, 90.0, 110.0, 110.0],   # P6
    [0.0, 0.0, 40.0, 60.0],       # P7 = GT0: IoU(GT0) 1, IoU(GT1) 1/14
])
STRIDES = torch.full((8,), 8.0)
SCORES = torch.full((8, 2), 0.5)


def test_candidate_masks_by_hand() -> None:
    in_box, in_center = candidate_masks(POINTS, STRIDES, GT_BOXES, radius=2.5)
    assert in_box.tolist() == [[True, False], [True, False], [True, False], [True, True],
                               [False, True], [False, False], [False, False], [True, False]]
    assert in_center.tolist() == [[True, False], [True, False], [False, False], [True, True],
                                  [False, True], [False, True], [False, False], [True, False]]


def test_simota_log_iou_cost_hand_case() -> None:
    # use_vfl=False: class cost is BCE(0.5, one-hot) summed over 2 classes = 2 ln 2 for every pair, so only
    # 6·(−ln IoU) and the 1e8 penalty order the candidates (P6 is not a candidate).
    # Dynamic k = ⌊Σ top-10 IoUs⌋ over all candidates, penalised ones included:
    # GT0: 1 (P0) + 1/24 (P1) + 1 (P2) + 1/14 (P3) + 1 (P7) = 3.11 → 3;
    # GT1: 1/14 (P0) + 1/14 (P2) + 1 (P3) + 2/3 (P4) + 1 (P5) + 1/14 (P7) = 2.88 → 2.
    # GT0 costs (unpenalised): P0 0, P7 0, P3 6 ln 14 = 15.8, P1 6 ln 24 = 19.1 → takes P0, P7, P3.
    # GT1 costs (unpenalised): P3 0, P4 6 ln 1.5 = 2.4 → takes P3, P4 (P5 has IoU 1 but pays 1e8).
    # P3 is taken twice: its cheapest GT is GT1 (0 < 15.8) → GT1. P1 ranks 4th for GT0 → background.
    cfg = SimOTAConfig(use_vfl=False)
    assigned = simota_assign(SCORES, POINTS, STRIDES, PRED_BOXES, GT_BOXES, GT_LABELS, cfg)
    assert assigned.tolist() == [0, -1, -1, 1, 1, -1, -1, 0]


def test_simota_vfl_giou_cost_hand_case() -> None:
    # PicoDet's default: VFL class cost + 6·(1 − GIoU). With p = 0.5 the class cost is small (< 1.2):
    # (non-label class) 0.75·0.5²·ln 2 + (label) ln 2 · (IoU if IoU > 0 else 0.1875).
    # GT0: P0, P7 → GIoU 1, cost ≈ 0.82. P1 (0,0,10,10) lies inside GT0: hull = GT0, GIoU = IoU = 1/24,
    # cost 6·(23/24) + 0.16 = 5.91. P3 = GT1: hull (0,0,60,60) = 3600, union 2800, GIoU = 1/14 − 800/3600 = −0.151,
    # cost 6·1.151 + 0.18 = 7.09. So GT0 (k = 3) takes P0, P7 and now P1, not P3.
    # GT1 (k = 2): P3 (GIoU 1) and P4 (inside GT1: GIoU = 2/3, cost 2 + 0.59); no point is contested.
    assigned = simota_assign(SCORES, POINTS, STRIDES, PRED_BOXES, GT_BOXES, GT_LABELS, SimOTAConfig())
    assert assigned.tolist() == [0, 0, -1, 1, 1, -1, -1, 0]


def test_simota_without_ground_truth_is_all_background() -> None:
    assigned = simota_assign(SCORES, POINTS, STRIDES, PRED_BOXES, torch.zeros(0, 4), torch.zeros(0), SimOTAConfig())
    assert assigned.tolist() == [-1] * 8


def test_picodet_loss_normalisation_by_hand() -> None:
    # One stride-8 level with a 1×1 map: anchor (4, 4). GT (0, 0, 8, 8), class 0 of 1 → the only candidate,
    # inside the box and its centre region, so it is the single positive.
    # Logits: class 0 → σ = 0.5; bins all 0 → uniform over 0..7 → 3.5 bins = 28 px per side:
    # pred box (−24, −24, 32, 32), area 56² = 3136, IoU with the GT 64/3136 = 1/49; hull = pred → GIoU = 1/49.
    class_maps = [torch.zeros(1, 1, 1, 1)]
    box_maps = [torch.zeros(1, 32, 1, 1)]
    loss_fn = PicoDetLoss(num_classes=1, strides=[8], reg_max=7)
    losses = loss_fn((class_maps, box_maps), [torch.tensor([[0.0, 0.0, 8.0, 8.0]])], [torch.tensor([0])])
    assert losses["num_pos"].item() == 1
    # VFL: q = 1/49 (the IoU); BCE(logit 0, q) = ln 2 whatever q; weight q; / 1 positive.
    vfl = math.log(2.0) / 49
    # Box weight = best score 0.5; normaliser = max(0.5, 1) = 1.
    # GIoU: 2.0 · 0.5 · (1 − 1/49).
    giou = 2.0 * 0.5 * (48 / 49)
    # DFL: target 4 px / 8 = 0.5 bin on every side; uniform bins → CE = ln 8 on both bins; mean over sides;
    # 0.25 · 0.5 · ln 8.
    dfl = 0.25 * 0.5 * math.log(8.0)
    assert losses["loss_vfl"].item() == pytest.approx(vfl, rel=1e-5)
    assert losses["loss_giou"].item() == pytest.approx(giou, rel=1e-5)
    assert losses["loss_dfl"].item() == pytest.approx(dfl, rel=1e-5)
    assert losses["loss"].item() == pytest.approx(vfl + giou + dfl, rel=1e-5)


def test_picodet_loss_without_positives_still_backpropagates() -> None:
    class_maps = [torch.zeros(2, 3, 2, 2, requires_grad=True)]
    box_maps = [torch.zeros(2, 32, 2, 2, requires_grad=True)]
    losses = PicoDetLoss(num_classes=3, strides=[8])((class_maps, box_maps), [torch.zeros(0, 4)] * 2,
                                                     [torch.zeros(0, dtype=torch.long)] * 2)
    # Only the negatives' VFL: 2 images · 4 points · 3 classes · 0.75·0.5²·ln 2, divided by max(0, 1) = 1.
    assert losses["loss"].item() == pytest.approx(24 * 0.1875 * math.log(2.0), rel=1e-5)
    losses["loss"].backward()
    assert class_maps[0].grad is not None and box_maps[0].grad is not None
