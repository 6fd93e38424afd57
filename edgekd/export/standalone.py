"""Export any PyTorch model (a timm name, or your own module) to every backend asked for, with parity.

This is what `edgekd export timm:mobilenetv3_large_100` runs: no recipe, no task metric — parity is the
output difference against PyTorch on seeded random inputs (or your own inputs). int8 needs calibration
inputs (a .npy of network inputs): a model is never quantized on random data behind the user's back.

>>> from edgekd.export.standalone import export_model, build_model_spec
>>> model = build_model_spec("timm:resnet18")
>>> rows = export_model(model, (1, 3, 224, 224), "runs/export/resnet18", {"onnx": ["fp32"], "openvino": ["fp16"]})
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from edgekd.artifacts import atomic_write_json, load_checkpoint, sha256_file
from edgekd.errors import EdgekdError

DEFAULT_BUDGETS = {"fp32": 1e-3, "fp16": 2e-2, "int8": 1e-1}
PARITY_SEED = 0


@dataclass
class ExportRow:
    backend: str
    precision: str
    status: str  # passed | failed | bundle | refused
    path: Optional[str] = None
    size_bytes: Optional[int] = None
    sha256: Optional[str] = None
    max_abs_diff: Optional[float] = None
    budget: Optional[float] = None
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_model_spec(spec: str, weights: Optional[Path] = None) -> Any:
    """`timm:NAME` → the timm architecture (random weights, or `weights`: a local state_dict)."""
    kind, sep, name = spec.partition(":")
    if not sep or kind != "timm" or not name:
        raise EdgekdError(f"model '{spec}': give a recipe .yaml or timm:NAME (e.g. timm:mobilenetv3_large_100)")
    import timm

    if name not in timm.list_models():
        from edgekd.registry import closest

        hint = closest(name, timm.list_models())
        raise EdgekdError(f"unknown timm model '{name}'" + (f" (did you mean '{hint}'?)" if hint else ""))
    model = timm.create_model(name, pretrained=False)
    if weights is not None:
        if not Path(weights).is_file():
            raise EdgekdError(f"weights not found: {weights}")
        state = load_checkpoint(weights)  # weights_only=True: a checkpoint cannot run code
        try:
            model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        except RuntimeError as exc:
            raise EdgekdError(f"{weights} does not fit {name}: {str(exc).splitlines()[0]}") from exc
    return model.eval()


def export_model(
    model: Any,
    input_shape: Sequence[int],
    out_dir: str | Path,
    backends: dict[str, list[str]],
    *,
    calibration: Optional[np.ndarray] = None,
    parity_inputs: Optional[np.ndarray] = None,
    parity_samples: int = 8,
    budgets: Optional[dict[str, float]] = None,
    opset: int = 18,
    target_tensorrt: str = "10.3",
    progress=None,
) -> list[ExportRow]:
    """Write every (backend, precision) under `out_dir`, check each against PyTorch, return one row each."""
    import torch

    from edgekd.export import EXPORTERS

    out_dir = Path(out_dir)
    _check_request(backends, calibration)
    budgets = {**DEFAULT_BUDGETS, **(budgets or {})}
    inputs = parity_inputs if parity_inputs is not None else _random_inputs(input_shape, parity_samples)
    example = torch.zeros(tuple(input_shape))
    sources = {"float": model.eval()}
    if any("int8" in precisions for precisions in backends.values()):
        sources["int8"] = _quantized(model, calibration, input_shape[0])
    onnx_files: dict[str, Path] = {}
    rows = []
    for backend, precisions in backends.items():
        exporter = EXPORTERS.get(backend)
        for precision in precisions:
            if progress:
                progress(f"{backend} {precision}")
            rows.append(_one(exporter, sources, onnx_files, backend, precision, example, out_dir, inputs,
                             budgets[precision], opset, target_tensorrt))
    atomic_write_json(out_dir / "exports.json", [row.to_dict() for row in rows])
    return rows


def _check_request(backends: dict[str, list[str]], calibration) -> None:
    from edgekd.export import EXPORTERS

    if not backends:
        raise EdgekdError("nothing to export: give at least one --backend")
    for backend, precisions in backends.items():
        exporter = EXPORTERS.get(backend)  # unknown names fail here with a did-you-mean
        for precision in precisions:
            if precision not in exporter.precisions:
                reason = exporter.refused.get(precision, "not implemented by this backend")
                raise EdgekdError(f"{backend} cannot produce {precision}: {reason}")
            if precision == "int8" and calibration is None:
                raise EdgekdError("int8 needs calibration inputs: --calibration inputs.npy (N, C, H, W float32, "
                                  "normalised as the model expects); random data would give meaningless scales")


def _random_inputs(shape: Sequence[int], samples: int) -> np.ndarray:
    rng = np.random.default_rng(PARITY_SEED)
    return rng.standard_normal((samples, *tuple(shape)[1:])).astype(np.float32)


def _quantized(model, calibration: np.ndarray, batch: int) -> Any:
    import torch

    from edgekd.quant.nncf_quant import quantize_ptq

    data = np.ascontiguousarray(calibration, dtype=np.float32)
    step = max(1, batch)
    batches = [torch.from_numpy(data[i:i + step]) for i in range(0, len(data), step)]
    return quantize_ptq(model, batches)


def _one(exporter, sources, onnx_files, backend, precision, example, out_dir, inputs, budget, opset,
         target_tensorrt) -> ExportRow:
    from edgekd.export.parity import check_parity

    source = sources["int8" if precision == "int8" else "float"]
    onnx_path = _onnx_for(sources, onnx_files, precision, example, out_dir, opset)
    if backend == "tensorrt" and not exporter.is_available():
        return _bundle(onnx_path, out_dir, precision, example, target_tensorrt, exporter)
    if backend == "onnx":
        path = onnx_path
        result_extra, size, digest = {}, path.stat().st_size, sha256_file(path)
    else:
        target = out_dir / backend / f"model.{precision}{exporter.file_suffix}"
        result = exporter.export(source, example, target, precision=precision, opset=opset, source_onnx=onnx_path)
        path, result_extra, size, digest = result.path, result.extra, result.size_bytes, result.sha256
    if exporter.runtime not in ("onnxruntime", "openvino"):
        return ExportRow(backend, precision, "built", str(path), size, digest, reason="not runnable on this host")
    parity = check_parity(source, path, inputs, runtime=exporter.runtime, precision=precision,
                          max_abs_diff=budget, max_metric_delta=None)
    status = "passed" if parity.passed else "failed"
    return ExportRow(backend, precision, status, str(path), size, digest, parity.max_abs_diff, budget,
                     parity.failure_reason(), {k: v for k, v in result_extra.items() if k in ("openvino", "exporter")})


def _onnx_for(sources, onnx_files, precision, example, out_dir, opset) -> Path:
    """The fp32 or Q/DQ int8 ONNX every backend starts from (written once per kind)."""
    from edgekd.export import EXPORTERS

    kind = "int8" if precision == "int8" else "fp32"
    if kind not in onnx_files:
        path = out_dir / "onnx" / f"model.{kind}.onnx"
        EXPORTERS.get("onnx").export(sources["int8" if kind == "int8" else "float"], example, path,
                                     precision=kind, opset=opset)
        onnx_files[kind] = path
    return onnx_files[kind]


def _bundle(onnx_path, out_dir, precision, example, target_tensorrt, exporter) -> ExportRow:
    from edgekd.export.tensorrt import write_device_bundle

    bundle = write_device_bundle(onnx_path, out_dir / "tensorrt" / precision, precision=precision,
                                 input_name="input", input_shape=tuple(example.shape), target_tensorrt=target_tensorrt)
    errors = [f["message"] for f in bundle["lint"]["findings"] if f["severity"] == "error"]
    status = "failed" if errors else "bundle"
    reason = errors[0] if errors else f"build on the device: {bundle['command']}"
    return ExportRow("tensorrt", precision, status, str(out_dir / "tensorrt" / precision / bundle["script"]),
                     reason=reason, extra={"lint": bundle["lint"]["counts"], "missing": exporter.missing_reason()})
