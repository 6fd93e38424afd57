"""FGD (papers.md §3.2) and the feature-KD registry: golden numbers derived by hand in the comments."""

from __future__ import annotations

import math

import pytest
import torch

from edgekd.distill.fgd import FGD, GcBlock, attention, focal_masks
from edgekd.distill.feature_kd import FEATURE_KD, FeatureMSE, build_feature_kd
from edgekd.errors import EdgekdError

# With T = 1 / ln 3, softmax(g / T) is proportional to 3**g: integer magnitudes give simple fractions.
T3 = 1 / math.log(3)


def _student_2x2() -> torch.Tensor:
    # channel 0 = [[2, 2], [0, 0]], channel 1 = 0:
    #   mean_c |F| = [[1, 1], [0, 0]] -> softmax ∝ [3, 3, 1, 1] / 8 -> A^S = 4 * that = [[1.5, 1.5], [0.5, 0.5]]
    #   mean_hw |F| = [1, 0]         -> softmax ∝ [3, 1] / 4        -> A^C = 2 * that = [1.5, 0.5]
    return torch.tensor([[[[2.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]])


def _fgd(**weights: float) -> FGD:
    params = {"alpha_fg": 1.0, "beta_bg": 10.0, "gamma_at": 100.0, "lambda_global": 1000.0, **weights}
    return FGD(2, 2, temperature=T3, **params)


def test_attention_values() -> None:
    spatial, channel = attention(_student_2x2(), T3)
    assert torch.allclose(spatial, torch.tensor([[[1.5, 1.5], [0.5, 0.5]]]))
    assert torch.allclose(channel, torch.tensor([[1.5, 0.5]]))
    # A constant map gives uniform attention: every value 1.
    spatial, channel = attention(torch.ones(1, 2, 2, 2), 0.5)
    assert torch.allclose(spatial, torch.ones(1, 2, 2)) and torch.allclose(channel, torch.ones(1, 2))


def test_every_term_and_the_weighted_total() -> None:
    # Teacher = ones: A^S_T = 1 and A^C_T = 1 everywhere. Student as in _student_2x2.
    # (F_T - F_S)^2: channel 0 = [[1, 1], [1, 1]] (from ±1), channel 1 = 1 everywhere.
    # Box [0, 0, 1, 1] on a 2x2 image with a 2x2 map (stride 1): cell (0, 0), M_fg = 1/1; M_bg = 1/3 on the other 3.
    #   L_fg = 1 * (1 + 1) = 2;  L_bg = 1/3 * (3 cells * 2 channels * 1) = 2
    #   L_at = (|1.5-1| + |0.5-1|) + (4 * 0.5) = 1 + 2 = 3
    #   L_global (W_v2 = 0, so R(F) = F) = sum of squared differences = 8
    # total = 1*2 + 10*2 + 100*3 + 1000*8 = 8322
    terms = _fgd()(_student_2x2(), torch.ones(1, 2, 2, 2), [torch.tensor([[0.0, 0.0, 1.0, 1.0]])], (2, 2))
    assert terms["fg"].item() == pytest.approx(2.0)
    assert terms["bg"].item() == pytest.approx(2.0)
    assert terms["attention"].item() == pytest.approx(3.0)
    assert terms["global"].item() == pytest.approx(8.0)
    assert terms["loss"].item() == pytest.approx(8322.0)


def test_feature_terms_use_the_teachers_attention_and_divide_by_batch() -> None:
    # Teacher = _student_2x2 (A^S_T = [[1.5, 1.5], [.5, .5]], A^C_T = [1.5, .5]); student = 0; no boxes.
    # (F_T - F_S)^2: channel 0 = [[4, 4], [0, 0]], channel 1 = 0.  M_bg = 1/4 everywhere.
    #   L_bg = 1/4 * A^C_0 * (A^S_00 * 4 + A^S_01 * 4) = 1/4 * 1.5 * (1.5*4 + 1.5*4) = 4.5
    # (the student's attention, uniform 1, would give 1/4 * 8 = 2).  L_fg = 0 (no boxes).
    # Student attention = 1 everywhere: L_at = (0.5 + 0.5) + (0.5 * 4) = 3.
    teacher = _student_2x2()
    terms = _fgd()(torch.zeros(1, 2, 2, 2), teacher, [torch.zeros(0, 4)], (2, 2))
    assert terms["bg"].item() == pytest.approx(4.5)
    assert terms["fg"].item() == 0.0
    assert terms["attention"].item() == pytest.approx(3.0)
    # The same image twice: every term is a sum over the batch divided by N = 2, so it stays the same.
    pair = _fgd()(torch.zeros(2, 2, 2, 2), teacher.repeat(2, 1, 1, 1), [torch.zeros(0, 4)] * 2, (2, 2))
    for name in ("fg", "bg", "attention", "global"):
        assert pair[name].item() == pytest.approx(terms[name].item())


def test_batch_of_two_with_and_without_boxes() -> None:
    # Teacher = ones (all attention 1). Image 1: box on cell (0, 0); image 2: no boxes (all background, 1/4 each).
    # Image 1 student: channel 0 = [[3, 1], [0, 1]], channel 1 = [[1, 1], [1, -1]]
    #   squared differences: channel 0 = [[4, 0], [1, 0]], channel 1 = [[0, 0], [0, 4]]
    #   fg = 1 * (4 + 0) = 4;  bg = 1/3 * (0 + 1 + 0 + 0 + 0 + 4) = 5/3;  sum of squares = 9
    # Image 2 student: ones except channel 0 (0, 0) = 3: squared differences 4 at one cell
    #   fg = 0;  bg = 1/4 * 4 = 1;  sum of squares = 4
    # Divided by N = 2: L_fg = 2, L_bg = (5/3 + 1) / 2 = 4/3, L_global = 13 / 2.
    student = torch.ones(2, 2, 2, 2)
    student[0] = torch.tensor([[[3.0, 1.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, -1.0]]])
    student[1, 0, 0, 0] = 3.0
    boxes = [torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.zeros(0, 4)]
    terms = _fgd()(student, torch.ones(2, 2, 2, 2), boxes, (2, 2))
    assert terms["fg"].item() == pytest.approx(2.0)
    assert terms["bg"].item() == pytest.approx(4 / 3)
    assert terms["global"].item() == pytest.approx(6.5)


def test_masks_overlap_border_and_empty_image() -> None:
    # A 32x32 image on a 4x4 map: stride 8, so pixel x maps to cell column x / 8.
    #   box A [0, 0, 16, 16]  -> columns/rows 0..1: 4 cells, 1/4 each
    #   box B [8, 8, 16, 16]  -> cell (1, 1) only: value 1, which wins over A's 1/4 there
    #   box C [28, 0, 36, 8]  -> x 3.5..4.5: column 3 after clipping to the map (1 cell, value 1); row 0
    #   box D [20, 20, 31, 31] -> x 2.5..3.875: floor 2, ceil 4 -> columns 2..3, rows 2..3: 1/4 each
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0], [8.0, 8.0, 16.0, 16.0], [28.0, 0.0, 36.0, 8.0],
                          [20.0, 20.0, 31.0, 31.0]])
    foreground, background = focal_masks([boxes, torch.zeros(0, 4)], (32, 32), (4, 4))
    q = 0.25
    expected = torch.tensor([[q, q, 0, 1], [q, 1, 0, 0], [0, 0, q, q], [0, 0, q, q]])
    assert torch.allclose(foreground[0], expected)
    # Background: the 7 cells where M_fg = 0 get 1/7 each.
    assert torch.allclose(background[0], (expected == 0).float() / 7)
    # The image without boxes: no foreground, every one of the 16 cells is background with 1/16.
    assert torch.equal(foreground[1], torch.zeros(4, 4))
    assert torch.allclose(background[1], torch.full((4, 4), 1 / 16))


def test_masks_map_rows_to_height_and_columns_to_width() -> None:
    # A non-square 16x32 (H x W) image on a 2x4 map (stride 8): box [8, 0, 16, 8] is row 0, column 1.
    foreground, _ = focal_masks([torch.tensor([[8.0, 0.0, 16.0, 8.0]])], (16, 32), (2, 4))
    assert torch.equal(foreground[0], torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))


def test_thin_box_marks_one_cell_and_a_full_map_has_no_background() -> None:
    # A zero-width box at x = 8 on a stride-8 map still marks one cell; a box over the whole map leaves no
    # background, so M_bg stays 0 instead of dividing by zero.
    foreground, background = focal_masks([torch.tensor([[8.0, 0.0, 8.0, 8.0]]), torch.tensor([[0.0, 0.0, 16.0, 16.0]])],
                                         (16, 16), (2, 2))
    assert foreground[0].sum().item() == 1.0 and foreground[0, 0, 1].item() == 1.0
    assert torch.allclose(foreground[1], torch.full((2, 2), 0.25))
    assert torch.equal(background[1], torch.zeros(2, 2))


def test_gc_block_is_identity_at_init_and_matches_hand_values() -> None:
    block = GcBlock(4)
    features = torch.randn(2, 4, 3, 3)
    assert torch.equal(block(features), features)  # W_v2 starts at zero
    # Set weights by hand on a 1x2 map with pixels p1 = [1, 2, 3, 4] and p2 = [3, 2, 1, 0]:
    #   W_k = 0 -> softmax uniform -> context = (p1 + p2) / 2 = [2, 2, 2, 2]
    #   W_v1 row 0 = [1, 0, 0, 0], row 1 = 0 -> [2, 0]; LayerNorm over 2 values: mean 1, var 1 -> [1, -1]
    #   ReLU -> [1, 0]; W_v2 column 0 = [1, 0, 0, -1] -> adds [1, 0, 0, -1] to every pixel
    #   R: p1 -> [2, 2, 3, 3], p2 -> [4, 2, 1, -1]
    with torch.no_grad():
        block.context_mask.weight.zero_()
        block.transform[0].weight.zero_()
        block.transform[0].bias.zero_()
        block.transform[0].weight[0, 0] = 1.0
        block.transform[3].weight[:, 0, 0, 0] = torch.tensor([1.0, 0.0, 0.0, -1.0])
    pixels = torch.tensor([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [4.0, 0.0]]).reshape(1, 4, 1, 2)
    expected = torch.tensor([[2.0, 4.0], [2.0, 2.0], [3.0, 1.0], [3.0, -1.0]]).reshape(1, 4, 1, 2)
    assert torch.allclose(block(pixels), expected, atol=1e-4)


def test_alignment_conv_only_when_channels_differ() -> None:
    assert FGD(4, 4).align is None and FeatureMSE(4, 4).align is None
    fgd = FGD(3, 4)
    assert isinstance(fgd.align, torch.nn.Conv2d) and fgd.align.in_channels == 3 and fgd.align.out_channels == 4
    assert fgd.student_gc.context_mask.in_channels == 4  # the GcBlocks work at the teacher's width
    terms = fgd(torch.randn(2, 3, 4, 4), torch.randn(2, 4, 4, 4), [torch.tensor([[0.0, 0.0, 8.0, 8.0]])] * 2, (16, 16))
    assert set(terms) == {"loss", "fg", "bg", "attention", "global"} and torch.isfinite(terms["loss"])


def test_gradients_reach_the_student_not_the_teacher() -> None:
    student = torch.randn(2, 3, 4, 4, requires_grad=True)
    teacher = torch.randn(2, 4, 4, 4, requires_grad=True)
    fgd = FGD(3, 4)
    fgd(student, teacher, [torch.tensor([[0.0, 0.0, 8.0, 8.0]]), torch.zeros(0, 4)], (16, 16))["loss"].backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
    assert fgd.align.weight.grad is not None  # the alignment conv learns with the student
    # W_v2 of the teacher-side GcBlock gets a gradient too (as in the official code).
    assert fgd.teacher_gc.transform[3].weight.grad is not None


def test_feature_mse_golden() -> None:
    # student [1, 2, 3, 4] vs teacher [1, 0, 3, 0]: squared differences 0, 4, 0, 16 -> mean 5; weight 2 -> 10.
    student = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)
    teacher = torch.tensor([1.0, 0.0, 3.0, 0.0]).reshape(1, 1, 2, 2)
    terms = FeatureMSE(1, 1, weight=2.0)(student, teacher, [torch.zeros(0, 4)], (2, 2))
    assert terms["mse"].item() == pytest.approx(5.0) and terms["loss"].item() == pytest.approx(10.0)


def test_registry_lookup_and_parameter_names() -> None:
    assert FEATURE_KD.get("fgd") is FGD and FEATURE_KD.get("feature_mse") is FeatureMSE
    with pytest.raises(EdgekdError, match="did you mean 'fgd'"):
        FEATURE_KD.get("fdg")
    built = build_feature_kd("fgd", 4, 4, alpha_fg=2e-3, temperature=0.8)
    assert built.weights["fg"] == 2e-3 and built.temperature == 0.8
    with pytest.raises(EdgekdError, match="did you mean 'alpha_fg'"):
        build_feature_kd("fgd", 4, 4, alpha_gf=1.0)


def test_defaults_are_the_layout_config() -> None:
    fgd = FGD(8, 8)
    assert fgd.temperature == 0.5
    assert fgd.weights == {"fg": 1e-3, "bg": 5e-4, "attention": 5e-4, "global": 5e-6}


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="same batch and spatial size"):
        FGD(2, 2)(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 3, 3), [torch.zeros(0, 4)], (2, 2))
