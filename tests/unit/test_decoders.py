"""Distillation decoders: feature decoder Ψ (student → teacher width) and the pixel decoder."""

from __future__ import annotations

import pytest
import torch

from edgekd.models import FeatureDecoder, PixelDecoder, count_parameters


@pytest.mark.parametrize(("c_s", "c_t", "side", "params"), [(40, 160, 4, 21_960), (80, 320, 2, 82_320)])
def test_feature_decoder_maps_student_to_teacher_width(c_s: int, c_t: int, side: int, params: int) -> None:
    psi = FeatureDecoder(c_s, c_t)
    assert psi(torch.randn(2, c_s, side, side)).shape == (2, c_t, side, side)
    assert count_parameters(psi) == params


def test_feature_decoder_is_a_convnextv2_block_then_a_projection() -> None:
    psi = FeatureDecoder(40, 160)
    assert psi.block.mlp.fc1.out_channels == 160  # 4× expansion inside the block
    assert psi.block.mlp.grn is not None and psi.block.gamma is None
    assert psi.proj.in_channels == 40 and psi.proj.out_channels == 160


@pytest.mark.parametrize(("side", "out_chans"), [(64, 1), (96, 1), (64, 3)])
def test_pixel_decoder_reconstructs_full_resolution(side: int, out_chans: int) -> None:
    decoder = PixelDecoder(80, stride=32, out_chans=out_chans)
    z = torch.randn(2, 80, side // 32, side // 32)
    assert decoder(z).shape == (2, out_chans, side, side)


def test_pixel_decoder_stays_small() -> None:
    assert count_parameters(PixelDecoder(80, stride=32)) == 108_672
    assert count_parameters(PixelDecoder(80, stride=32, hidden=128)) == 281_856
