"""Capture intermediate features by module path with forward hooks (no model surgery)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.registry import unknown_name_message


def resolve_module(model: nn.Module, path: str, role: str = "model") -> nn.Module:
    """`model.get_submodule(path)` with a did-you-mean listing the real module paths."""
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [name for name, _ in model.named_modules() if name]
        raise EdgekdError(unknown_name_message(f"{role} layer", path, names)) from None


class FeatureCapture:
    """Records the outputs of the named modules on every forward pass.

    >>> capture = FeatureCapture(model, ["stages.2", "stages.3"])
    >>> _ = model(x); capture.features["stages.2"].shape
    """

    def __init__(self, model: nn.Module, paths: Iterable[str], role: str = "model") -> None:
        self.features: dict[str, torch.Tensor] = {}
        self._handles = [
            resolve_module(model, path, role).register_forward_hook(self._recorder(path)) for path in dict.fromkeys(paths)
        ]

    def _recorder(self, path: str):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            self.features[path] = output

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
