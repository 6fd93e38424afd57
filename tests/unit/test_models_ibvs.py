"""The NSER-IBVS student at the paper's shape, its CoordConv variant, and the teacher's perception graph."""

import torch

from edgekd.models import MODELS, count_macs, count_parameters
from edgekd.models.ibvs import build_perception, coordinate_channels


def test_paper_student_has_the_papers_parameter_count() -> None:
    student = MODELS.get("nser_student")()
    assert count_parameters(student) == 1_715_843
    assert abs(count_macs(student, (1, 3, 224, 224)) / 1e9 - 4.23) < 0.01


def test_coordinate_variant_adds_two_input_channels() -> None:
    # conv1 gains 2 input channels: 2 x 16 x 5 x 5 = 800 weights
    assert count_parameters(MODELS.get("nser_student_coord")()) == 1_715_843 + 800
    out = MODELS.get("nser_student_half_coord")()(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 3) and out.abs().max() <= 1


def test_lite_student_has_the_same_weights_and_about_a_third_of_the_compute() -> None:
    half, lite = MODELS.get("nser_student_half_coord")(), MODELS.get("nser_student_half_coord_lite")()
    assert count_parameters(lite) == count_parameters(half)
    # at 96²: conv5 and conv6 run at 10² and 8² instead of 22² and 20² (the rest is unchanged)
    ratio = count_macs(lite, (1, 3, 96, 96)) / count_macs(half, (1, 3, 96, 96))
    assert 0.25 < ratio < 0.45
    assert lite(torch.zeros(2, 3, 96, 96)).shape == (2, 3)


def test_coordinate_channels_span_the_image() -> None:
    coords = coordinate_channels(torch.zeros(1, 3, 3, 5))
    assert coords[0, 0, 0].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]  # x along a row
    assert coords[0, 1, :, 0].tolist() == [-1.0, 0.0, 1.0]  # y down a column


def test_perception_pads_odd_frames_and_crops_back() -> None:
    perception = build_perception((4, 8, 8, 8), (4, 8, 8, 8)).eval()
    vehicle, split = perception(torch.zeros(1, 3, 90, 160))  # 90 is not a multiple of 16
    assert vehicle.shape == (1, 1, 90, 160) and split.shape == (1, 3, 90, 160)
