"""ConvNeXt V2 gaze models: the Atto teacher and the DFT Gaze student, both with adapters (papers.md §1.1).

timm builds the backbone and head; edgekd only adds the adapters. Stage `l` (0-based) outputs at module path
`stages.{l}` — the papers' stages 3 and 4 are `stages.2` and `stages.3`.

>>> teacher = MODELS.get("convnextv2_atto_gaze")()
>>> teacher(torch.zeros(1, 1, 64, 64)).shape          # (yaw, pitch) in radians
torch.Size([1, 2])
"""

from __future__ import annotations

from typing import Sequence

from timm.models.convnext import ConvNeXt
from torch import nn

from edgekd.models import MODELS
from edgekd.models.adapters import insert_adapters_

DEPTHS = (2, 2, 6, 2)
TEACHER_WIDTHS = (40, 80, 160, 320)
# DFT Gaze: stages 2-4 cut to a quarter; stage 1 keeps width 40 so it can inherit the teacher's weights.
STUDENT_WIDTHS = (40, 20, 40, 80)
STAGE1_PREFIXES = ("stem.", "stages.0.")


def build_convnextv2_adapter(
    widths: Sequence[int], depths: Sequence[int], in_chans: int = 1, num_outputs: int = 2
) -> nn.Module:
    """A ConvNeXt V2 (GRN in the MLP, no layer scale) with one Adapter in every block and a linear head.

    Head: global average pool → LayerNorm → Linear(widths[-1] → num_outputs). Input sides must divide by 32.
    """
    model = ConvNeXt(
        in_chans=in_chans,
        num_classes=num_outputs,
        depths=tuple(depths),
        dims=tuple(widths),
        use_grn=True,
        ls_init_value=None,
        conv_mlp=False,
        drop_path_rate=0.0,
    )
    insert_adapters_(model)
    return model


@MODELS.register("convnextv2_atto_gaze")
def convnextv2_atto_gaze(in_chans: int = 1, num_outputs: int = 2) -> nn.Module:
    """The teacher: ConvNeXt V2-Atto with adapters (3,578,462 params, 191,702 tunable)."""
    return build_convnextv2_adapter(TEACHER_WIDTHS, DEPTHS, in_chans, num_outputs)


@MODELS.register("dft_gaze_student")
def dft_gaze_student(in_chans: int = 1, num_outputs: int = 2) -> nn.Module:
    """The DFT Gaze student (281,012 params, 14,432 tunable); call `copy_stage1_` to inherit stage 1."""
    return build_convnextv2_adapter(STUDENT_WIDTHS, DEPTHS, in_chans, num_outputs)


def feature_channels(model: nn.Module) -> list[int]:
    """Output width of each stage, e.g. [40, 80, 160, 320] for the teacher."""
    return [info["num_chs"] for info in model.feature_info]


def stage_paths(model: nn.Module) -> list[str]:
    """Module path of each stage's output, e.g. ["stages.0", ..., "stages.3"] (for feature hooks)."""
    return [info["module"] for info in model.feature_info]


def copy_stage1_(teacher: nn.Module, student: nn.Module) -> list[str]:
    """Copy the stem and `stages.0` (weights and BN statistics) from teacher to student; returns the keys copied."""
    source = {k: v for k, v in teacher.state_dict().items() if k.startswith(STAGE1_PREFIXES)}
    target = {k: v for k, v in student.state_dict().items() if k.startswith(STAGE1_PREFIXES)}
    if source.keys() != target.keys():
        diff = sorted(source.keys() ^ target.keys())
        raise ValueError(f"stage 1 differs between teacher and student (keys only in one: {diff[:4]})")
    for key, value in source.items():
        if value.shape != target[key].shape:
            raise ValueError(
                f"cannot copy stage 1: '{key}' is {tuple(value.shape)} in the teacher, "
                f"{tuple(target[key].shape)} in the student"
            )
    student.load_state_dict(source, strict=False)
    return sorted(source)
