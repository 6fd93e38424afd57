"""The profile stage: every exported file this host can run, timed side by side in one run.

Teacher and student, fp32 / fp16 / int8, ONNX Runtime and OpenVINO are all loaded first and then timed in
interleaved rounds (edgekd.profile.local.profile_side_by_side), so the ratios between any two of them
come from the same minutes of the same machine. The PTQ baseline has the QAT model's graph, so it is
not timed twice.
"""

from __future__ import annotations

import json
from typing import Any

from rich.progress import Progress

from edgekd.artifacts import atomic_write_json
from edgekd.pipeline import StageContext
from edgekd.tasks.export_stage import ONNX_DIR, load_artifacts

LATENCY_FILE = "latency.json"


def artifact_key(row: dict[str, Any]) -> str:
    return f"{row['role']}/{row['runtime']}/{row['precision']}"


def profiled_rows(ctx: StageContext) -> list[dict[str, Any]]:
    runtimes = set(ctx.recipe.profile.runtimes)
    return [row for row in load_artifacts(ctx)
            if row["status"] == "passed" and row["runtime"] in runtimes and row["variant"] != "ptq"]


def run_profile(task, ctx: StageContext) -> dict[str, Any]:
    from edgekd.profile.local import profile_side_by_side

    cfg = ctx.recipe.profile
    rows = profiled_rows(ctx)
    models = json.loads((ctx.stage_path("export") / ONNX_DIR / "models.json").read_text())
    shapes = {artifact_key(row): [cfg.batch_size, *models[row["role"]]["input_shape"][1:]] for row in rows}
    paths = {artifact_key(row): ctx.run_dir / row["path"] for row in rows}
    precisions = {artifact_key(row): row["precision"] for row in rows}
    with Progress(console=ctx.console, transient=True) as bar:
        job = bar.add_task(f"timing {len(paths)} files side by side", total=cfg.runs * len(paths))
        results = profile_side_by_side(
            paths, input_shape=next(iter(shapes.values())), input_shapes=shapes, threads=cfg.threads, warmup=cfg.warmup, runs=cfg.runs,
            rounds=cfg.rounds, precisions=precisions, progress=lambda done, total: bar.update(job, completed=done),
        )
    atomic_write_json(ctx.stage_dir / LATENCY_FILE, {key: r.model_dump(mode="json") for key, r in results.items()})
    for key, result in results.items():
        ctx.console.print(f"{key:32} p50 {result.stats.p50_ms:8.3f} ms  p90 {result.stats.p90_ms:8.3f} ms")
    return {key: {"p50_ms": r.stats.p50_ms} for key, r in results.items()}


def load_latency(ctx: StageContext) -> dict[str, Any]:
    from edgekd.profile.local import ProfileResult

    raw = json.loads((ctx.stage_path("profile") / LATENCY_FILE).read_text())
    return {key: ProfileResult.model_validate(value) for key, value in raw.items()}
