"""Helpers shared by the gaze stages: where the data is, building/loading models, evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgekd.artifacts import atomic_torch_save, load_state_into
from edgekd.models import MODELS
from edgekd.pipeline import StageContext
from edgekd.tasks.gaze.dataset import PIXEL_MEAN, PIXEL_STD, GazeArrays, load_split
from edgekd.tasks.gaze.metrics import angular_error_deg

IN_CHANS = 1
NUM_OUTPUTS = 2  # yaw, pitch (radians)


def data_root(ctx: StageContext) -> Path:
    data = ctx.recipe.data
    return Path(data.root) if data.source == "folder" else ctx.stage_path("data")


def load_arrays(ctx: StageContext, split: str) -> GazeArrays:
    return load_split(data_root(ctx), split, image_size=ctx.recipe.data.image_size)


def build_model(arch: str) -> nn.Module:
    return MODELS.get(arch)(in_chans=IN_CHANS, num_outputs=NUM_OUTPUTS)


def save_weights(module: nn.Module, path: Path) -> None:
    atomic_torch_save(module.state_dict(), path)


def load_model(arch: str, path: Path) -> nn.Module:
    model = build_model(arch)
    load_state_into(model, path)
    return model.eval()


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) → float32 (N, 1, H, W), the same normalisation as training."""
    return ((images.astype(np.float32) / 255.0 - PIXEL_MEAN) / PIXEL_STD)[:, None]


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Gaze (yaw, pitch) in radians for uint8 images, in eval mode."""
    model.eval()
    outputs = [model(torch.from_numpy(normalise(images[i : i + batch_size]))).numpy() for i in range(0, len(images), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, NUM_OUTPUTS), np.float32)


def mean_error_deg(model: nn.Module, arrays: GazeArrays) -> float:
    predictions = predict(model, arrays.images)
    return float(angular_error_deg(predictions, np.deg2rad(arrays.gaze_deg)).mean())


def feature_channel_map(model: nn.Module) -> dict[str, Any]:
    """Channels at each stage output by module path, plus 'final' for forward_features."""
    from edgekd.models import feature_channels

    widths = feature_channels(model)
    return {**{f"stages.{i}": c for i, c in enumerate(widths)}, "final": widths[-1]}
