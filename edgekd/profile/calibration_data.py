"""Rows of a latency table mapped to edgekd names: device id, runtime, unit, precision, threads, model.

Two readers: the published table (`device_latency_calibration.csv`, free-text columns mapped by the rules of
device_reference.md §5) and a user's own measurements (`--calibrate`, fixed columns, see docs/predict.md).
A row that cannot be mapped is kept with a `skip` reason, so every unused row is listed, never dropped silently.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from edgekd.errors import EdgekdError
from edgekd.paths import read_text

DEVICE_NAMES = {
    "Raspberry Pi 4": "rpi4",
    "Raspberry Pi 5": "rpi5",
    "Jetson Nano": "jetson-nano",
    "Jetson Xavier NX": "jetson-xavier-nx",
    "Jetson Orin Nano 8GB (Super)": "jetson-orin-nano-super",
    "Jetson Orin Nano (variant not stated)": "jetson-orin-nano",  # INFERRED (reference §5)
    "Jetson AGX Orin (RAM not stated)": "jetson-agx-orin",  # INFERRED: 12 cores at 2.2 GHz implies 64 GB
    "Jetson AGX Orin 64GB": "jetson-agx-orin",
}
# (substring of the runtime column, edgekd runtime); TorchScript -> pytorch, XNNPACK -> tflite (reference §5)
RUNTIME_WORDS = (("tensorrt", "tensorrt"), ("onnx runtime", "onnxruntime"), ("openvino", "openvino"),
                 ("tf lite", "tflite"), ("xnnpack", "tflite"), ("ncnn", "ncnn"), ("torchscript", "pytorch"),
                 ("pytorch", "pytorch"))
USER_COLUMNS = ("model", "runtime", "precision", "latency_ms")


@dataclass(frozen=True)
class CalRow:
    id: str
    device: Optional[str]
    model: str  # base architecture: "ResNet-50 INT8" counts as ResNet-50 (leave-one-model-out groups)
    input_size: int
    runtime: Optional[str]
    unit: Optional[str]  # None: the runtime's default unit on the device
    precision: Optional[str]
    threads: Optional[int]  # None: all cores of the device
    latency_ms: float
    source: str
    skip: Optional[str] = None


def read_published(path: str | Path) -> list[CalRow]:
    """The published calibration table, one CalRow per line (unusable lines carry `skip`)."""
    lines = io.StringIO(read_text(path, "calibration table"), newline="")
    return [_published(line) for line in csv.DictReader(lines)]


def _published(line: dict[str, str]) -> CalRow:
    runtime = next((rt for word, rt in RUNTIME_WORDS if word in line["runtime"].lower()), None)
    row = CalRow(
        id=line["id"], device=DEVICE_NAMES.get(line["device"]), model=base_model(line["model"]),
        input_size=_input_size(line["input"]), runtime=runtime, unit=_unit(line), precision=_precision(line["precision"]),
        threads=_threads(line["threads"]), latency_ms=float(line["latency_ms"]), source=line["source_url"],
    )
    return replace(row, skip=_skip_reason(row, line))


def _skip_reason(row: CalRow, line: dict[str, str]) -> Optional[str]:
    if row.device is None:
        return f"device '{line['device']}' matches no edgekd device"
    if row.runtime is None:
        return f"runtime '{line['runtime']}' has no edgekd runtime"
    if row.precision is None:
        return f"precision not stated ('{line['precision']}')"
    return None


def base_model(name: str) -> str:
    """'ResNet-50 INT8' -> 'ResNet-50'; "MobileNetV3-Large (ncnn 'mobilenet_v3')" -> 'MobileNetV3-Large'."""
    name = re.sub(r"\s*\(.*\)\s*$", "", name)
    return re.sub(r"\s+INT8$", "", name, flags=re.IGNORECASE).strip()


def _input_size(text: str) -> int:
    match = re.match(r"\s*(\d+)x\d+", text)
    return int(match.group(1)) if match else 224  # XNNPACK's "1.0X reference MobileNets" are 224 (INFERRED)


def _unit(line: dict[str, str]) -> Optional[str]:
    text = f"{line['runtime']} {line['device_config']}".lower()
    if "vulkan" in text or "cuda" in text or "-gpu" in text or "tensorrt" in text:
        return "gpu"
    return "cpu" if "cpu" in text else None


def _precision(text: str) -> Optional[str]:
    text = text.lower()
    if "not stated" in text:
        return None
    if text.startswith("fp32") or "presumably fp32" in text:  # "FP32 export; ncnn fp16-arith" asks for fp32
        return "fp32"
    if "int8" in text:
        return "int8"
    return "fp16" if ("fp16" in text or "float16" in text) else None


def _threads(text: str) -> Optional[int]:
    match = re.match(r"\s*(\d+)\s*$", text)  # "4 (host)" is a GPU row's host threads: not CPU compute
    return int(match.group(1)) if match else None  # "default", "multi-threaded", "n/a": all cores


def read_measurements(path: str | Path, device: str) -> list[CalRow]:
    """A user's CSV: model (ONNX path, relative to the CSV, or a calibration model name), runtime, precision,
    latency_ms; optional threads, unit, input_size."""
    path = Path(path)
    if not path.is_file():
        raise EdgekdError(f"measurements file not found: {path}")
    reader = csv.DictReader(io.StringIO(read_text(path, "measurements file"), newline=""))
    missing = [c for c in USER_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise EdgekdError(f"{path}: missing column(s) {missing}; need {list(USER_COLUMNS)}")
    return [_measured(line, number, path, device) for number, line in enumerate(reader, start=2)]


def _measured(line: dict[str, str], number: int, path: Path, device: str) -> CalRow:
    model = line["model"].strip()
    if model.endswith(".onnx") and not Path(model).is_absolute():
        model = str((path.parent / model).resolve())
    try:
        return CalRow(
            id=f"{path.name}:{number}", device=device, model=model, input_size=int(line.get("input_size") or 224),
            runtime=line["runtime"].strip(), unit=(line.get("unit") or "").strip() or None,
            precision=line["precision"].strip(), threads=int(line["threads"]) if line.get("threads") else None,
            latency_ms=float(line["latency_ms"]), source=str(path),
        )
    except ValueError as error:
        raise EdgekdError(f"{path}:{number}: {error}") from None
