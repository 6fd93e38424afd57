"""The export stage every task shares: each (role, backend, precision) file, with its parity check.

One fp32 ONNX per role is the source of everything else: OpenVINO IR is converted from it (fp32, fp16),
the int8 files come from the QAT model's Q/DQ ONNX, and TensorRT gets an on-device bundle built from the
matching ONNX (or an engine, where TensorRT and a GPU are here). The PTQ model is exported too, as the
baseline that shows what QAT buys; it is measured, not gated.

Parity references: fp32/fp16 files against the float PyTorch model; int8 files against the fake-quantized
PyTorch model (same arithmetic up to rounding), and additionally their metric against the float model
(the number users care about: what int8 costs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from rich.markup import escape

from edgekd.artifacts import atomic_write_json
from edgekd.errors import CheckFailed
from edgekd.pipeline import StageContext

ONNX_DIR = "onnx"
ARTIFACTS_FILE = "artifacts.json"
STUDENT = "student"
LOCAL_RUNTIMES = {"onnx": "onnxruntime", "openvino": "openvino"}


@dataclass
class Source:
    """A PyTorch model an artifact is made from: float, or quantized (variant 'qat' / 'ptq')."""

    role: str
    variant: str
    module: Any
    deploy: Any  # DeployModel: names and shapes
    onnx: Any = None  # its ExportResult once written: the other backends convert from it

    @property
    def int8(self) -> bool:
        return self.variant in ("qat", "ptq")


def run_export(task, ctx: StageContext) -> dict[str, Any]:
    from edgekd.models import count_macs, count_parameters, deploy_copy

    cfg = ctx.recipe.export
    rows: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    float_metric: dict[str, float] = {}
    for deploy in task.deploy_models(ctx):
        inputs, targets = task.role_eval_arrays(ctx, deploy.role, cfg.eval_samples)
        source = Source(deploy.role, "float", deploy_copy(deploy.module).eval(), deploy)
        fp32 = _export_onnx(ctx, source)
        row = _checked(task, ctx, source, "onnx", "fp32", fp32, inputs, targets, reference=deploy.module)
        float_metric[deploy.role] = row["parity"]["metric_torch"]
        rows.append(row)
        models[deploy.role] = {
            "arch": deploy.arch, "parameters": count_parameters(deploy.module),
            "trainable_parameters": deploy.trainable_parameters, "macs": count_macs(deploy.module, deploy.input_shape),
            "input_shape": list(deploy.input_shape), "export": fp32.to_dict(), "parity": row["parity"],
        }
        rows += _other_backends(task, ctx, source, fp32.path, inputs, targets)
    for row in rows:
        _add_float_delta(row, float_metric)
        _gate_int8(row, ctx.recipe.quant.max_metric_delta, task.metric.lower_is_better)
        row["path"] = _relative(row["path"], ctx.run_dir)
    atomic_write_json(ctx.stage_dir / ONNX_DIR / "models.json", models)
    atomic_write_json(ctx.stage_dir / ARTIFACTS_FILE, rows)
    _print_rows(ctx, task, rows)
    failures = [f"{r['role']} {r['backend']} {r['precision']} ({r['variant']}): {r['reason']}"
                for r in rows if r["status"] == "failed" and r["gated"]]
    if failures:
        raise CheckFailed("export out of budget — " + "; ".join(failures))
    return {"artifacts": len(rows), "failed": sum(r["status"] == "failed" for r in rows)}


def _other_backends(task, ctx, float_source: Source, fp32_onnx: Path, inputs, targets) -> list[dict[str, Any]]:
    cfg = ctx.recipe.export
    is_student = float_source.role == STUDENT
    rows = []
    quantized = _quantized_sources(task, ctx, float_source) if is_student else {}
    for backend, precisions in cfg.backends.items():
        for precision in precisions:
            if not is_student and (precision != "fp32" or backend == "tensorrt"):
                continue  # the teacher is exported for the side-by-side numbers only
            if backend == "onnx" and precision == "fp32":
                continue  # done first: it is the source of the others
            if precision == "int8":
                for variant, source in quantized.items():
                    rows.append(_one(task, ctx, source, backend, precision, fp32_onnx, inputs, targets))
                if not quantized:
                    rows.append(_skipped(float_source, backend, precision, "quantization is off (quant.enabled)"))
            else:
                rows.append(_one(task, ctx, float_source, backend, precision, fp32_onnx, inputs, targets))
    return rows


def _quantized_sources(task, ctx, float_source: Source) -> dict[str, Source]:
    from edgekd.quant.nncf_quant import load_quantized
    from edgekd.quant.stage import PTQ_FILE, QAT_FILE

    if not ctx.recipe.quant.enabled:
        return {}
    qat_dir = ctx.stage_path("qat")
    return {
        variant: Source(float_source.role, variant, load_quantized(float_source.module, qat_dir / name),
                        float_source.deploy)
        for variant, name in (("qat", QAT_FILE), ("ptq", PTQ_FILE))
    }


def _one(task, ctx, source: Source, backend: str, precision: str, fp32_onnx: Path, inputs, targets) -> dict[str, Any]:
    from edgekd.export import EXPORTERS

    exporter = EXPORTERS.get(backend)
    if backend == "tensorrt" and not exporter.is_available():
        return _tensorrt_bundle(ctx, source, precision, fp32_onnx)
    onnx_path = _export_onnx(ctx, source).path if source.int8 else fp32_onnx
    if backend == "onnx":
        result = _export_onnx(ctx, source)
    else:
        path = ctx.stage_dir / backend / f"{_stem(source)}.{precision}{exporter.file_suffix}"
        result = exporter.export(source.module, torch.zeros(source.deploy.input_shape), path, precision=precision,
                                 source_onnx=onnx_path, input_names=source.deploy.input_names,
                                 output_names=source.deploy.output_names)
    if backend not in LOCAL_RUNTIMES:
        return _row(source, backend, exporter.runtime, precision, result, None, "built", "", gated=False)
    return _checked(task, ctx, source, backend, precision, result, inputs, targets, reference=source.module)


def _export_onnx(ctx, source: Source):
    """The role's ONNX for this variant (written once, reused by the other backends)."""
    from edgekd.export import EXPORTERS

    cfg = ctx.recipe.export
    precision = "int8" if source.int8 else "fp32"
    path = ctx.stage_dir / ONNX_DIR / (f"{source.role}.onnx" if not source.int8 else f"{_stem(source)}.int8.onnx")
    if source.onnx is None:
        source.onnx = EXPORTERS.get("onnx").export(
            source.module, torch.zeros(source.deploy.input_shape), path, precision=precision, opset=cfg.opset,
            input_names=source.deploy.input_names, output_names=source.deploy.output_names, simplify=cfg.simplify,
        )
    return source.onnx


def _stem(source: Source) -> str:
    return source.role if source.variant in ("float", "qat") else f"{source.role}-{source.variant}"


def _checked(task, ctx, source: Source, backend: str, precision: str, result, inputs, targets, *, reference) -> dict:
    from edgekd.export.parity import check_parity

    cfg = ctx.recipe.export
    budget = {"fp32": cfg.parity, "fp16": cfg.parity_fp16, "int8": cfg.parity_int8}[precision]
    runtime = LOCAL_RUNTIMES[backend]
    parity = check_parity(reference, result.path, inputs, runtime=runtime, precision=precision, targets=targets,
                          metric_fn=task.role_score(source.role), max_abs_diff=budget.max_abs_diff,
                          max_metric_delta=budget.max_metric_delta, error_stat=budget.error_stat)
    status = "passed" if parity.passed else "failed"
    gated = source.variant != "ptq"  # the PTQ baseline is reported, not gated
    return _row(source, backend, runtime, precision, result, parity.to_dict(), status, parity.failure_reason(), gated)


def _tensorrt_bundle(ctx, source: Source, precision: str, fp32_onnx: Path) -> dict[str, Any]:
    from edgekd.export import EXPORTERS
    from edgekd.export.tensorrt import write_device_bundle

    if source.variant == "ptq":
        return _skipped(source, "tensorrt", precision, "PTQ baseline: bundled for the QAT model only")
    cfg = ctx.recipe.export
    onnx_path = _export_onnx(ctx, source).path if source.int8 else fp32_onnx
    out_dir = ctx.stage_dir / "tensorrt" / precision
    bundle = write_device_bundle(
        onnx_path, out_dir, precision=precision, input_name=source.deploy.input_names[0],
        input_shape=source.deploy.input_shape, target_tensorrt=cfg.tensorrt_target,
        workspace_mb=cfg.tensorrt_workspace_mb, dla_core=cfg.tensorrt_dla_core,
    )
    lint = bundle["lint"]
    reason = EXPORTERS.get("tensorrt").missing_reason()
    errors = [f["message"] for f in lint["findings"] if f["severity"] == "error"]
    row = {
        "role": source.role, "variant": source.variant, "backend": "tensorrt", "runtime": "tensorrt",
        "precision": precision, "path": str(out_dir / bundle["script"]), "sha256": bundle["onnx_sha256"],
        "size_bytes": (out_dir / bundle["onnx"]).stat().st_size, "parity": None,
        "status": "failed" if errors else "bundle",
        "reason": errors[0] if errors else f"engine to be built on the device ({reason})",
        "gated": bool(errors), "extra": {"command": bundle["command"], "lint": lint},
    }
    return row


def _row(source: Source, backend, runtime, precision, result, parity, status, reason, gated=True) -> dict[str, Any]:
    return {
        "role": source.role, "variant": source.variant, "backend": backend, "runtime": runtime,
        "precision": precision, "path": str(result.path), "sha256": result.sha256, "size_bytes": result.size_bytes,
        "parity": parity, "status": status, "reason": reason, "gated": gated,
        "extra": {k: v for k, v in result.extra.items() if k in ("exporter", "opset", "openvino", "fingerprint")},
    }


def _skipped(source: Source, backend: str, precision: str, reason: str) -> dict[str, Any]:
    return {"role": source.role, "variant": source.variant, "backend": backend, "runtime": LOCAL_RUNTIMES.get(backend, backend),
            "precision": precision, "path": None, "sha256": None, "size_bytes": None, "parity": None,
            "status": "skipped", "reason": reason, "gated": False, "extra": {}}


def _relative(path: Optional[str], run_dir: Path) -> Optional[str]:
    return None if path is None else Path(path).resolve().relative_to(run_dir.resolve()).as_posix()


def _add_float_delta(row: dict[str, Any], float_metric: dict[str, float]) -> None:
    """Metric through the runtime minus the float PyTorch metric of the same role (the int8 cost)."""
    parity, base = row.get("parity"), float_metric.get(row["role"])
    delta: Optional[float] = None
    if parity and parity.get("metric_runtime") is not None and base is not None:
        delta = parity["metric_runtime"] - base
    row["metric_runtime"] = parity.get("metric_runtime") if parity else None
    row["metric_delta_vs_float"] = delta


def _gate_int8(row: dict[str, Any], budget: float, lower_is_better: bool) -> None:
    """A gated int8 file whose metric is worse than the float model's by more than `budget` fails."""
    delta = row.get("metric_delta_vs_float")
    if row["precision"] != "int8" or delta is None or row["status"] != "passed":
        return
    worse = delta if lower_is_better else -delta
    if not worse <= budget:  # written so that NaN fails
        row["status"] = "failed" if row["gated"] else row["status"]
        row["reason"] = f"int8 is {worse:.4f} worse than the float model (budget quant.max_metric_delta {budget})"


def _print_rows(ctx, task, rows: list[dict[str, Any]]) -> None:
    unit = task.metric.unit
    for row in rows:
        metric = "" if row.get("metric_runtime") is None else f", {task.metric.name} {row['metric_runtime']:.4f}{unit}"
        delta = "" if row.get("metric_delta_vs_float") is None else f" (Δ vs float {row['metric_delta_vs_float']:+.4f})"
        reason = f" — {row['reason']}" if row["status"] != "passed" and row["reason"] else ""
        ctx.console.print(escape(f"{row['role']:8} {row['backend']:9} {row['precision']:5} {row['variant']:5} "
                                 f"{row['status']}{metric}{delta}{reason}"))


def load_artifacts(ctx: StageContext) -> list[dict[str, Any]]:
    return json.loads((ctx.stage_path("export") / ARTIFACTS_FILE).read_text())
