"""One export orchestration for a recipe's export stage and for `edgekd export timm:NAME`: each (model, backend,
precision) file is written by its backend, checked against PyTorch, and described by one `ExportRow`.

A `Source` is a PyTorch model an artifact is made from: float, or quantized (variant `qat` / `ptq`). Every file
starts from the source's ONNX: the fp32 graph for float sources; for int8 the placement the backend's runtime
fuses into int8 kernels (edgekd.export.int8_graph: ONNX Runtime's own for the onnx backend, TensorRT's explicit
placement for OpenVINO and TensorRT). A backend that cannot run here gets its on-device bundle (TensorRT: the
ONNX, the lint and the trtexec command) or is recorded as built; one that runs here gets its parity check.

The report consumes the rows as they are (`ExportRow.to_dict()` is what artifacts.json and exports.json hold).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from edgekd.errors import EdgekdError

ONNX_DIR = "onnx"
# Row fields of `ExportResult.extra` worth keeping in the record (the rest is exporter detail).
KEPT_EXTRA = ("exporter", "opset", "openvino", "fingerprint", "kernels", "quantized_by_qat", "int8",
              "simplify_failed")


@dataclass
class Source:
    """A PyTorch model files are made from: `variant` float, or qat / ptq (quantized)."""

    role: str
    variant: str
    module: Any
    input_shape: tuple[int, ...]
    input_names: tuple[str, ...] = ("input",)
    output_names: tuple[str, ...] = ("output",)
    calibration: Any = None  # int8: inputs ONNX Runtime's placement calibrates the tensors QAT left unquantized on
    name: Optional[str] = None  # file name stem; default: the role (float, QAT) or role-variant (PTQ baseline)
    onnx: dict[str, Any] = field(default_factory=dict)  # ExportResult by placement, once written

    @property
    def int8(self) -> bool:
        return self.variant in ("qat", "ptq")

    @property
    def stem(self) -> str:
        """File name stem: the role for float and QAT models (what ships), role-variant for the PTQ baseline."""
        if self.name:
            return self.name
        return self.role if self.variant in ("float", "qat") else f"{self.role}-{self.variant}"


@dataclass
class ParitySpec:
    """What a file is checked on: inputs, the task metric (optional) and the budget per precision."""

    inputs: Any
    budgets: dict[str, Any]  # precision -> a ParityBudget (max_abs_diff, max_metric_delta, error_stat)
    targets: Any = None
    metric_fn: Optional[Callable[[Any, Any], float]] = None
    agreement: bool = False  # measure top-1/top-5 agreement of classifier-shaped outputs


TENSORRT_VERSION_PATTERN = r"^\d+\.\d+(\.\d+)*$"  # '10.3', '8.6.2': what the TensorRT lint compares against


@dataclass
class ExportSettings:
    """How files are written; checked on construction, so a bad option fails before anything is exported."""

    opset: int = 18
    simplify: bool = True
    tensorrt_target: str = "10.3"
    tensorrt_workspace_mb: int = 1024
    tensorrt_dla_core: Optional[int] = None

    def __post_init__(self) -> None:
        import re

        from edgekd.export.backends.onnx import check_opset

        check_opset(self.opset)
        if not re.fullmatch(TENSORRT_VERSION_PATTERN, self.tensorrt_target):
            raise EdgekdError(f"--tensorrt-target {self.tensorrt_target!r}: expected a TensorRT version like 10.3")


@dataclass
class ExportRow:
    """One exported file: what it is, where, whether it passed its checks and why not."""

    role: str
    variant: str
    backend: str
    runtime: str
    precision: str
    status: str  # passed | failed | bundle | built | skipped
    reason: str = ""
    path: Optional[str] = None
    sha256: Optional[str] = None
    size_bytes: Optional[int] = None
    parity: Optional[dict[str, Any]] = None
    gated: bool = True  # a failed gated row fails the export; the PTQ baseline is reported, not gated
    extra: dict[str, Any] = field(default_factory=dict)
    metric_runtime: Optional[float] = None
    metric_delta_vs_float: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_one(source: Source, backend_name: str, precision: str, out_dir: Path, parity: ParitySpec,
               settings: ExportSettings, *, gated: bool = True) -> ExportRow:
    """Write `source` as `backend_name` `precision` under `out_dir` and check it; one row."""
    from edgekd.export import BACKENDS

    backend = BACKENDS.get(backend_name)
    if not backend.is_available():
        return _device_bundle(source, backend, precision, out_dir, settings)
    onnx_file = source_onnx(source, out_dir, settings, backend.int8_placement)
    if backend.name == "onnx":
        result = onnx_file
    else:
        path = out_dir / backend.name / f"{source.stem}.{precision}{backend.file_suffix}"
        own_calibration = {"calibration": source.calibration} if backend.calibrates_int8 and source.int8 else {}
        try:
            result = backend.export(source.module, _example(source), path, precision=precision,
                                    opset=settings.opset, source_onnx=onnx_file.path, input_names=source.input_names,
                                    output_names=source.output_names, **own_calibration)
        except EdgekdError as error:  # one runtime that cannot take the model fails its row, not the others'
            return ExportRow(source.role, source.variant, backend.name, backend.runtime, precision, "failed",
                             str(error), gated=gated)
    row = _row(source, backend, precision, result, gated=gated)
    if not backend.runs_here():
        row.status, row.gated = "built", False
        return row
    try:
        _check(row, source, backend, result.path, parity)
    except EdgekdError as error:  # the runtime cannot load or run its own file: the file fails its check
        row.status, row.reason = "failed", str(error)
        return row
    _check_default_execution(row, source, backend, result.path, parity)
    _gate_int8_kernels(row)
    return row


def source_onnx(source: Source, out_dir: Path, settings: ExportSettings, placement: str = "onnxruntime") -> Any:
    """The source's ONNX, written once and reused by the other backends: `<stem>.onnx` for a float model;
    `<stem>.int8.onnx` (ONNX Runtime's placement) or `<stem>.int8.explicit.onnx` for a quantized one."""
    from edgekd.export import BACKENDS

    key = placement if source.int8 else "float"
    if key not in source.onnx:
        if not source.int8:
            name, options = f"{source.stem}.onnx", {}
        elif placement == "explicit":
            name, options = f"{source.stem}.int8.explicit.onnx", {"int8_placement": "explicit"}
        else:
            name, options = f"{source.stem}.int8.onnx", {"calibration": source.calibration}
        source.onnx[key] = BACKENDS.get("onnx").export(
            source.module, _example(source), out_dir / ONNX_DIR / name, precision="int8" if source.int8 else "fp32",
            opset=settings.opset, input_names=source.input_names, output_names=source.output_names,
            simplify=settings.simplify, **options,
        )
    return source.onnx[key]


def skipped(source: Source, backend_name: str, precision: str, reason: str) -> ExportRow:
    from edgekd.export import BACKENDS

    return ExportRow(source.role, source.variant, backend_name, BACKENDS.get(backend_name).runtime, precision,
                     "skipped", reason, gated=False)


def _example(source: Source) -> Any:
    import torch

    return torch.zeros(source.input_shape)


def _row(source: Source, backend: Any, precision: str, result: Any, *, gated: bool) -> ExportRow:
    return ExportRow(source.role, source.variant, backend.name, backend.runtime, precision, "passed",
                     path=str(result.path), sha256=result.sha256, size_bytes=result.size_bytes, gated=gated,
                     extra={k: v for k, v in result.extra.items() if k in KEPT_EXTRA})


def _parity(source: Source, backend: Any, path: Path, precision: str, spec: ParitySpec, arithmetic: str = "timed"):
    from edgekd.export.parity import check_parity

    budget = spec.budgets[precision]
    return check_parity(source.module, path, spec.inputs, runtime=backend.runtime, precision=precision,
                        targets=spec.targets, metric_fn=spec.metric_fn, max_abs_diff=budget.max_abs_diff,
                        max_metric_delta=budget.max_metric_delta, error_stat=budget.error_stat,
                        min_snr_db=budget.min_snr_db, max_rel_l2=budget.max_rel_l2, min_cosine=budget.min_cosine,
                        min_top1_agreement=budget.min_top1_agreement, agreement=spec.agreement, arithmetic=arithmetic)


def _check(row: ExportRow, source: Source, backend: Any, path: Path, spec: ParitySpec) -> None:
    parity = _parity(source, backend, path, row.precision, spec)
    row.parity = parity.to_dict()
    row.metric_runtime = parity.metric_runtime
    row.status = "passed" if parity.passed else "failed"
    row.reason = parity.failure_reason()


def _check_default_execution(row: ExportRow, source: Source, backend: Any, path: Path, spec: ParitySpec) -> None:
    """Where the runtime's own default arithmetic differs from the checked one (OpenVINO on an AMX CPU computes
    an fp32 IR in bf16 unless told f32; on ARM in f16), check that execution too: a user who loads the file with
    the runtime's defaults gets it. Recorded in `extra['default_execution']` and noted by the report; not gated,
    since the shipped settings (docs/export.md) pin the checked execution."""
    from edgekd.profile.sessions import open_session

    timed = (row.parity or {}).get("execution") or {}
    if timed.get("inference_precision") in (None, "as stored"):  # a runtime without an arithmetic hint
        return
    default = open_session(path, backend.runtime, threads=1, precision=row.precision, arithmetic="default").settings()
    if default.get("inference_precision") == timed.get("inference_precision"):
        return
    parity = _parity(source, backend, path, row.precision, spec, arithmetic="default")
    row.extra["default_execution"] = {
        "inference_precision": default.get("inference_precision"), "passed": parity.passed,
        "reason": parity.failure_reason(), "snr_db": parity.to_dict()["snr_db"],  # "inf" for identical outputs
        "top1_agreement": parity.top1_agreement, "metric_runtime": parity.metric_runtime,
    }


def _gate_int8_kernels(row: ExportRow) -> None:
    """An ONNX Runtime int8 file in which an operation QAT quantized still runs in float fails."""
    from edgekd.export.int8_graph import unfused_reason

    if row.extra.get("int8", {}).get("placement") != "onnxruntime" or "kernels" not in row.extra:
        return
    reason = unfused_reason(row.extra["kernels"], row.extra["quantized_by_qat"])
    if reason and row.status == "passed":
        row.status, row.reason = "failed", reason


def _device_bundle(source: Source, backend: Any, precision: str, out_dir: Path, settings: ExportSettings) -> ExportRow:
    """A backend that cannot build here (TensorRT without a GPU): the device bundle it writes instead, with its
    lint; a lint error fails the row. A backend with no bundle route raises what it needs (pip extra)."""
    onnx_path = source_onnx(source, out_dir, settings, backend.int8_placement).path
    folder = out_dir / backend.name / precision
    bundle = backend.device_bundle(onnx_path, folder, precision=precision, input_name=source.input_names[0],
                                   input_shape=source.input_shape, settings=settings)
    if bundle is None:  # nothing to build here or on the device: what the backend needs, as a bad-environment error
        raise EdgekdError(backend.missing_reason())
    errors = bundle["errors"]
    return ExportRow(
        source.role, source.variant, backend.name, backend.runtime, precision, "failed" if errors else "bundle",
        errors[0] if errors else bundle["note"], path=str(bundle["path"]), sha256=bundle["sha256"],
        size_bytes=bundle["size_bytes"], gated=bool(errors), extra=bundle["extra"],
    )


def rows_failed(rows: Sequence[ExportRow]) -> list[str]:
    """One line per gated row that failed."""
    return [f"{r.role} {r.backend} {r.precision} ({r.variant}): {r.reason}" for r in rows
            if r.status == "failed" and r.gated]
