"""The report stage: models, one row per exported file, the quantization summary and the deploy choice."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from typing import Any

from edgekd import __version__
from edgekd.artifacts import atomic_path
from edgekd.pipeline import Stage, StageContext, config_hash
from edgekd.report.schema import DeploymentEntry
from edgekd.tasks.export_stage import ONNX_DIR, load_artifacts
from edgekd.tasks.profile_stage import artifact_key, load_latency


def run_report(task, ctx: StageContext) -> dict[str, Any]:
    from edgekd.profile.environment import host_environment
    from edgekd.report.deploy_choice import choose, speedups
    from edgekd.report.render import ratios, write_report
    from edgekd.report.schema import Report

    latency = load_latency(ctx)
    rows = load_artifacts(ctx)
    deployments, unpaired = _deployments(rows, latency)
    speedups(deployments)
    report = Report(
        recipe=ctx.recipe.name,
        task=task.name,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        edgekd_version=__version__,
        config_hash=config_hash(recipe_stage(), ctx.recipe),
        metric={"name": task.metric.name, "unit": task.metric.unit, "lower_is_better": task.metric.lower_is_better},
        models=_model_entries(task, ctx, latency),
        parity=_parity_entries(rows),
        deployments=deployments,
        quantization=_quantization(ctx),
        environment=host_environment(),
    )
    report.deploy = choose(deployments, ctx.recipe.export.deploy, budget=ctx.recipe.quant.max_metric_delta,
                           lower_is_better=task.metric.lower_is_better)
    extras = task.report_extras(ctx)
    report.ratios = {**ratios(report), **extras.get("ratios", {})}
    report.predictions, predict_notes = _predictions(rows, ctx)
    report.notes = (extras.get("notes", []) + unpaired + _int8_notes(deployments) + _default_execution_notes(rows)
                    + predict_notes)
    written = write_report(report, ctx.stage_dir)
    for path in written.values():
        with atomic_path(ctx.run_dir / path.name) as tmp:
            shutil.copyfile(path, tmp)
    return {"ratios": report.ratios, "deploy": {k: v.precision for k, v in report.deploy.items()}}


def recipe_stage() -> Stage:
    # The report's config hash covers the whole recipe, so a baseline comparison can tell recipes apart.
    return Stage("recipe", run=lambda ctx: None, config=lambda recipe: recipe)


def _deployments(rows: list[dict[str, Any]], latency: dict[str, Any]) -> tuple[list[DeploymentEntry], list[str]]:
    """One entry per file; a latency is attached only when it was timed in the arithmetic its accuracy was checked
    in (else a note says why it is missing)."""
    entries, notes = [], []
    for row in rows:
        parity = row.get("parity") or {}
        timed = latency.get(artifact_key(row)) if row["variant"] != "ptq" else None
        checked = (parity.get("execution") or {}).get("inference_precision")
        if timed is not None and not same_execution(checked, timed.settings.get("inference_precision")):
            notes.append(f"{row['role']} {row['runtime']} {row['precision']}: timed in "
                         f"{timed.settings.get('inference_precision')} arithmetic but checked in {checked}; "
                         f"its latency is left out rather than paired with another execution's accuracy.")
            timed = None
        entries.append(DeploymentEntry(
            role=row["role"], variant=row["variant"], backend=row["backend"], runtime=row["runtime"],
            precision=row["precision"], status=row["status"], reason=row.get("reason", ""), path=row.get("path"),
            sha256=row.get("sha256"), size_bytes=row.get("size_bytes"), metric=row.get("metric_runtime"),
            metric_delta_vs_float=row.get("metric_delta_vs_float"), max_abs_diff=parity.get("max_abs_diff"),
            latency=timed, int8_kernels=_int8_kernels(row), inference_precision=checked,
        ))
    return entries, notes


def same_execution(checked: str | None, timed: str | None) -> bool:
    """Whether a parity check and a timing ran in the same arithmetic (both unrecorded counts as the same: files
    from before edgekd recorded it)."""
    return checked is None and timed is None or checked == timed


def _default_execution_notes(rows: list[dict[str, Any]]) -> list[str]:
    """Files whose runtime computes differently with its default settings on this host, and what that costs."""
    notes = []
    for row in rows:
        default = (row.get("extra") or {}).get("default_execution")
        if not default or row["variant"] == "ptq":
            continue
        verdict = "also passes parity" if default["passed"] else f"fails parity ({default['reason']})"
        notes.append(f"{row['role']} {row['runtime']} {row['precision']}: with the runtime's default settings this "
                     f"host computes in {default['inference_precision']}, and that execution {verdict}; the checked "
                     f"and timed execution pins {row['parity']['execution'].get('inference_precision')} "
                     f"(INFERENCE_PRECISION_HINT).")
    return notes


def _int8_kernels(row: dict[str, Any]) -> dict[str, int] | None:
    extra = row.get("extra") or {}
    if "kernels" not in extra or "quantized_by_qat" not in extra:
        return None
    return {**extra["kernels"], **{f"quantized_{k}": v for k, v in extra["quantized_by_qat"].items()}}


def _model_entries(task, ctx: StageContext, latency: dict[str, Any]) -> list[dict[str, Any]]:
    models = json.loads((ctx.stage_path("export") / ONNX_DIR / "models.json").read_text())
    metrics = task.report_metrics(ctx)
    outcomes = task.report_outcomes(ctx)
    return [
        {
            "role": role,
            "arch": info["arch"],
            "parameters": info["parameters"],
            "trainable_parameters": info["trainable_parameters"],
            "macs": info["macs"],
            "file_size_bytes": info["export"]["size_bytes"],
            "metrics": metrics.get(role, {}),
            "outcomes": outcomes.get(role, {}),
            # The float fp32 file per runtime: the teacher-vs-student comparison.
            "latency": {key.split("/")[1]: result for key, result in latency.items()
                        if key.startswith(f"{role}/") and key.endswith("/fp32")},
        }
        for role, info in sorted(models.items(), key=lambda item: -item[1]["parameters"])  # teacher first
    ]


def _parity_entries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("max_abs_diff", "max_rel_diff", "metric_torch", "metric_runtime", "metric_delta")
    return [
        {"role": row["role"] if row["variant"] == "float" else f"{row['role']} ({row['variant']})",
         "backend": row["runtime"], "precision": row["precision"], **{k: row["parity"][k] for k in keys},
         "error_stat": row["parity"].get("error_stat", "max"), "abs_diff_stat": row["parity"].get("abs_diff_stat"),
         "passed": row["parity"]["passed"]}
        for row in rows if row.get("parity")
    ]


def _quantization(ctx: StageContext) -> dict[str, Any]:
    path = ctx.stage_path("qat") / "metrics.json"
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text())
    return {key: metrics[key] for key in ("enabled", "float", "ptq", "qat", "quantizers", "fallback",
                                          "sensitivity_top", "eval_samples") if key in metrics}


def _predictions(rows: list[dict[str, Any]], ctx: StageContext) -> tuple[list[Any], list[str]]:
    """Predicted latency of the float ONNX files and the QAT int8 one on every calibrated device (soft: a
    failure is a note, never a failed stage)."""
    from edgekd.report.predictions import PredictionSource, predict_files

    sources = [PredictionSource(row["role"], row["variant"], row["path"], row["precision"], row.get("metric_runtime"))
               for row in rows if row["backend"] == "onnx" and row["status"] == "passed" and row.get("path")
               and (row["variant"], row["precision"]) in (("float", "fp32"), ("qat", "int8"))]
    try:
        return predict_files(sources, ctx.run_dir)
    except Exception as error:  # the report matters more than the estimate
        return [], [f"predicted latency skipped: {type(error).__name__}: {error}"]


_WHY_INT8_IS_SLOW = {
    # Seen in ONNX Runtime's optimised graph: a conv whose output no QuantizeLinear follows stays float.
    "onnxruntime-unfused": "ONNX Runtime's CPU provider runs a conv in int8 only when a QuantizeLinear directly "
                           "follows it; the convs counted as float run on weights dequantized at every call.",
    "default": "On a model this small the Q/DQ work around each int8 kernel outweighs the cheaper arithmetic.",
}


def _why_int8_is_slow(entry: DeploymentEntry) -> str:
    kernels = entry.int8_kernels
    if entry.runtime == "onnxruntime" and kernels and kernels["int8_convs"] < kernels["quantized_convs"]:
        return _WHY_INT8_IS_SLOW["onnxruntime-unfused"]
    return _WHY_INT8_IS_SLOW.get(entry.runtime, _WHY_INT8_IS_SLOW["default"])


def _int8_notes(deployments: list[DeploymentEntry]) -> list[str]:
    notes = []
    for entry in deployments:
        if entry.precision != "int8" or entry.variant != "qat" or entry.speedup_vs_fp32 is None:
            continue
        if entry.speedup_vs_fp32 < 1.0:
            notes.append(
                f"{entry.runtime}: int8 is not faster than fp32 on this host ({1 / entry.speedup_vs_fp32:.2f}× the "
                f"fp32 time). {_why_int8_is_slow(entry)} The deploy "
                f"choice below takes the measured fastest precision."
            )
        else:
            notes.append(f"{entry.runtime}: int8 is {entry.speedup_vs_fp32:.2f}× faster than fp32 on this host.")
    return notes
