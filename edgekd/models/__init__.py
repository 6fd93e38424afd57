"""Models that timm lacks: ConvNeXt V2 adapters, the DFT Gaze student, distillation decoders.

`MODELS` maps a name to a builder `builder(in_chans=1, num_outputs=2) -> nn.Module`; importing this package
registers them all.

>>> from edgekd.models import MODELS
>>> student = MODELS.get("dft_gaze_student")(in_chans=1, num_outputs=2)
"""

from edgekd.registry import Registry

# Defined before the model modules are imported: they register into it at import time.
MODELS: Registry = Registry("model")

from edgekd.models.adapters import (  # noqa: E402
    Adapter,
    AdaptedMlp,
    adapter_paths,
    eval_frozen_batchnorm_,
    insert_adapters_,
    set_trainable_,
)
from edgekd.models.complexity import count_macs, count_parameters, deploy_copy  # noqa: E402
from edgekd.models.convnextv2 import (  # noqa: E402
    build_convnextv2_adapter,
    convnextv2_atto_gaze,
    copy_stage1_,
    dft_gaze_student,
    feature_channels,
    stage_paths,
)
from edgekd.models.decoders import FeatureDecoder, PixelDecoder  # noqa: E402
from edgekd.models.ibvs import DroneCommandRegressor  # noqa: E402
from edgekd.models.picodet import build_picodet, picodet_lcnet_x1_0, picodet_lcnet_x2_5  # noqa: E402

MODELS.register("picodet_lcnet_x1_0")(picodet_lcnet_x1_0)
MODELS.register("picodet_lcnet_x2_5")(picodet_lcnet_x2_5)

__all__ = [
    "MODELS",
    "Adapter",
    "AdaptedMlp",
    "DroneCommandRegressor",
    "FeatureDecoder",
    "PixelDecoder",
    "adapter_paths",
    "build_picodet",
    "build_convnextv2_adapter",
    "convnextv2_atto_gaze",
    "copy_stage1_",
    "count_macs",
    "deploy_copy",
    "count_parameters",
    "dft_gaze_student",
    "eval_frozen_batchnorm_",
    "feature_channels",
    "insert_adapters_",
    "picodet_lcnet_x1_0",
    "picodet_lcnet_x2_5",
    "set_trainable_",
    "stage_paths",
]
