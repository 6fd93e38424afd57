"""Gaze teacher / DFT Gaze student: exact sizes from papers.md §1.1, adapters, trainable parts, stage-1 copy."""

from __future__ import annotations

import pytest
import torch

from edgekd.errors import EdgekdError
from edgekd.models import (
    MODELS,
    Adapter,
    adapter_paths,
    build_convnextv2_adapter,
    copy_stage1_,
    count_macs,
    count_parameters,
    feature_channels,
    eval_frozen_batchnorm_,
    set_trainable_,
    stage_paths,
)

# papers.md's reconstructed counts assume a 3-channel stem; a 1-channel stem has 4·4·2·40 = 1,280 fewer weights.
PAPER_TOTALS = {"convnextv2_atto_gaze": 3_578_462, "dft_gaze_student": 281_012}
TUNABLE = {"convnextv2_atto_gaze": 191_702, "dft_gaze_student": 14_432}
GRAY_STEM_SAVING = 1_280


@pytest.fixture(scope="module")
def teacher() -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.get("convnextv2_atto_gaze")().eval()


@pytest.fixture(scope="module")
def student() -> torch.nn.Module:
    torch.manual_seed(1)
    return MODELS.get("dft_gaze_student")().eval()


@pytest.mark.parametrize("name", sorted(PAPER_TOTALS))
def test_parameter_counts_match_the_paper(name: str) -> None:
    rgb = MODELS.get(name)(in_chans=3)
    gray = MODELS.get(name)(in_chans=1)
    assert count_parameters(rgb) == PAPER_TOTALS[name]
    assert count_parameters(gray) == PAPER_TOTALS[name] - GRAY_STEM_SAVING
    assert set_trainable_(rgb, "adapters") == TUNABLE[name]
    assert count_parameters(rgb, trainable_only=True) == TUNABLE[name]


def test_set_trainable_parts(teacher: torch.nn.Module) -> None:
    total = count_parameters(teacher)
    last_stage = 2 * (320 * 80 + 80 + 2 * 80 + 80 * 320 + 320)  # two adapters of width 320
    assert set_trainable_(teacher, "last_stage_adapters") == last_stage
    assert not teacher.head.fc.weight.requires_grad
    assert set_trainable_(teacher, "backbone") == total - TUNABLE["convnextv2_atto_gaze"]
    assert set_trainable_(teacher, "all") == total
    with pytest.raises(ValueError, match="last_stage_adapters"):
        set_trainable_(teacher, "adaptors")


def test_frozen_adapter_batchnorm_can_stop_updating_statistics(student: torch.nn.Module) -> None:
    set_trainable_(student, "last_stage_adapters")
    student.train()
    assert eval_frozen_batchnorm_(student) == 10  # 12 blocks, 2 of them in the last stage
    assert student.stages[3].blocks[0].mlp.adapter.bn.training
    assert not student.stages[0].blocks[0].mlp.adapter.bn.training
    set_trainable_(student, "all")
    student.eval()


def test_adapters_sit_in_every_block_and_start_as_identity() -> None:
    model = build_convnextv2_adapter((8, 16, 24, 32), (1, 2, 1, 1))
    assert adapter_paths(model) == [
        "stages.0.blocks.0.mlp.adapter", "stages.1.blocks.0.mlp.adapter", "stages.1.blocks.1.mlp.adapter",
        "stages.2.blocks.0.mlp.adapter", "stages.3.blocks.0.mlp.adapter",
    ]
    adapter = Adapter(40).train()
    x = torch.randn(2, 4, 4, 40)
    assert torch.equal(adapter(x), x)


def test_fresh_adapters_leave_a_block_output_unchanged(teacher: torch.nn.Module) -> None:
    block = teacher.stages[1].blocks[0]
    x = torch.randn(1, 80, 4, 4)
    with torch.no_grad():
        plain = block.mlp.mlp(x.permute(0, 2, 3, 1))
        adapted = block.mlp(x.permute(0, 2, 3, 1))
    assert torch.equal(plain, adapted)


def test_copy_stage1_makes_stage1_outputs_equal(teacher: torch.nn.Module, student: torch.nn.Module) -> None:
    x = torch.randn(2, 1, 64, 64)
    copied = copy_stage1_(teacher, student)
    assert "stem.0.weight" in copied and "stages.0.blocks.1.mlp.adapter.bn.running_var" in copied
    assert not any(name.startswith("stages.1.") for name in copied)
    with torch.no_grad():
        assert torch.equal(teacher.stages[0](teacher.stem(x)), student.stages[0](student.stem(x)))


def test_copy_stage1_refuses_other_shapes(teacher: torch.nn.Module) -> None:
    narrow = build_convnextv2_adapter((32, 20, 40, 80), (2, 2, 6, 2))
    with pytest.raises(ValueError, match="stem.0.weight"):
        copy_stage1_(teacher, narrow)


def test_feature_channels_and_stage_paths(teacher: torch.nn.Module, student: torch.nn.Module) -> None:
    assert feature_channels(teacher) == [40, 80, 160, 320]
    assert feature_channels(student) == [40, 20, 40, 80]
    assert stage_paths(student) == ["stages.0", "stages.1", "stages.2", "stages.3"]
    modules = dict(student.named_modules())
    assert all(path in modules for path in stage_paths(student))


@pytest.mark.parametrize("side", [64, 96])
def test_forward_gives_two_outputs(teacher: torch.nn.Module, student: torch.nn.Module, side: int) -> None:
    x = torch.randn(2, 1, side, side)
    with torch.no_grad():
        assert teacher(x).shape == student(x).shape == (2, 2)


def test_student_needs_under_a_third_of_the_teacher_macs(teacher: torch.nn.Module, student: torch.nn.Module) -> None:
    t, s = count_macs(teacher, (1, 1, 64, 64)), count_macs(student, (1, 1, 64, 64))
    assert (t, s) == (46_784_640, 10_958_880)  # papers.md: ~47 / ~11 MMACs at 64²
    assert 3 * s <= t
    assert teacher.training is False  # count_macs restores the mode it found


def test_torch_export_works(teacher: torch.nn.Module, student: torch.nn.Module) -> None:
    x = torch.randn(1, 1, 64, 64)
    for model in (teacher, student):
        exported = torch.export.export(model.eval(), (x,))
        torch.testing.assert_close(exported.module()(x), model(x))


def test_unknown_model_name_suggests_the_closest() -> None:
    with pytest.raises(EdgekdError, match="dft_gaze_student"):
        MODELS.get("dft_gaze_studnet")


def test_deploy_copy_folds_adapter_batchnorm_exactly() -> None:
    from torch import nn

    from edgekd.models import MODELS, deploy_copy

    torch.manual_seed(0)
    model = MODELS.get("dft_gaze_student")()
    model.train()
    for _ in range(3):  # give the adapter BatchNorms non-trivial running statistics
        model(torch.randn(8, 1, 64, 64))
    for module in model.modules():  # and non-zero adapters, so the fold matters
        if isinstance(module, nn.BatchNorm1d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
        if type(module).__name__ == "Adapter":
            nn.init.normal_(module.fc_up.weight, std=0.05)
    model.eval()
    fused = deploy_copy(model)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm1d) for m in model.modules())  # the original is untouched
    x = torch.randn(4, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-4)
