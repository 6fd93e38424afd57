"""The report schema (versioned): what a run measured, in a form `edgekd check` can compare later.

Bump SCHEMA_VERSION on any change that an older reader would misread; `load_report` refuses
versions it does not know instead of guessing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgekd.errors import EdgekdError
from edgekd.paths import read_text
from edgekd.profile.local import ProfileResult

SCHEMA_VERSION = 4
# Older reports still load: the sections added since (v2: deployments/quantization, v3: predictions, v4: model
# outcomes) default to empty.
READABLE_VERSIONS = (1, 2, 3, 4)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricSpec(_Strict):
    name: str
    unit: str
    lower_is_better: bool


class Outcome(_Strict):
    """A measured result that is not the task metric, with its own unit and direction (closed-loop success
    rate, final error in pixels, ...)."""

    value: float
    unit: str = ""
    lower_is_better: bool


class ModelEntry(_Strict):
    role: str
    arch: str
    parameters: int
    trainable_parameters: int
    macs: int
    file_size_bytes: int
    # Variants of the task metric, e.g. {"general": 2.1, "personalized": 1.6}.
    metrics: dict[str, float] = Field(default_factory=dict)
    outcomes: dict[str, Outcome] = Field(default_factory=dict)
    # Keyed by runtime ("onnxruntime", "openvino", ...).
    latency: dict[str, ProfileResult] = Field(default_factory=dict)


class ParityEntry(_Strict):
    role: str
    backend: str
    precision: str
    max_abs_diff: float
    max_rel_diff: float
    metric_torch: float | None = None
    metric_runtime: float | None = None
    metric_delta: float | None = None
    error_stat: str = "max"  # the statistic of |Δ| the budget gated; the table shows it beside the maximum
    abs_diff_stat: float | None = None
    passed: bool


class DeploymentEntry(_Strict):
    """One exported file: a (role, backend, precision) and the model variant it came from."""

    role: str
    variant: str  # float | qat | ptq
    backend: str
    runtime: str
    precision: str
    status: str  # passed | failed | bundle | built | skipped
    reason: str = ""
    path: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    metric: float | None = None
    metric_delta_vs_float: float | None = None
    max_abs_diff: float | None = None
    latency: ProfileResult | None = None
    speedup_vs_fp32: float | None = None  # p50 of the same role's fp32 file on this runtime / this p50
    # int8 ONNX files: convs and matrix products ONNX Runtime runs as int8 kernels, as float, and how many of
    # each QAT quantized (edgekd.export.int8_graph.int8_kernel_counts)
    int8_kernels: dict[str, int] | None = None
    # The arithmetic the file was checked and timed in (OpenVINO's inference precision, "as stored" for ONNX Runtime)
    inference_precision: str | None = None


class Prediction(_Strict):
    """Predicted latency of one exported ONNX file on a device (edgekd.profile.predict): never measured.

    `metric` is the source file's task metric as measured on this host: the accuracy is measured, the
    latency predicted. `fit_error` / `lomo_error` are the calibration group's errors on published
    measurements (in-sample, and leave-one-model-out), e.g. {"median_abs_pct": 12.0, "n": 5, ...}.
    """

    mode: Literal["predicted"] = "predicted"
    role: str
    variant: str  # float | qat
    source: str  # the ONNX file, relative to the run folder
    precision: str  # the precision asked of the runtime
    compute_precision: str  # what the runtime computes in on that device (ncnn fp32 runs fp16 on an A76)
    device: str
    runtime: str
    unit: str
    threads: int | None = None
    latency_ms: float
    metric: float | None = None
    calibrated: bool
    calibration_group: str
    calibration_models: list[str] = Field(default_factory=list)
    fit_error: dict[str, float | int] | None = None
    lomo_error: dict[str, float | int] | None = None


class DeployChoice(_Strict):
    precision: str | None
    reason: str


class Report(_Strict):
    schema_version: int = SCHEMA_VERSION
    recipe: str
    task: str
    created: str
    edgekd_version: str
    config_hash: str
    metric: MetricSpec
    models: list[ModelEntry] = Field(default_factory=list)
    parity: list[ParityEntry] = Field(default_factory=list)
    ratios: dict[str, float] = Field(default_factory=dict)
    deployments: list[DeploymentEntry] = Field(default_factory=list)
    deploy: dict[str, DeployChoice] = Field(default_factory=dict)
    predictions: list[Prediction] = Field(default_factory=list)
    quantization: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    def model(self, role: str) -> ModelEntry | None:
        return next((m for m in self.models if m.role == role), None)


def load_report(path: str | Path) -> Report:
    """Read and validate a report.json; any problem is an EdgekdError with a one-line message."""
    path = Path(path)
    data = _read_json(path)
    version = data.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise EdgekdError(f"{path}: report schema_version {version!r} is not supported (this edgekd reads {', '.join(map(str, READABLE_VERSIONS))})")
    try:
        return Report.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise EdgekdError(f"{path}: invalid report at '{where}': {first['msg']}") from exc


def _read_json(path: Path) -> dict[str, Any]:
    text = read_text(path, "report")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EdgekdError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(data, dict):
        raise EdgekdError(f"{path}: a report is a JSON object, found {type(data).__name__}")
    return data
