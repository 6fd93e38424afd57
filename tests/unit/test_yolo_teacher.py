"""The YOLO teacher's pieces: stride matching, the layout → Ultralytics target converter, P3/P4/P5 extraction."""

from __future__ import annotations

import pytest
import torch

from edgekd.errors import EdgekdError
from edgekd.yolo.teacher import shared_levels, ultralytics_targets
from tests.conftest import require_yolo_extra

PAD = -1.0


def test_levels_are_paired_by_stride() -> None:
    assert shared_levels((8, 16, 32, 64), (8, 16, 32)) == [(0, 0), (1, 1), (2, 2)]  # stride 64 has no partner
    assert shared_levels((16, 32, 64), (8, 16, 32)) == [(0, 1), (1, 2)]
    with pytest.raises(EdgekdError, match="no shared stride"):
        shared_levels((64, 128), (8, 16, 32))


def test_padded_layout_targets_become_normalised_cxcywh_rows() -> None:
    # Image 0: boxes [0, 0, 32, 16] class 2 and [16, 32, 48, 64] class 0, then a padding row; image 1: padding only;
    # image 2: [8, 8, 24, 40] class 4. Input 64 high × 128 wide:
    #   [0, 0, 32, 16]  → cx 16/128 = 0.125, cy 8/64 = 0.125, w 32/128 = 0.25, h 16/64 = 0.25
    #   [16, 32, 48, 64] → cx 32/128 = 0.25,  cy 48/64 = 0.75,  w 32/128 = 0.25, h 32/64 = 0.5
    #   [8, 8, 24, 40]  → cx 16/128 = 0.125, cy 24/64 = 0.375, w 16/128 = 0.125, h 32/64 = 0.5
    targets = torch.tensor([
        [[0, 0, 32, 16, 2], [16, 32, 48, 64, 0], [0, 0, 0, 0, PAD]],
        [[0, 0, 0, 0, PAD], [0, 0, 0, 0, PAD], [0, 0, 0, 0, PAD]],
        [[8, 8, 24, 40, 4], [0, 0, 0, 0, PAD], [0, 0, 0, 0, PAD]],
    ], dtype=torch.float32)
    batch = ultralytics_targets(targets, image_size=(64, 128))
    assert batch["batch_idx"].tolist() == [0.0, 0.0, 2.0]
    assert batch["cls"].tolist() == [[2.0], [0.0], [4.0]]
    expected = torch.tensor([[0.125, 0.125, 0.25, 0.25], [0.25, 0.75, 0.25, 0.5], [0.125, 0.375, 0.125, 0.5]])
    torch.testing.assert_close(batch["bboxes"], expected)


def test_ultralytics_reads_the_converted_boxes_back_as_the_original_pixels() -> None:
    require_yolo_extra()
    from ultralytics.utils.loss import v8DetectionLoss

    from edgekd.yolo.models import build_yolo

    model = build_yolo("yolov8n", num_classes=5)
    targets = torch.tensor([[[3, 5, 40, 60, 1], [10, 2, 90, 20, 3]], [[0, 0, 0, 0, PAD], [7, 9, 11, 30, 0]]])
    batch = ultralytics_targets(targets.float(), image_size=(64, 96))
    rows = torch.cat([batch["batch_idx"][:, None], batch["cls"], batch["bboxes"]], dim=1)
    # Ultralytics' own unpacking, with its scale (w, h, w, h) of the network input.
    unpacked = v8DetectionLoss(model.detector).preprocess(rows, 2, torch.tensor([96.0, 64.0, 96.0, 64.0]))
    torch.testing.assert_close(unpacked[0, :, 1:], targets[0, :, :4].float())
    torch.testing.assert_close(unpacked[1, 0, 1:], targets[1, 1, :4].float())
    assert unpacked[0, :, 0].tolist() == [1.0, 3.0] and unpacked[1, 0, 0].item() == 0.0


def test_teacher_features_are_the_maps_the_detect_head_reads() -> None:
    require_yolo_extra()
    from edgekd.yolo.models import build_yolo, neck_features
    from edgekd.yolo.teacher import YoloTeacher

    torch.manual_seed(0)
    model = build_yolo("yolov8n", num_classes=5)
    teacher = YoloTeacher(model).eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        direct = teacher.forward_features(images)
    for ours, hooked in zip(direct, neck_features(model, images)):  # hooks on the full Ultralytics forward
        torch.testing.assert_close(ours, hooked)
    assert teacher.channels == (64, 128, 256) and teacher.strides == (8, 16, 32)
    assert all(teacher.get_submodule(path) is not None for path in teacher.feature_paths)

    # from_imagenet undoes edgekd's ImageNet normalisation: same features as the [0, 1] image.
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    with torch.no_grad():
        renormalised = YoloTeacher(model, from_imagenet=True).forward_features((images - mean) / std)
    for a, b in zip(renormalised, direct):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
