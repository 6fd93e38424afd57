"""COCO box AP through pycocotools: hand-computed precision/recall cases under 101-point interpolation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.errors import EdgekdError
from edgekd.tasks.layout.coco import write_coco_detections
from edgekd.tasks.layout.evaluate import evaluate_coco

CATEGORIES = [{"id": 1, "name": "text"}, {"id": 2, "name": "title"}, {"id": 3, "name": "list"},
              {"id": 4, "name": "table"}, {"id": 5, "name": "figure"}]


def _gt(boxes: list[tuple[int, int, list[float]]]) -> dict:
    """Ground truth from (image_id, category_id, bbox xywh) triples, on 200x200 images 1 and 2."""
    annotations = [{"id": i + 1, "image_id": image_id, "category_id": cid, "bbox": bbox,
                    "area": bbox[2] * bbox[3], "iscrowd": 0} for i, (image_id, cid, bbox) in enumerate(boxes)]
    images = [{"id": i, "file_name": f"{i}.png", "width": 200, "height": 200} for i in (1, 2)]
    return {"images": images, "annotations": annotations, "categories": CATEGORIES}


def _det(image_id: int, category_id: int, bbox: list[float], score: float) -> dict:
    return {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score}


A, B, FAR = [10.0, 10.0, 50.0, 40.0], [100.0, 100.0, 60.0, 80.0], [150.0, 10.0, 30.0, 30.0]


def test_perfect_detections_score_one(capsys: pytest.CaptureFixture[str]) -> None:
    gt = _gt([(1, 1, A), (1, 4, B), (2, 5, A)])
    metrics = evaluate_coco(gt, [_det(1, 1, A, 0.9), _det(1, 4, B, 0.8), _det(2, 5, A, 0.7)])
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AP75"] == pytest.approx(1.0)
    assert metrics["per_class"]["table"] == {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0)}
    assert metrics["per_class"]["title"] == {"AP": None, "AP50": None}  # no ground truth for 'title'
    assert metrics["num_detections"] == 3
    # pycocotools' prints are captured into the result, not written to the terminal.
    assert "Average Precision" in metrics["log"] and capsys.readouterr().out == ""


def test_one_of_two_found_true_positive_ranked_first() -> None:
    # Two 'text' boxes (A, B); detections sorted by score: A (TP, 0.9), FAR (FP, 0.8).
    # PR points: (recall 0.5, precision 1.0), (0.5, 0.5). Interpolated precision is 1.0 for the 51 recall thresholds
    # 0.00..0.50 and 0 for the 50 above (nothing reaches them): AP = 51/101 at every IoU (A matches exactly).
    metrics = evaluate_coco(_gt([(1, 1, A), (1, 1, B)]), [_det(1, 1, A, 0.9), _det(1, 1, FAR, 0.8)])
    assert metrics["AP"] == pytest.approx(51 / 101)
    assert metrics["AP50"] == pytest.approx(51 / 101) and metrics["AP75"] == pytest.approx(51 / 101)


def test_one_of_two_found_false_positive_ranked_first() -> None:
    # Same boxes, scores swapped: FAR (FP, 0.9) then A (TP, 0.8). PR points: (0, 0), (0.5, 0.5).
    # Interpolated precision for r <= 0.5 is max precision at recall >= r = 0.5: AP = 0.5 * 51/101.
    metrics = evaluate_coco(_gt([(1, 1, A), (1, 1, B)]), [_det(1, 1, FAR, 0.9), _det(1, 1, A, 0.8)])
    assert metrics["AP"] == pytest.approx(0.5 * 51 / 101)


def test_iou_thresholds() -> None:
    # GT [0, 0, 100, 100] vs detection [0, 0, 100, 62.5]: IoU = 6250 / 10000 = 0.625, a match at IoU 0.50, 0.55
    # and 0.60 (AP 1 each) and a miss at the other 7 thresholds (AP 0): AP = 3/10, AP50 = 1, AP75 = 0.
    metrics = evaluate_coco(_gt([(1, 1, [0.0, 0.0, 100.0, 100.0])]), [_det(1, 1, [0.0, 0.0, 100.0, 62.5], 0.9)])
    assert metrics["AP"] == pytest.approx(0.3)
    assert metrics["AP50"] == pytest.approx(1.0) and metrics["AP75"] == pytest.approx(0.0)


def test_per_class_values_and_their_mean() -> None:
    # text: found exactly (AP 1); table: the 51/101 case above; list: ground truth, no detection (AP 0);
    # title and figure: no ground truth and no detection (None, left out of the mean).
    gt = _gt([(1, 1, A), (1, 4, A), (2, 4, B), (2, 3, FAR)])
    detections = [_det(1, 1, A, 0.95), _det(1, 4, A, 0.9), _det(1, 4, FAR, 0.8)]
    metrics = evaluate_coco(gt, detections)
    per_class = metrics["per_class"]
    assert per_class["text"]["AP"] == pytest.approx(1.0)
    assert per_class["table"]["AP"] == pytest.approx(51 / 101) and per_class["table"]["AP50"] == pytest.approx(51 / 101)
    assert per_class["list"] == {"AP": 0.0, "AP50": 0.0}
    assert per_class["title"]["AP"] is None and per_class["figure"]["AP"] is None
    assert metrics["AP"] == pytest.approx((1.0 + 51 / 101 + 0.0) / 3)


def test_empty_detections_give_zero() -> None:
    metrics = evaluate_coco(_gt([(1, 1, A), (2, 5, B)]), [])
    assert metrics["AP"] == 0.0 and metrics["AP50"] == 0.0 and metrics["AP75"] == 0.0
    assert metrics["per_class"]["text"] == {"AP": 0.0, "AP50": 0.0}
    assert metrics["per_class"]["table"] == {"AP": None, "AP50": None}
    assert metrics["num_detections"] == 0


def test_reads_files_written_by_write_coco_detections(tmp_path: Path) -> None:
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(_gt([(1, 1, A), (1, 1, B)])))
    results = write_coco_detections(tmp_path / "dets.json", [_det(1, 1, A, 0.9), _det(1, 1, FAR, 0.8)])
    metrics = evaluate_coco(gt_path, json.loads(results.read_text()))
    assert metrics["AP"] == pytest.approx(51 / 101)


def test_bad_input() -> None:
    with pytest.raises(EdgekdError, match="image_id 9"):
        evaluate_coco(_gt([(1, 1, A)]), [_det(9, 1, A, 0.9)])
    with pytest.raises(EdgekdError, match="nothing.json"):
        evaluate_coco("nothing.json", [])
    with pytest.raises(EdgekdError, match="needs image_id"):
        evaluate_coco(_gt([(1, 1, A)]), [{"image_id": 1, "bbox": A}])
