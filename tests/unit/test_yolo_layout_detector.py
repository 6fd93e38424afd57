"""A YOLOv8 behind the PicoDet interface the layout stages use: its eval tensor becomes PicoDet's host outputs
(boxes xyxy, scores), graph mode runs the same NMS, and training mode still gives Ultralytics' loss inputs."""

from __future__ import annotations

import torch

from tests.conftest import require_yolo_extra

require_yolo_extra()

from edgekd.models.picodet import NmsConfig, graph_nms  # noqa: E402
from edgekd.recipe.schema import RECIPE_MODELS  # noqa: E402
from edgekd.tasks.layout.common import build_detector, model_name  # noqa: E402
from edgekd.yolo.layout_detector import YoloLayoutDetector, yolo_to_host_outputs  # noqa: E402
from edgekd.yolo.models import build_yolo  # noqa: E402

torch.set_num_threads(1)


def test_centre_size_rows_become_corner_boxes_and_per_anchor_scores() -> None:
    # Two anchors, two classes: rows cx, cy, w, h, score of class 0, score of class 1.
    raw = torch.tensor([[[10.0, 50.0], [20.0, 40.0], [4.0, 10.0], [6.0, 2.0], [0.9, 0.1], [0.2, 0.7]]])
    boxes, scores = yolo_to_host_outputs(raw)
    assert torch.equal(boxes, torch.tensor([[[8.0, 17.0, 12.0, 23.0], [45.0, 39.0, 55.0, 41.0]]]))
    assert torch.equal(scores, torch.tensor([[[0.9, 0.2], [0.1, 0.7]]]))


def test_host_and_graph_modes_agree_with_the_wrapped_yolo() -> None:
    torch.manual_seed(0)
    yolo = build_yolo("yolov8n", num_classes=5)
    images = torch.rand(2, 3, 64, 96)
    host = YoloLayoutDetector(yolo).eval()
    boxes, scores = host(images)
    assert boxes.shape == (2, 8 * 12 + 4 * 6 + 2 * 3, 4) and scores.shape == (2, 126, 5)
    expected = yolo_to_host_outputs(yolo(images))
    assert torch.equal(boxes, expected[0]) and torch.equal(scores, expected[1])
    nms = NmsConfig(score_threshold=0.0, keep_top_k=20)
    graph = YoloLayoutDetector(yolo, postprocess="graph", nms=nms).eval()
    for got, want in zip(graph(images), graph_nms(boxes, scores, nms)):
        assert torch.equal(got, want)


def test_training_mode_returns_ultralytics_training_outputs_and_features_come_from_p3_p4_p5() -> None:
    detector = YoloLayoutDetector(build_yolo("yolov8n", num_classes=5)).train()
    assert isinstance(detector(torch.rand(1, 3, 64, 64)), dict | list | tuple)
    assert not isinstance(detector(torch.rand(1, 3, 64, 64)), torch.Tensor)
    features = detector.eval().forward_features(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in features] == [(64, 8, 8), (128, 4, 4), (256, 2, 2)]
    assert detector.num_classes == 5 and detector.strides == (8, 16, 32)


def test_a_recipe_with_teacher_yolo_builds_that_yolo_for_the_teacher_only() -> None:
    recipe = RECIPE_MODELS["layout"](name="t", task="layout", teacher={"yolo": "yolov8n"})
    teacher = build_detector(recipe, "teacher", postprocess="graph")
    assert isinstance(teacher, YoloLayoutDetector) and teacher.postprocess == "graph"
    assert teacher.yolo.name == "yolov8n" and teacher.num_classes == 5
    assert model_name(recipe, "teacher") == "yolov8n" and model_name(recipe, "student") == "picodet_lcnet_x1_0"
    assert not isinstance(build_detector(recipe, "student"), YoloLayoutDetector)
