"""The stages every task shares: export (with parity), profile (on this host) and report."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from typing import Any

import torch

from edgekd import __version__
from edgekd.artifacts import atomic_path, atomic_write_json
from edgekd.errors import CheckFailed
from edgekd.pipeline import Stage, StageContext, config_hash
from edgekd.tasks.base import Task

ONNX_DIR = "onnx"


def run_export(task: Task, ctx: StageContext) -> dict[str, Any]:
    from edgekd.export import EXPORTERS
    from edgekd.export.parity import check_parity
    from edgekd.models import count_macs, count_parameters, deploy_copy

    cfg = ctx.recipe.export
    exporter = EXPORTERS.get("onnx")
    inputs, targets = task.eval_arrays(ctx, cfg.eval_samples)
    models, failures = {}, []
    for deploy in task.deploy_models(ctx):
        path = ctx.stage_dir / ONNX_DIR / f"{deploy.role}.onnx"
        exported = exporter.export(
            deploy_copy(deploy.module), torch.zeros(deploy.input_shape), path, opset=cfg.opset,
            input_names=deploy.input_names, output_names=deploy.output_names, simplify=cfg.simplify,
        )
        parity = check_parity(
            deploy.module, path, inputs, targets=targets, metric_fn=task.score,
            max_abs_diff=cfg.parity.max_abs_diff, max_metric_delta=cfg.parity.max_metric_delta,
        )
        models[deploy.role] = {
            "arch": deploy.arch,
            "parameters": count_parameters(deploy.module),
            "trainable_parameters": deploy.trainable_parameters,
            "macs": count_macs(deploy.module, deploy.input_shape),
            "input_shape": list(deploy.input_shape),
            "export": exported.to_dict(),
            "parity": parity.to_dict(),
        }
        ctx.console.print(
            f"{deploy.role}: {path.name} opset {exported.opset}, max |Δ| {parity.max_abs_diff:.2e}, "
            f"{task.metric.name} Δ {parity.metric_delta:+.4f} {task.metric.unit}"
        )
        if not parity.passed:
            failures.append(f"{deploy.role}: {parity.failure_reason()}")
    atomic_write_json(ctx.stage_dir / ONNX_DIR / "models.json", models)
    if failures:
        raise CheckFailed("ONNX parity out of budget — " + "; ".join(failures))
    return {role: {"parity_passed": True, "opset": m["export"]["opset"]} for role, m in models.items()}


def run_profile(task: Task, ctx: StageContext) -> dict[str, Any]:
    from edgekd.profile.local import profile_side_by_side

    cfg = ctx.recipe.profile
    models = json.loads((ctx.stage_path("export") / ONNX_DIR / "models.json").read_text())
    paths = {role: ctx.stage_path("export") / ONNX_DIR / f"{role}.onnx" for role in models}
    shape = [cfg.batch_size, *next(iter(models.values()))["input_shape"][1:]]
    results = profile_side_by_side(
        paths, input_shape=tuple(shape), threads=cfg.threads, warmup=cfg.warmup, runs=cfg.runs, rounds=cfg.rounds
    )
    dumped = {role: result.model_dump(mode="json") for role, result in results.items()}
    atomic_write_json(ctx.stage_dir / "onnxruntime.json", dumped)
    for role, result in results.items():
        ctx.console.print(
            f"{role}: p50 {result.stats.p50_ms:.3f} ms, p90 {result.stats.p90_ms:.3f} ms "
            f"(onnxruntime, {cfg.threads} threads, {cfg.runs} runs)"
        )
    return {role: {"p50_ms": r.stats.p50_ms, "p90_ms": r.stats.p90_ms} for role, r in results.items()}


def run_report(task: Task, ctx: StageContext) -> dict[str, Any]:
    from edgekd.profile.environment import host_environment
    from edgekd.report.render import ratios, write_report
    from edgekd.report.schema import Report

    report = Report(
        recipe=ctx.recipe.name,
        task=task.name,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        edgekd_version=__version__,
        config_hash=config_hash(ctx_stage_for_hash(), ctx.recipe),
        metric={"name": task.metric.name, "unit": task.metric.unit, "lower_is_better": task.metric.lower_is_better},
        models=_model_entries(task, ctx),
        parity=_parity_entries(ctx),
        environment=host_environment(),
    )
    report.ratios = ratios(report)
    written = write_report(report, ctx.stage_dir)
    for path in written.values():
        with atomic_path(ctx.run_dir / path.name) as tmp:
            shutil.copyfile(path, tmp)
    return {"ratios": report.ratios}


def ctx_stage_for_hash() -> Stage:
    # The report's config hash covers the whole recipe, so a baseline comparison can tell recipes apart.
    return Stage("recipe", run=lambda ctx: None, config=lambda recipe: recipe)


def _model_entries(task: Task, ctx: StageContext) -> list[dict[str, Any]]:
    models = json.loads((ctx.stage_path("export") / ONNX_DIR / "models.json").read_text())
    latency = json.loads((ctx.stage_path("profile") / "onnxruntime.json").read_text())
    metrics = task.report_metrics(ctx)
    return [
        {
            "role": role,
            "arch": info["arch"],
            "parameters": info["parameters"],
            "trainable_parameters": info["trainable_parameters"],
            "macs": info["macs"],
            "file_size_bytes": info["export"]["size_bytes"],
            "metrics": metrics.get(role, {}),
            "latency": {"onnxruntime": latency[role]} if role in latency else {},
        }
        for role, info in sorted(models.items(), key=lambda item: -item[1]["parameters"])  # teacher first
    ]


def _parity_entries(ctx: StageContext) -> list[dict[str, Any]]:
    models = json.loads((ctx.stage_path("export") / ONNX_DIR / "models.json").read_text())
    entries = []
    for role, info in models.items():
        parity = info["parity"]
        entries.append({"role": role, "backend": "onnxruntime", "precision": "fp32", **{
            key: parity[key] for key in ("max_abs_diff", "max_rel_diff", "metric_torch", "metric_runtime", "metric_delta", "passed")
        }})
    return entries


def deploy_stages(task: Task, export_inputs: tuple[str, ...], report_inputs: tuple[str, ...]) -> list[Stage]:
    """Export → profile → report for `task`; the inputs name the training stages they read."""
    return [
        Stage("export", lambda ctx: run_export(task, ctx), lambda r: r.export, export_inputs,
              help="ONNX export + parity check against PyTorch"),
        Stage("profile", lambda ctx: run_profile(task, ctx), lambda r: r.profile, ("export",),
              help="latency on this host (ONNX Runtime)"),
        Stage("report", lambda ctx: run_report(task, ctx), lambda r: {"task": task.name}, ("export", "profile", *report_inputs),
              help="report.json + report.md"),
    ]
