"""PicoDet ONNX export through edgekd's exporter: both post-processing modes match PyTorch in ONNX Runtime, and
the in-graph NMS keeps the same boxes as the host-side path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.export import EXPORTERS
from edgekd.models.picodet import NmsConfig, build_picodet, output_names
from edgekd.tasks.layout.postprocess import detections_from_graph, postprocess_detections

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

HEIGHT, WIDTH, CLASSES = 128, 96, 3
# Scaled to the random-weight model below (scores ~0.2-0.9, ~350 of 756 pairs above 0.5): the score bar, the
# pre-NMS cap and NMS itself all remove candidates, and keep_top_k does not hide how many NMS kept (~70).
NMS = NmsConfig(score_threshold=0.5, iou_threshold=0.6, pre_nms_top_k=200, keep_top_k=200)


def _tiny_model(postprocess: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_picodet(width=0.25, num_classes=CLASSES, neck_channels=32, levels=3, postprocess=postprocess,
                          nms=NMS)
    for conv in model.head.predictors:  # spread scores and box sizes (the prior init puts every score at 0.01)
        torch.nn.init.normal_(conv.weight, std=0.05)
        torch.nn.init.normal_(conv.bias, std=0.5)
    # Fresh BatchNorm statistics (mean 0, var 1) let activations fade to nothing through ~30 layers, leaving
    # every anchor with the same score; one pass with momentum 1 sets them to real batch statistics.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0
    with torch.no_grad():
        model.train()(torch.randn(16, 3, HEIGHT, WIDTH))
    return model.eval()


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# Each mode through each exporter; the default run covers one of each, the other two pairs are marked slow
# (a dynamo export of even this tiny model takes several seconds on two cores).
ROUTES = [
    pytest.param("host", 17, id="host-torchscript"),
    pytest.param("graph", 18, id="graph-dynamo"),
    pytest.param("host", 18, id="host-dynamo", marks=pytest.mark.slow),
    pytest.param("graph", 17, id="graph-torchscript", marks=pytest.mark.slow),
]
EXPORTER_AT_OPSET = {17: "torchscript", 18: "dynamo"}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """export(mode, opset) → (model, ExportResult), each pair exported once per module."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("picodet-onnx")
    cache: dict = {}

    def get(mode: str, opset: int):
        if (mode, opset) not in cache:
            model = _tiny_model(mode)
            result = EXPORTERS.get("onnx").export(model, torch.randn(1, 3, HEIGHT, WIDTH),
                                                  folder / f"picodet_{mode}_{opset}.onnx", opset=opset,
                                                  output_names=output_names(mode))
            cache[mode, opset] = (model, result)
        return cache[mode, opset]

    return get


def _normalised(name: str, values: np.ndarray) -> np.ndarray:
    # Boxes are compared as fractions of the input size: pixel coordinates reach ±250 here, where float32
    # rounding through ~40 layers alone moves them by ~1e-3 px.
    return values / np.array([WIDTH, HEIGHT, WIDTH, HEIGHT]) if name == "boxes" else values


@pytest.mark.parametrize(("mode", "opset"), ROUTES)
def test_onnxruntime_matches_pytorch(export, mode: str, opset: int) -> None:
    model, result = export(mode, opset)
    assert result.extra["exporter"] == EXPORTER_AT_OPSET[opset] and result.extra["dynamic_batch"]
    session = _session(result.path)
    assert [o.name for o in session.get_outputs()] == list(output_names(mode))
    images = torch.randn(2, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(images)
    got = session.run(None, {"input": images.numpy()})
    for name, ours, theirs in zip(output_names(mode), got, expected):
        assert ours.shape == tuple(theirs.shape), name
        np.testing.assert_allclose(_normalised(name, ours), _normalised(name, theirs.numpy()), atol=1e-4, rtol=0,
                                   err_msg=name)


def test_graph_nms_keeps_the_host_side_boxes(export) -> None:
    _, host_result = export("host", 17)
    _, graph_result = export("graph", 18)
    images = torch.randn(2, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(2))
    boxes, scores = _session(host_result.path).run(None, {"input": images.numpy()})
    host = postprocess_detections(boxes, scores, NMS, scales=[0.5, (0.25, 0.5)])
    graph = detections_from_graph(*_session(graph_result.path).run(None, {"input": images.numpy()}),
                                  scales=[0.5, (0.25, 0.5)])
    above = (scores > NMS.score_threshold).sum(axis=(1, 2))
    for i, (h, g) in enumerate(zip(host, graph)):
        # The case must exercise NMS: detections exist and some candidates above the bar were suppressed.
        assert 0 < len(h.scores) < min(above[i], NMS.pre_nms_top_k)
        # The same detections; values agree to the exporters' float noise (two different graphs of one network).
        np.testing.assert_array_equal(g.labels, h.labels)
        np.testing.assert_allclose(g.scores, h.scores, atol=1e-4, rtol=0)
        np.testing.assert_allclose(_normalised("boxes", g.boxes), _normalised("boxes", h.boxes), atol=1e-4, rtol=0)
    # Rescaling: image 1 was resized by (0.25, 0.5) = (y, x), so y doubles relative to x in original pixels.
    raw = postprocess_detections(boxes, scores, NMS)[1]
    np.testing.assert_allclose(host[1].boxes, raw.boxes / np.array([0.5, 0.25, 0.5, 0.25]), rtol=1e-6)
