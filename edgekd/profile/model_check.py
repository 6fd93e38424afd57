"""Check a model file here before it is sent to a device: it is a model, and an asked-for input shape fits it.

Without this, `deploy` and remote `profile` connect, copy and start the device's runner only to learn that the
file is not a model or that `--input-shape` has the wrong rank. Reading the graph's declared input needs `onnx`
(always installed) or the IR's XML; no runtime is opened here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Optional, Sequence

from edgekd.errors import EdgekdError
from edgekd.profile.remote_runner import RunnerError, resolve_shape


def check_model_file(path: Path, input_shape: Optional[Sequence[int]] = None) -> None:
    """EdgekdError unless `path` reads as a model whose single input takes `input_shape` (when given)."""
    declared = _declared_input(Path(path))
    if input_shape is None or declared is None:
        return
    try:
        resolve_shape(declared, list(input_shape))
    except RunnerError:
        shape = ",".join(map(str, input_shape))
        raise EdgekdError(f"--input-shape {shape} does not fit {path}, which takes {declared}") from None


def _declared_input(path: Path) -> Optional[list]:
    """The first graph input's dims (ints, or strings for symbolic sizes); None for a format not read here."""
    if path.suffix == ".onnx":
        return _onnx_input(path)
    if path.suffix == ".xml":
        return _ir_input(path)
    return None


def _onnx_input(path: Path) -> list:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, ValueError, ... for a file that is not a model
        raise EdgekdError(f"{path}: not an ONNX model ({type(error).__name__})") from None
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if not model.graph.node or not inputs:
        raise EdgekdError(f"{path}: not an ONNX model with a graph input")
    dims = inputs[0].type.tensor_type.shape.dim
    return [dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?") for dim in dims]


def _ir_input(path: Path) -> list:
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, UnicodeDecodeError) as error:
        raise EdgekdError(f"{path}: not an OpenVINO IR ({error})") from None
    parameter = root.find("./layers/layer[@type='Parameter']/data") if root.tag == "net" else None
    if parameter is None:
        raise EdgekdError(f"{path}: not an OpenVINO IR (no <net> with a Parameter layer)")
    return [int(part) if part.strip().isdigit() else part.strip()
            for part in parameter.get("shape", "").split(",") if part.strip()]
