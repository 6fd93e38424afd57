"""The stages every task shares after training: qat → export (with parity) → profile → report."""

from __future__ import annotations

from edgekd.pipeline import Stage


def _quant_config(recipe):
    # The calibration and fine-tuning read the export section's eval_samples, so it is part of the key.
    return {"seed": recipe.seed, "quant": recipe.quant.model_dump(mode="json"),
            "eval_samples": recipe.export.eval_samples}


def _export_config(recipe):
    return {"export": recipe.export.model_dump(mode="json"), "max_metric_delta": recipe.quant.max_metric_delta}


def deploy_stages(task, export_inputs: tuple[str, ...], report_inputs: tuple[str, ...],
                  before_report: tuple[Stage, ...] = ()) -> list[Stage]:
    """QAT → export → profile → (task stages that use the exported files) → report for `task`; the inputs
    name the training stages they read."""
    from edgekd.quant.stage import run_qat
    from edgekd.tasks.export_stage import run_export
    from edgekd.tasks.profile_stage import run_profile
    from edgekd.tasks.report_stage import run_report

    return [
        Stage("qat", lambda ctx: run_qat(task, ctx), _quant_config, export_inputs,
              help="int8: PTQ baseline, per-layer sensitivity, quantization-aware fine-tuning"),
        Stage("export", lambda ctx: run_export(task, ctx), _export_config, (*export_inputs, "qat"),
              help="a file per backend and precision the recipe names, each with a parity check"),
        Stage("profile", lambda ctx: run_profile(task, ctx), lambda r: r.profile, ("export",),
              help="latency on this host, every runnable file side by side"),
        *before_report,
        Stage("report", lambda ctx: run_report(task, ctx), lambda r: {"task": task.name},
              ("export", "profile", "qat", *report_inputs, *(s.name for s in before_report)), help="report.json + report.md + report.html"),
    ]
