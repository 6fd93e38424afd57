"""PicoDet model: output shapes per level count and input size, teacher/student neck widths, parameter counts,
feature hooks on the neck, and GFL decoding of a hand-set distribution."""

from __future__ import annotations

import pytest
import torch

from edgekd.distill.hooks import FeatureCapture
from edgekd.models.picodet import (
    anchor_points,
    build_lcnet,
    build_picodet,
    decode_boxes,
    lcnet_channels,
    neck_output_paths,
    picodet_lcnet_x1_0,
    picodet_lcnet_x2_5,
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("levels", [3, 4])
@pytest.mark.parametrize("height,width", [(320, 256), (256, 192)])
def test_output_shapes(levels: int, height: int, width: int) -> None:
    model = build_picodet(width=1.0, num_classes=5, neck_channels=64, levels=levels, postprocess="host")
    strides = (8, 16, 32, 64)[:levels]
    grids = [(-(-height // s), -(-width // s)) for s in strides]  # ceil: the stride-2 convs pad
    model.train()
    class_maps, box_maps = model(torch.zeros(2, 3, height, width))
    assert [tuple(m.shape) for m in class_maps] == [(2, 5, h, w) for h, w in grids]
    assert [tuple(m.shape) for m in box_maps] == [(2, 32, h, w) for h, w in grids]  # 4 sides × 8 bins
    model.eval()
    with torch.no_grad():
        boxes, scores = model(torch.zeros(2, 3, height, width))
    anchors = sum(h * w for h, w in grids)  # e.g. 320×256, 4 levels: 40·32 + 20·16 + 10·8 + 5·4 = 1700
    assert boxes.shape == (2, anchors, 4) and scores.shape == (2, anchors, 5)
    assert float(scores.min()) >= 0 and float(scores.max()) <= 1


def test_anchor_count_by_hand() -> None:
    model = build_picodet(width=1.0, num_classes=5, neck_channels=64, levels=4).eval()
    with torch.no_grad():
        boxes, _ = model(torch.zeros(1, 3, 320, 256))
    assert boxes.shape[1] == 1700


def test_graph_mode_shapes() -> None:
    model = build_picodet(width=0.25, num_classes=3, neck_channels=32, levels=3, postprocess="graph").eval()
    with torch.no_grad():
        boxes, scores, labels, counts = model(torch.randn(2, 3, 128, 96))
    # 128×96 with strides 8/16/32: 16·12 + 8·6 + 4·3 = 252 anchors × 3 classes = 756 candidates ≥ keep 100.
    assert boxes.shape == (2, 100, 4) and scores.shape == (2, 100) and labels.shape == (2, 100)
    assert counts.shape == (2,) and labels.dtype == torch.int64


def test_backbone_widths_follow_the_paper() -> None:
    # papers.md §3.1: strides 8/16/32 carry 128/256/512 channels at ×1.0 and 320/640/1280 at ×2.5.
    assert lcnet_channels(build_lcnet(1.0)) == [128, 256, 512]
    assert lcnet_channels(build_lcnet(2.5)) == [320, 640, 1280]


def test_neck_width_is_the_same_for_teacher_and_student() -> None:
    student = build_picodet(width=1.0, num_classes=5, neck_channels=96, levels=4).eval()
    teacher = build_picodet(width=2.5, num_classes=5, neck_channels=96, levels=4).eval()
    x = torch.zeros(1, 3, 256, 192)
    with torch.no_grad():
        student_maps, teacher_maps = student.forward_features(x), teacher.forward_features(x)
    assert [m.shape for m in student_maps] == [m.shape for m in teacher_maps]
    assert all(m.shape[1] == 96 for m in student_maps)


def test_parameter_counts() -> None:
    student, teacher = picodet_lcnet_x1_0(), picodet_lcnet_x2_5()  # 5 classes, neck 96, 4 levels
    n_student, n_teacher = _params(student), _params(teacher)
    print(f"PicoDet params (neck 96, 4 levels, 5 classes): x1.0 {n_student:,}  x2.5 {n_teacher:,}")
    assert n_teacher >= 2.5 * n_student
    # Same neck and head width: only the backbone and the neck's 1×1 input squeezes differ.
    assert _params(student.head) == _params(teacher.head)


def test_neck_outputs_are_hookable_by_module_path() -> None:
    model = build_picodet(width=0.25, num_classes=3, neck_channels=32, levels=4).eval()
    paths = neck_output_paths(model)
    assert paths == ["neck.outputs.0", "neck.outputs.1", "neck.outputs.2", "neck.outputs.3"]
    capture = FeatureCapture(model, paths)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        model(x)
        direct = model.forward_features(x)
    for path, feature in zip(paths, direct):
        torch.testing.assert_close(capture.features[path], feature)
    capture.remove()


def test_anchor_points_by_hand() -> None:
    # A 2×2 map of stride 8 then a 1×1 map of stride 16: cell centres at (j + 0.5)·s, (i + 0.5)·s, row-major.
    centers, strides = anchor_points([(2, 2), (1, 1)], [8, 16])
    assert centers.tolist() == [[4, 4], [12, 4], [4, 12], [12, 12], [8, 8]]
    assert strides.tolist() == [8, 8, 8, 8, 16]


def test_decoding_a_hand_set_distribution() -> None:
    # Bin logits over 0..7 per side: two equal bins share the mass, the rest get ~0 probability.
    off = -1e4
    sides = torch.full((4, 8), off)
    sides[0, 1] = sides[0, 2] = 0.0  # left: (1 + 2) / 2 = 1.5 bins
    sides[1, 3] = 0.0  # top: 3 bins
    sides[2, 0] = sides[2, 4] = 0.0  # right: (0 + 4) / 2 = 2 bins
    sides[3, 7] = 0.0  # bottom: 7 bins
    logits = sides.reshape(1, 1, 32)
    center = torch.tensor([[8.0, 8.0]])  # cell (0, 0) of a stride-16 level
    box = decode_boxes(logits, center, torch.tensor([16.0]), reg_max=7)
    # distances × 16 = (24, 48, 32, 112) → (8 − 24, 8 − 48, 8 + 32, 8 + 112)
    torch.testing.assert_close(box, torch.tensor([[[-16.0, -40.0, 40.0, 120.0]]]))


def test_model_decode_uses_level_strides() -> None:
    # Through the model: raw maps of a 3-level model, a hand-set distribution at the first stride-16 cell.
    model = build_picodet(width=0.25, num_classes=2, neck_channels=32, levels=3).eval()
    class_maps = [torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1)]
    box_maps = [torch.zeros(1, 32, 2, 2), torch.zeros(1, 32, 1, 1), torch.zeros(1, 32, 1, 1)]
    level1 = torch.full((4, 8), -1e4)
    level1[:, 2] = 0.0  # 2 bins on every side → 32 px at stride 16
    box_maps[1][0, :, 0, 0] = level1.reshape(32)
    boxes, scores = model.decode((class_maps, box_maps))
    # Anchor 4 (after the four stride-8 cells) is at (8, 8): box (8 − 32, 8 − 32, 8 + 32, 8 + 32).
    torch.testing.assert_close(boxes[0, 4], torch.tensor([-24.0, -24.0, 40.0, 40.0]))
    # All-zero bin logits are uniform: 3.5 bins × 8 px = 28 px around (4, 4) for the first anchor.
    torch.testing.assert_close(boxes[0, 0], torch.tensor([-24.0, -24.0, 32.0, 32.0]))
    torch.testing.assert_close(scores, torch.full((1, 6, 2), 0.5))


def test_unknown_postprocess_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="postprocess"):
        build_picodet(width=0.25, num_classes=2, neck_channels=32, levels=3, postprocess="onnx")
