"""The layout task's own pieces: AP50 of exported outputs (both NMS modes), padded targets, the QAT loss with
ground truth or the float model's detections, the automatic KD scale, and the recipe sections' checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from edgekd.models.picodet import NmsConfig, build_picodet
from edgekd.recipe.schema import RECIPE_MODELS  # the recipe package first: it imports every task's config
from edgekd.tasks.layout.common import arch_name, pad_targets, split_targets
from edgekd.tasks.layout.det_losses import PicoDetLoss
from edgekd.tasks.layout.metrics import ImageTruth, ap50_of_outputs
from edgekd.tasks.layout.task import LayoutTask

torch.set_num_threads(1)
LayoutRecipe = RECIPE_MODELS["layout"]

# One image, two ground-truth boxes of class 0, three detections of class 0 ranked by score:
# 0.9 hits box A, 0.8 is a false positive, 0.7 hits box B.
TRUTH = [ImageTruth(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0, 0]))]
DETECTED = np.array([[[0, 0, 10, 10], [40, 40, 50, 50], [20, 20, 30, 30]]], np.float32)
SCORES = np.array([[0.9, 0.8, 0.7]], np.float32)
# Ranked: TP (P 1, R 0.5), FP (P 0.5, R 0.5), TP (P 2/3, R 1). COCO's interpolated precision is the best
# precision at any recall >= r: 1 for the 51 recall points 0.00..0.50, 2/3 for the 50 points 0.51..1.00.
EXPECTED_AP50 = (51 * 1.0 + 50 * (2 / 3)) / 101  # = 0.834983...


def test_ap50_of_host_outputs_matches_the_hand_computed_value() -> None:
    scores = np.zeros((1, 3, 2), np.float32)  # two classes; class 1 has no ground truth and no score
    scores[0, :, 0] = SCORES[0]
    assert ap50_of_outputs((DETECTED, scores), TRUTH, num_classes=2, nms=NmsConfig()) == pytest.approx(EXPECTED_AP50)


def test_ap50_of_graph_outputs_reads_only_the_counted_rows() -> None:
    boxes = np.concatenate([DETECTED, np.full((1, 2, 4), 5.0, np.float32)], axis=1)  # 2 padding rows...
    scores = np.concatenate([SCORES, np.full((1, 2), 0.99, np.float32)], axis=1)  # ...that would score best
    labels, count = np.array([[0, 0, 0, 0, 0]]), np.array([3])
    assert ap50_of_outputs((boxes, scores, labels, count), TRUTH, 2, NmsConfig()) == pytest.approx(EXPECTED_AP50)


def test_ap50_counts_a_box_at_iou_one_half_as_a_miss_below_it() -> None:
    # A 10x10 box shifted right by 4: overlap 6x10 = 60, union 140, IoU 0.43 < 0.5 → no true positive.
    truth = [ImageTruth(np.array([[0, 0, 10, 10]], np.float32), np.array([0]))]
    shifted = (np.array([[[4, 0, 14, 10]]], np.float32), np.array([[[0.9]]], np.float32))
    assert ap50_of_outputs(shifted, truth, 1, NmsConfig()) == 0.0


def test_padded_targets_round_trip() -> None:
    boxes, labels = torch.tensor([[1.0, 2, 3, 4], [5, 6, 7, 8]]), torch.tensor([3, 0])
    padded = pad_targets(boxes, labels, max_boxes=4)
    assert padded.shape == (4, 5) and padded[2:, 4].tolist() == [-1, -1]
    split = split_targets(torch.stack([padded, pad_targets(torch.zeros(0, 4), torch.zeros(0), 4)]))
    assert torch.equal(split.boxes[0], boxes) and split.labels[0].tolist() == [3, 0]
    assert split.boxes[1].shape == (0, 4) and split.labels[1].dtype == torch.int64
    with pytest.raises(ValueError, match="do not fit"):
        pad_targets(boxes, labels, max_boxes=1)


def _tiny_raw(seed: int = 0):
    torch.manual_seed(seed)
    model = build_picodet(width=0.25, num_classes=3, neck_channels=16, levels=3).train()
    return model, model(torch.randn(2, 3, 64, 64))


def test_qat_loss_with_ground_truth_is_the_detection_loss() -> None:
    model, raw = _tiny_raw()
    boxes = [torch.tensor([[4.0, 4, 30, 20]]), torch.tensor([[10.0, 30, 60, 60]])]
    labels = [torch.tensor([1]), torch.tensor([2])]
    padded = torch.stack([pad_targets(b, l, 2) for b, l in zip(boxes, labels)])
    expected = PicoDetLoss(3, model.strides)(raw, boxes, labels)["loss"]
    assert float(LayoutTask().qat_loss(raw, padded).detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


def test_qat_loss_against_float_outputs_uses_their_confident_detections_as_labels() -> None:
    model, raw = _tiny_raw()
    task = LayoutTask()
    task._nms = NmsConfig()
    # The float model's host outputs: image 0 has one confident box (class 2) and one below 0.5; image 1 none.
    ref_boxes = torch.tensor([[[4.0, 4, 30, 20], [30, 30, 60, 60]], [[0, 0, 8, 8], [8, 8, 16, 16]]])
    ref_scores = torch.zeros(2, 2, 3)
    ref_scores[0, 0, 2], ref_scores[0, 1, 0], ref_scores[1, 0, 1] = 0.8, 0.3, 0.2
    expected = PicoDetLoss(3, model.strides)(raw, [ref_boxes[0, :1], torch.zeros(0, 4)],
                                             [torch.tensor([2]), torch.zeros(0, dtype=torch.long)])["loss"]
    loss = task.qat_loss(raw, (ref_boxes, ref_scores))
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


def test_auto_scale_makes_kd_the_asked_multiple_of_the_detection_loss() -> None:
    from edgekd.tasks.layout.common import pad_targets as pad
    from edgekd.tasks.layout.stages import auto_scale, distill_objective

    recipe = LayoutRecipe(name="t", task="layout", data={"height": 64, "width": 64},
                          teacher={"width": 0.5, "neck_channels": 16, "levels": 3},
                          student={"width": 0.25, "neck_channels": 16, "levels": 3})
    torch.manual_seed(0)
    student, teacher = build_picodet(0.25, 5, 16, 3), build_picodet(0.5, 5, 16, 3).eval()
    objective = distill_objective(recipe, student, teacher)
    data = [(torch.randn(3, 64, 64), pad(torch.tensor([[4.0, 4, 40, 30]]), torch.tensor([1]), 1)) for _ in range(2)]
    before = {k: v.clone() for k, v in objective.state_dict().items()}
    objective.scale = auto_scale(objective, data, batch_size=2, start_ratio=0.5)
    assert all(torch.equal(before[k], v) for k, v in objective.state_dict().items())  # BN statistics restored
    with torch.no_grad():
        terms = objective.train()(torch.utils.data.default_collate(data))
    assert float(terms["kd"]) == pytest.approx(0.5 * float(terms["det"]), rel=1e-4)


def test_recipe_sections_refuse_inconsistent_settings() -> None:
    base = {"name": "t", "task": "layout"}
    with pytest.raises(ValidationError, match="source 'coco' needs data.train_json"):
        LayoutRecipe(**base, data={"source": "coco"})
    with pytest.raises(ValidationError, match="PubLayNet classes"):
        LayoutRecipe(**base, data={"classes": ["text", "table"]})
    with pytest.raises(ValidationError, match="multiple of 32"):
        LayoutRecipe(**base, data={"height": 300})
    with pytest.raises(ValidationError, match="student.levels 3 must equal teacher.levels 4"):
        LayoutRecipe(**base, student={"levels": 3})
    with pytest.raises(ValidationError, match="'auto' or a number >= 0"):
        LayoutRecipe(**base, distill={"scale": -1.0})
    assert LayoutRecipe(**base, student={"levels": 3}, distill={"kd": "none"}).student.levels == 3


def test_arch_names_follow_the_registered_spelling() -> None:
    assert [arch_name(w) for w in (2.5, 1.0, 0.25)] == ["picodet_lcnet_x2_5", "picodet_lcnet_x1_0",
                                                        "picodet_lcnet_x0_25"]


def test_qat_evaluation_passes_several_outputs_to_the_score_as_a_tuple() -> None:
    from edgekd.quant.stage import evaluate_torch

    class TwoOutputs(torch.nn.Module):
        def forward(self, x):
            return x * 2, x.sum(dim=1)

    class Recorder:
        def score(self, outputs, targets):
            self.outputs = outputs
            return 0.5

    recorder = Recorder()
    inputs = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert evaluate_torch(TwoOutputs(), recorder, inputs, None, batch_size=2) == 0.5
    assert np.array_equal(recorder.outputs[0], inputs * 2) and np.array_equal(recorder.outputs[1], inputs.sum(1))


def test_graph_mode_is_refused_for_tensorrt_before_any_training() -> None:
    from edgekd.errors import EdgekdError

    recipe = LayoutRecipe(name="t", task="layout", postprocess="graph")
    with pytest.raises(EdgekdError, match="cannot go to TensorRT"):
        LayoutTask().preflight(recipe)
    LayoutTask().preflight(recipe.model_copy(update={"export": recipe.export.model_copy(
        update={"backends": {"onnx": ["fp32"], "openvino": ["fp32"]}})}))


def test_yolo_comparison_requests_are_checked_before_any_training() -> None:
    from edgekd.errors import EdgekdError

    with pytest.raises(EdgekdError, match="unknown YOLO model 'yolov9x'"):
        LayoutTask().preflight(LayoutRecipe(name="t", task="layout", compare_yolo="yolov9x"))
    LayoutTask().preflight(LayoutRecipe(name="t", task="layout"))  # no comparison: Ultralytics is not needed


def test_a_yolo_teacher_is_checked_before_any_training_and_needs_no_matching_levels() -> None:
    from edgekd.errors import EdgekdError

    with pytest.raises(EdgekdError, match="unknown YOLO model 'yolov8q'"):
        LayoutTask().preflight(LayoutRecipe(name="t", task="layout", teacher={"yolo": "yolov8q"}))
    # YOLO levels are paired with the student's by stride, so the PicoDet level counts do not have to agree.
    recipe = LayoutRecipe(name="t", task="layout", teacher={"yolo": "yolov8s"}, student={"levels": 3})
    assert recipe.teacher.yolo == "yolov8s" and recipe.student.levels == 3
