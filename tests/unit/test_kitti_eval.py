"""KITTI evaluation: hand-computed overlaps and APs, difficulty levels, DontCare / Van, and result-file input.

Devkit rule used throughout: the score thresholds are sampled so that each kept threshold advances the sampled
recall by 1/40, so AP|R40 = 100 needs at least 41 counted GT; with fewer, perfect detections score (K − 1)/40·100
for K kept thresholds. Tests that want round numbers therefore repeat a frame 41 times.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekd.errors import EdgekdError
from edgekd.tasks.mono3d.box_iou import bev_iou, iou_2d, iou_3d
from edgekd.tasks.mono3d.kitti_eval import evaluate_kitti, evaluate_kitti_folders, recall_thresholds
from edgekd.tasks.mono3d.kitti_io import parse_label_lines, write_label_file, write_result_file

# Easy cars (50 px tall, unoccluded, untruncated) far apart in 3D; a 30 px one (moderate, not easy).
CAR_A = "Car 0.00 0 -1.57 100 100 200 150 1.50 1.60 3.90 -5.00 1.65 20.00 0.00"
CAR_B = "Car 0.00 0 -1.57 300 100 400 150 1.50 1.60 3.90 5.00 1.65 30.00 0.50"
SMALL = "Car 0.00 0 -1.57 500 100 540 130 1.50 1.60 3.90 0.00 1.65 40.00 1.00"
VAN = "Van 0.00 0 -1.57 600 100 700 160 2.00 1.80 4.50 8.00 1.65 15.00 0.00"
DONTCARE = "DontCare -1 -1 -10 700 90 800 160 -1 -1 -1 -1000 -1000 -1000 -10"
GHOST = "Car 0.00 0 -1.57 720 100 780 150 1.50 1.60 3.90 9.00 1.65 35.00 0.00"  # matches no GT


def objects(*lines: str, scores: tuple[float, ...] | None = None) -> dict[str, np.ndarray]:
    parsed = parse_label_lines(list(lines), "test")
    if scores is not None:
        parsed["score"] = np.array(scores, np.float64)
    return parsed


def test_bev_iou_axis_aligned_and_rotated() -> None:
    # [x, z, l, w, ry]: A spans x ∈ [−2, 2], z ∈ [−1, 1]; B is A moved 1 m along x → overlap 3·2 = 6,
    # union 8 + 8 − 6 = 10 → 0.6. C is A turned by 90°: x ∈ [−1, 1], z ∈ [−2, 2] → overlap 2·2 = 4,
    # union 12 → 1/3.
    a, b, c = [0, 0, 4, 2, 0.0], [1, 0, 4, 2, 0.0], [0, 0, 4, 2, np.pi / 2]
    assert bev_iou([a], [b])[0, 0] == pytest.approx(0.6)
    assert bev_iou([a], [c])[0, 0] == pytest.approx(1 / 3)
    # A 2×2 square and itself turned 45°: a regular octagon of area 8(√2 − 1);
    # IoU = 8(√2 − 1) / (8 − 8(√2 − 1)) = (√2 − 1) / (2 − √2) = 1/√2.
    assert bev_iou([[0, 0, 2, 2, 0.0]], [[0, 0, 2, 2, np.pi / 4]])[0, 0] == pytest.approx(1 / np.sqrt(2))
    assert bev_iou([a], [[10, 0, 4, 2, 0.3]])[0, 0] == 0.0


def test_iou_3d_with_partial_vertical_overlap() -> None:
    # [x, y, z, h, w, l, ry], y the bottom (y down): A spans y ∈ [0.15, 1.65], B ∈ [−0.35, 1.15] → 1.0 m shared;
    # same footprint 4×2 = 8 → intersection 8, volumes 12 + 12 − 8 = 16 → 0.5.
    # Moving B 1 m along x leaves a 3×2 footprint overlap → 6 / (24 − 6) = 1/3.
    a = [0, 1.65, 10, 1.5, 2, 4, 0.0]
    assert iou_3d([a], [[0, 1.15, 10, 1.5, 2, 4, 0.0]])[0, 0] == pytest.approx(0.5)
    assert iou_3d([a], [[1, 1.15, 10, 1.5, 2, 4, 0.0]])[0, 0] == pytest.approx(1 / 3)
    assert iou_3d([a], [[0, -0.2, 10, 1.5, 2, 4, 0.0]])[0, 0] == 0.0  # stacked, no vertical overlap


def test_iou_2d_and_dontcare_criterion() -> None:
    # [0,0,10,10] vs [5,0,15,10]: overlap 50, union 150 → 1/3; as a share of the first box: 50/100.
    assert iou_2d([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(1 / 3)
    assert iou_2d([[0, 0, 10, 10]], [[5, 0, 15, 10]], over_first=True)[0, 0] == pytest.approx(0.5)


def test_ap_is_100_when_detections_equal_gt() -> None:
    gt = [objects(CAR_A, CAR_B)] * 41
    result = evaluate_kitti(gt, [objects(CAR_A, CAR_B, scores=(0.9, 0.8))] * 41)
    for metric in ("AP2D", "APBEV", "AP3D"):
        for level in ("easy", "moderate", "hard"):
            assert result[f"{metric}_R40@0.7/{level}"] == pytest.approx(100.0)
            assert result[f"{metric}_R11@0.5/{level}"] == pytest.approx(100.0)
    assert result["num_gt/easy"] == 82


def test_hand_case_two_gt_three_detections() -> None:
    # GT: A, B. Detections: A (0.9), a ghost matching nothing (0.8), B (0.7).
    # TP scores {0.9, 0.7}, 2 counted GT. Threshold sampling: i=0 recall 1/2, next 2/2, current 0:
    # (1 − 0) < (0 − 1/2)? no → keep 0.9, current = 1/40; i=1 is the last → keep 0.7. Thresholds [0.9, 0.7].
    # At 0.9: TP 1, FP 0 → precision 1. At 0.7: TP 2, FP 1 (ghost) → 2/3. Points 2..40 are 0.
    # Monotone precision [1, 2/3, 0, …]: R40 = (2/3) / 40 · 100 = 1.6667; R11 = (1 + 0·10) / 11 · 100 = 9.0909.
    result = evaluate_kitti([objects(CAR_A, CAR_B)], [objects(CAR_A, GHOST, CAR_B, scores=(0.9, 0.8, 0.7))])
    assert result["AP3D_R40@0.7/moderate"] == pytest.approx(100 * (2 / 3) / 40)
    assert result["AP3D_R11@0.7/moderate"] == pytest.approx(100 / 11)
    assert result["AP2D_R40@0.7/easy"] == pytest.approx(100 * (2 / 3) / 40)


def test_recall_thresholds_follow_the_sampling_rule() -> None:
    # 4 GT, TP scores 0.9, 0.8: i=0 recall 1/4, next 2/4 → (2/4 − 0) < (0 − 1/4)? no → keep; i=1 last → keep.
    np.testing.assert_allclose(recall_thresholds(np.array([0.8, 0.9]), 4), [0.9, 0.8])
    # 1 GT, 3 TP-like scores: i=0 recall 1, next 2 → keep 0.9 (current 1/40);
    # i=1: (3 − 1/40) < (1/40 − 2)? no → keep; i=2 is the last → keep.
    assert len(recall_thresholds(np.array([0.9, 0.8, 0.7]), 1)) == 3


def test_small_box_is_dropped_from_easy_only() -> None:
    # Each frame: A (easy) and SMALL (30 px ≤ 40: not easy, moderate); only A is detected.
    # Easy: 41 counted GT, all found at precision 1 → 41 thresholds → R40 = 100.
    # Moderate: 82 counted GT, 41 found: kept thresholds k = 0..20 (the k-th needs index i ≥ 2.05k − 1.5 of 41
    # scores, and k = 20 takes the last one) → K = 21 at precision 1 → R40 = 20/40 · 100 = 50.
    gt = [objects(CAR_A, SMALL)] * 41
    det = [objects(CAR_A, scores=(0.9,))] * 41
    result = evaluate_kitti(gt, det)
    assert (result["num_gt/easy"], result["num_gt/moderate"]) == (41, 82)
    assert result["AP3D_R40@0.7/easy"] == pytest.approx(100.0)
    assert result["AP3D_R40@0.7/moderate"] == pytest.approx(50.0)
    # Height limits scale with the image: at half size easy needs > 20 px, so the 30 px car becomes easy.
    assert evaluate_kitti(gt, det, scale=0.5)["num_gt/easy"] == 82


def test_detection_of_an_ignored_small_car_is_not_a_false_positive() -> None:
    # Easy, per frame: the SMALL GT is ignored; its detection (0.95, itself < 40 px) matches it → neither TP nor FP.
    result = evaluate_kitti([objects(CAR_A, SMALL)] * 41, [objects(SMALL, CAR_A, scores=(0.95, 0.9))] * 41)
    assert result["AP3D_R40@0.7/easy"] == pytest.approx(100.0)


@pytest.mark.parametrize("region", [DONTCARE, VAN])
def test_dontcare_and_van_suppress_a_false_positive(region: str) -> None:
    # Per frame: GT A plus a DontCare region (or a Van, a neighbouring class of Car); detections A (0.9) and one
    # (0.95) inside the region. Without the region that detection is a FP at every threshold → precision 1/2
    # → R40 = 50; with it, it is ignored → 100.
    inside = GHOST if region == DONTCARE else VAN.replace("Van", "Car")
    det = [objects(inside, CAR_A, scores=(0.95, 0.9))] * 41
    assert evaluate_kitti([objects(CAR_A, region)] * 41, det)["AP2D_R40@0.7/moderate"] == pytest.approx(100.0)
    assert evaluate_kitti([objects(CAR_A)] * 41, det)["AP2D_R40@0.7/moderate"] == pytest.approx(50.0)
    assert evaluate_kitti([objects(CAR_A, region)] * 41, det)["AP3D_R40@0.7/moderate"] == pytest.approx(100.0)


def test_python_port_applies_dontcare_to_2d_only() -> None:
    det = [objects(GHOST, CAR_A, scores=(0.95, 0.9))] * 41
    result = evaluate_kitti([objects(CAR_A, DONTCARE)] * 41, det, dontcare_all_metrics=False)
    assert result["AP2D_R40@0.7/moderate"] == pytest.approx(100.0)
    assert result["AP3D_R40@0.7/moderate"] == pytest.approx(50.0)


def test_result_files_score_like_records(tmp_path: Path) -> None:
    gt = [objects(CAR_A, CAR_B, DONTCARE), objects(CAR_B, SMALL)] * 3
    det = [objects(CAR_A, GHOST, CAR_B, scores=(0.9, 0.8, 0.7)), objects(SMALL, scores=(0.6,))] * 3
    det[1]["location"] = det[1]["location"] + 0.3  # an imperfect one
    for index, (g, d) in enumerate(zip(gt, det)):
        write_label_file(tmp_path / "val" / "label_2" / f"{index:06d}.txt", g)
        write_result_file(tmp_path / "results" / f"{index:06d}.txt", d)
    expected = evaluate_kitti(gt, det, scale=0.5)
    (tmp_path / "scale.json").write_text('{"height_scale": 0.5}')
    assert evaluate_kitti_folders(tmp_path / "val", tmp_path / "results") == pytest.approx(expected)
    assert evaluate_kitti(tmp_path / "val", tmp_path / "results", 0.5) == pytest.approx(expected)
    (tmp_path / "results" / "000004.txt").unlink()
    with pytest.raises(EdgekdError, match="000004.txt"):
        evaluate_kitti_folders(tmp_path / "val", tmp_path / "results")
