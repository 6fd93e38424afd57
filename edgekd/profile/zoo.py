"""ONNX graphs of the public models in the calibration table, rebuilt here with random weights.

Architectures come from torchvision (a timm dependency) and, for YOLO, from ultralytics' model YAML when the
optional `edgekd[yolo]` extra is installed. Without it, a YOLO row uses the node summary committed in
`devices/calibration_models/` (written from the real ultralytics graph by `edgekd predict --refit`), or is
skipped with that reason. Node lists are cached under the cache dir, never in the repository.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, Optional

from edgekd.profile.graph import Node, graph_nodes

CACHE_VERSION = 1
# calibration-table name -> (library, constructor or model YAML)
MODELS = {
    "MobileNetV2": ("torchvision", "mobilenet_v2"),
    "MobileNetV3-Large": ("torchvision", "mobilenet_v3_large"),
    "MobileNetV3-Small": ("torchvision", "mobilenet_v3_small"),
    "ResNet-18": ("torchvision", "resnet18"),
    "ResNet-50": ("torchvision", "resnet50"),
    "EfficientNet-B0": ("torchvision", "efficientnet_b0"),
    "YOLO11n": ("ultralytics", "yolo11n.yaml"),
    "YOLOv8n": ("ultralytics", "yolov8n.yaml"),
}


class ModelUnavailable(Exception):
    """The graph cannot be rebuilt here; the message is the reason logged for the skipped rows."""


def cache_dir() -> Path:
    root = os.environ.get("EDGEKD_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgekd"
    return Path(root) / "predict"


def summary_path(name: str, input_size: int, devices: Path) -> Path:
    return devices / "calibration_models" / f"{_slug(name)}-{input_size}.nodes.json"


def model_nodes(name: str, input_size: int, devices: Path) -> list[Node]:
    """Nodes of calibration model `name` at a square `input_size`, from the cache, a build, or a committed summary."""
    if name.endswith(".onnx"):
        return graph_nodes(name)
    if name not in MODELS:
        raise ModelUnavailable(f"no timm/torchvision/ultralytics architecture for '{name}'")
    cached = cache_dir() / f"{_slug(name)}-{input_size}.nodes.json"
    nodes = _read_nodes(cached)
    if nodes is None:
        nodes = _build_or_summary(name, input_size, devices)
        _write_nodes(cached, nodes, name)
    return nodes


def _build_or_summary(name: str, input_size: int, devices: Path) -> list[Node]:
    library, key = MODELS[name]
    try:
        return graph_nodes(_export(_torch_model(library, key), input_size))
    except ModuleNotFoundError as missing:
        summary = _read_nodes(summary_path(name, input_size, devices))
        if summary is None:
            raise ModelUnavailable(f"{name} needs {missing.name} (pip install 'edgekd[yolo]') and no summary is committed")
        return summary


def save_summary(name: str, input_size: int, devices: Path) -> Optional[Path]:
    """Commit-able node summary of an ultralytics model (so the fit works without the extra); None without it."""
    try:
        nodes = graph_nodes(_export(_torch_model(*MODELS[name]), input_size))
    except ModuleNotFoundError:
        return None
    path = summary_path(name, input_size, devices)
    _write_nodes(path, nodes, name)
    return path


def _torch_model(library: str, key: str) -> Any:
    if library == "torchvision":
        import torchvision

        return getattr(torchvision.models, key)(weights=None)
    from ultralytics.nn.tasks import DetectionModel  # optional AGPL extra, imported only here

    return DetectionModel(key, verbose=False).fuse(verbose=False)


def _export(model: Any, input_size: int) -> Any:
    """In-memory ONNX (TorchScript exporter, opset 17, eval mode: BatchNorm folded into Conv)."""
    import onnx
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), torch.zeros(1, 3, input_size, input_size), buffer, opset_version=17,
                          dynamo=False, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def _read_nodes(path: Path) -> Optional[list[Node]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("version") != CACHE_VERSION:
        return None
    return [Node(**item) for item in data["nodes"]]


def _write_nodes(path: Path, nodes: list[Node], name: str) -> None:
    from edgekd.artifacts import atomic_write_json, package_versions

    atomic_write_json(path, {"version": CACHE_VERSION, "model": name, "built_with": package_versions(),
                             "nodes": [n.to_dict() for n in nodes]})


def _slug(name: str) -> str:
    return name.lower().replace(" ", "-")
