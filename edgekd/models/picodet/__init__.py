"""PP-PicoDet for document layout (papers.md §3.1): LCNet backbone, CSP-PAN neck, GFL-style PicoHead.

>>> from edgekd.models.picodet import build_picodet
>>> student = build_picodet(width=1.0, num_classes=5, neck_channels=96, levels=4, postprocess="host")
>>> teacher = build_picodet(width=2.5, num_classes=5, neck_channels=96, levels=4, postprocess="host")
"""

from edgekd.models.picodet.backbone import build_lcnet, lcnet_channels, lcnet_output_paths
from edgekd.models.picodet.decode import (
    anchor_points,
    box_to_distance,
    decode_boxes,
    distance_to_box,
    distribution_to_distance,
    flatten_levels,
)
from edgekd.models.picodet.head import PicoHead
from edgekd.models.picodet.model import (
    POSTPROCESS_MODES,
    PicoDet,
    RawOutputs,
    build_picodet,
    neck_output_paths,
    output_names,
    picodet_lcnet_x1_0,
    picodet_lcnet_x2_5,
)
from edgekd.models.picodet.neck import CSPPAN
from edgekd.models.picodet.nms import NmsConfig, graph_nms

__all__ = [
    "CSPPAN",
    "NmsConfig",
    "POSTPROCESS_MODES",
    "PicoDet",
    "PicoHead",
    "RawOutputs",
    "anchor_points",
    "box_to_distance",
    "build_lcnet",
    "build_picodet",
    "decode_boxes",
    "distance_to_box",
    "distribution_to_distance",
    "flatten_levels",
    "graph_nms",
    "lcnet_channels",
    "lcnet_output_paths",
    "neck_output_paths",
    "output_names",
    "picodet_lcnet_x1_0",
    "picodet_lcnet_x2_5",
]
