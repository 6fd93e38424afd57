"""PP-LCNet backbone at any width multiplier, built by timm (papers.md §3.1).

Stem 16; depthwise-separable blocks 32 → 64,64 → 128,128 → 256×6 (5×5 kernels in the last five) → 512,512
with SE; hard-swish; widths × `width` rounded to multiples of 8. The detector reads strides 8/16/32, which are
timm's `blocks.2`, `blocks.4` and `blocks.5` (128/256/512 channels at ×1.0, 320/640/1280 at ×2.5).

>>> build_lcnet(1.0).feature_info.channels()
[128, 256, 512]
"""

from __future__ import annotations

from torch import nn

# timm feature indices of the stride-8/16/32 outputs (its LCNet has five feature stages: strides 2..32).
DETECTION_OUT_INDICES = (2, 3, 4)
DETECTION_STRIDES = (8, 16, 32)


def build_lcnet(width: float) -> nn.Module:
    """A features-only LCNet returning [stride 8, stride 16, stride 32] maps; random init (no hub weights).

    Module paths of the outputs (for feature hooks): `blocks.2`, `blocks.4`, `blocks.5`.
    """
    if width <= 0:
        raise ValueError(f"LCNet width must be positive, got {width}")
    # timm's public names stop at lcnet_150 and `create_model("lcnet_100", channel_multiplier=2.5)` collides
    # with the multiplier its entry point already passes, so the ×2.5 teacher is only reachable through the
    # generator behind those entry points. Using it keeps one LCNet definition (timm's, tested against
    # PaddleClas weights) for every width instead of a hand-written copy; the model tests pin the channel
    # widths, so a change of this private function in a later timm fails loudly rather than silently.
    from timm.models.mobilenetv3 import _gen_lcnet

    variant = f"lcnet_{round(width * 100):03d}"
    return _gen_lcnet(
        variant,
        width,
        pretrained=False,
        features_only=True,
        out_indices=DETECTION_OUT_INDICES,
        # An explicit config stops timm looking up (and warning about) weights for a width it has none for.
        pretrained_cfg={"architecture": variant},
    )


def lcnet_channels(model: nn.Module) -> list[int]:
    """Channels of the three detection outputs, e.g. [128, 256, 512] at ×1.0."""
    return list(model.feature_info.channels())


def lcnet_output_paths(model: nn.Module) -> list[str]:
    """Module paths of the three detection outputs inside the backbone."""
    return list(model.feature_info.module_name())
