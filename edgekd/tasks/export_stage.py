"""The export stage every task shares: each (role, backend, precision) file, with its parity check.

The files are written and checked by the one export orchestration (edgekd.export.orchestrate), the same one
`edgekd export timm:NAME` uses. One fp32 ONNX per role is the source of the float files (OpenVINO IR fp32/fp16, the
TensorRT bundle). The int8 files come from the QAT model in the placement each runtime fuses into int8 kernels
(edgekd.export.int8_graph): ONNX Runtime's own (`student.int8.onnx`: the ranges QAT learned plus a calibration of
the tensors QAT did not quantize, on the QAT stage's calibration images) and TensorRT's explicit placement
(`student.int8.explicit.onnx`, the source of the OpenVINO int8 IR and the TensorRT bundle). The PTQ model is
exported too, as the baseline that shows what QAT buys; it is measured, not gated.

Parity references: fp32/fp16 files against the float PyTorch model; int8 files against the fake-quantized
PyTorch model (same arithmetic up to rounding), and additionally their metric against the float model
(the number users care about: what int8 costs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from rich.markup import escape

from edgekd.artifacts import atomic_write_json
from edgekd.errors import CheckFailed
from edgekd.export.orchestrate import ONNX_DIR, ExportRow, ExportSettings, ParitySpec, Source, export_one, skipped
from edgekd.export.orchestrate import rows_failed, source_onnx
from edgekd.pipeline import StageContext

ARTIFACTS_FILE = "artifacts.json"
STUDENT = "student"
# Inputs ONNX Runtime's quantizer calibrates the conv outputs and adds on (QAT's ranges cover the rest):
# min/max settles long before the QAT stage's 512 calibration images, and each costs a forward pass.
ORT_CALIBRATION_SAMPLES = 128


def run_export(task, ctx: StageContext) -> dict[str, Any]:
    from edgekd.models import count_macs, count_parameters, deploy_copy

    cfg = ctx.recipe.export
    settings = _settings(cfg)
    rows: list[ExportRow] = []
    models: dict[str, Any] = {}
    float_metric: dict[str, float] = {}
    for deploy in task.deploy_models(ctx):
        inputs, targets = task.role_eval_arrays(ctx, deploy.role, cfg.eval_samples)
        spec = ParitySpec(inputs, _budgets(cfg), targets, task.role_score(deploy.role))
        source = Source(deploy.role, "float", deploy_copy(deploy.module).eval(), tuple(deploy.input_shape),
                        tuple(deploy.input_names), tuple(deploy.output_names))
        fp32 = export_one(source, "onnx", "fp32", ctx.stage_dir, spec, settings)
        float_metric[deploy.role] = fp32.parity["metric_torch"]
        rows.append(fp32)
        onnx_result = source_onnx(source, ctx.stage_dir, settings)
        models[deploy.role] = {
            "arch": deploy.arch, "parameters": count_parameters(deploy.module),
            "trainable_parameters": deploy.trainable_parameters, "macs": count_macs(deploy.module, deploy.input_shape),
            "input_shape": list(deploy.input_shape), "export": onnx_result.to_dict(), "parity": fp32.parity,
        }
        rows += _other_backends(task, ctx, source, spec, settings)
    for row in rows:
        _add_float_delta(row, float_metric)
        _gate_int8(row, ctx.recipe.quant.max_metric_delta, task.metric.lower_is_better)
        row.path = _relative(row.path, ctx.run_dir)
    records = [row.to_dict() for row in rows]
    atomic_write_json(ctx.stage_dir / ONNX_DIR / "models.json", models)
    atomic_write_json(ctx.stage_dir / ARTIFACTS_FILE, records)
    _print_rows(ctx, task, records)
    failures = rows_failed(rows)
    if failures:
        raise CheckFailed("export out of budget — " + "; ".join(failures))
    return {"artifacts": len(rows), "failed": sum(r.status == "failed" for r in rows)}


def _settings(cfg) -> ExportSettings:
    return ExportSettings(opset=cfg.opset, simplify=cfg.simplify, tensorrt_target=cfg.tensorrt_target,
                          tensorrt_workspace_mb=cfg.tensorrt_workspace_mb, tensorrt_dla_core=cfg.tensorrt_dla_core)


def _budgets(cfg) -> dict[str, Any]:
    """The recipe's budget per precision. fp32 and fp16 files are also held to the scaled SNR floor of
    edgekd.export.parity.SCALED_BUDGETS unless the recipe sets `min_snr_db`: an absolute budget alone cannot fail a
    file whose outputs are small. int8 files are held to the task metric against the float model (quant.max_metric_delta)."""
    from edgekd.export.parity import SCALED_BUDGETS

    budgets = {"fp32": cfg.parity, "fp16": cfg.parity_fp16, "int8": cfg.parity_int8}
    for precision in ("fp32", "fp16"):
        if budgets[precision].min_snr_db is None:
            floor = SCALED_BUDGETS[precision]["min_snr_db"]
            budgets[precision] = budgets[precision].model_copy(update={"min_snr_db": floor})
    return budgets


def _other_backends(task, ctx, float_source: Source, spec: ParitySpec, settings: ExportSettings) -> list[ExportRow]:
    from edgekd.export import BACKENDS

    cfg = ctx.recipe.export
    is_student = float_source.role == STUDENT
    rows = []
    quantized = _quantized_sources(task, ctx, float_source) if is_student else {}
    for backend, precisions in cfg.backends.items():
        for precision in precisions:
            if not is_student and (precision != "fp32" or not BACKENDS.get(backend).host_cpu):
                continue  # the teacher is exported for the side-by-side numbers only
            if backend == "onnx" and precision == "fp32":
                continue  # done first: it is the source of the others
            if precision != "int8":
                rows.append(export_one(float_source, backend, precision, ctx.stage_dir, spec, settings))
                continue
            if not quantized:
                rows.append(skipped(float_source, backend, precision, "quantization is off (quant.enabled)"))
            for variant, source in quantized.items():
                rows.append(_quantized_row(source, backend, precision, ctx, spec, settings))
    return rows


def _quantized_row(source: Source, backend: str, precision: str, ctx, spec: ParitySpec,
                   settings: ExportSettings) -> ExportRow:
    from edgekd.export import BACKENDS

    if source.variant == "ptq" and not BACKENDS.get(backend).is_available():
        return skipped(source, backend, precision, "PTQ baseline: bundled for the QAT model only")
    return export_one(source, backend, precision, ctx.stage_dir, spec, settings, gated=source.variant != "ptq")


def _quantized_sources(task, ctx, float_source: Source) -> dict[str, Source]:
    from edgekd.export import BACKENDS
    from edgekd.quant.nncf_quant import load_quantized
    from edgekd.quant.stage import PTQ_FILE, QAT_FILE

    if not ctx.recipe.quant.enabled:
        return {}
    qat_dir = ctx.stage_path("qat")
    calibration = None
    # the QAT stage's calibration images, the first few: for ONNX Runtime's placement and for every backend that
    # quantizes the model itself (PT2E)
    calibrated = [name for name, precisions in ctx.recipe.export.backends.items() if "int8" in precisions
                  and (name == "onnx" or BACKENDS.get(name).calibrates_int8)]
    if calibrated:
        calibration = task.calibration_inputs(ctx, min(ctx.recipe.quant.calibration_samples, ORT_CALIBRATION_SAMPLES))
    return {
        variant: Source(float_source.role, variant, load_quantized(float_source.module, qat_dir / name),
                        float_source.input_shape, float_source.input_names, float_source.output_names,
                        calibration=calibration)
        for variant, name in (("qat", QAT_FILE), ("ptq", PTQ_FILE))
    }


def _relative(path: Optional[str], run_dir: Path) -> Optional[str]:
    return None if path is None else Path(path).resolve().relative_to(run_dir.resolve()).as_posix()


def _add_float_delta(row: ExportRow, float_metric: dict[str, float]) -> None:
    """Metric through the runtime minus the float PyTorch metric of the same role (the int8 cost)."""
    base = float_metric.get(row.role)
    if row.metric_runtime is not None and base is not None:
        row.metric_delta_vs_float = row.metric_runtime - base


def _gate_int8(row: ExportRow, budget: float, lower_is_better: bool) -> None:
    """A gated int8 file whose metric is worse than the float model's by more than `budget` fails."""
    delta = row.metric_delta_vs_float
    if row.precision != "int8" or delta is None or row.status != "passed":
        return
    worse = delta if lower_is_better else -delta
    if not worse <= budget:  # written so that NaN fails
        row.status = "failed" if row.gated else row.status
        row.reason = f"int8 is {worse:.4f} worse than the float model (budget quant.max_metric_delta {budget})"


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
