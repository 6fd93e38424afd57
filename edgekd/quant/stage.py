"""The `qat` stage for any task: PTQ baseline → sensitivity → quantization-aware fine-tuning.

Outputs in the stage folder:
  ptq.pt / ptq.nncf.json   the post-training-quantized student (calibration only): the baseline
  ptq.folds.json           the BatchNorms folded into their convolutions before quantizing
  qat.pt / qat.nncf.json   the same after fine-tuning with fake-quant (and qat.folds.json)
  sensitivity.json         per-layer cost of quantization, most costly first
  metrics.json             float / PTQ / QAT metric on the held-out set, fallback layers, history
A crash during fine-tuning resumes from checkpoints/ (the PTQ model is rebuilt from ptq.nncf.json, so
the resumed run fine-tunes exactly the model it started with).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from edgekd.artifacts import atomic_write_json
from edgekd.compute import fp32_loss
from edgekd.distill.loop import fit
from edgekd.errors import CheckFailed
from edgekd.pipeline import StageContext
from edgekd.quant.fallback import match_fallback, outermost
from edgekd.quant.nncf_quant import FOLDS_ATTR, load_quantized, quantize_ptq, quantizers, save_quantized
from edgekd.quant.sensitivity import layer_sensitivity

STUDENT = "student"
PTQ_FILE = "ptq.pt"
QAT_FILE = "qat.pt"


class QatObjective(nn.Module):
    """Task loss on the labels plus `kd_weight` × the same loss against the float model's outputs."""

    def __init__(self, model: nn.Module, reference: nn.Module, loss_fn, kd_weight: float) -> None:
        super().__init__()
        self.model = model
        self.reference = reference.eval().requires_grad_(False)
        self.loss_fn = loss_fn
        self.kd_weight = kd_weight

    def train(self, mode: bool = True) -> "QatObjective":
        super().train(mode)
        self.reference.eval()
        return self

    @fp32_loss  # fake quantization is fp32 arithmetic: the whole step runs without autocast
    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs, targets = batch
        outputs = self.model(inputs)
        task = self.loss_fn(outputs, targets)
        if self.kd_weight == 0:
            return {"loss": task, "task": task.detach()}
        with torch.no_grad():
            reference = self.reference(inputs)
        kd = self.loss_fn(outputs, reference)
        return {"loss": task + self.kd_weight * kd, "task": task.detach(), "kd": kd.detach()}


def float_student(task, ctx: StageContext) -> Any:
    """The student as it is deployed (adapter BatchNorm folded), in eval mode."""
    from edgekd.models import deploy_copy

    deploy = next(d for d in task.deploy_models(ctx) if d.role == STUDENT)
    return deploy_copy(deploy.module).eval(), deploy


def evaluate_torch(model: Any, task, inputs: np.ndarray, targets: Any, batch_size: int = 256) -> float:
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            out = model(torch.from_numpy(inputs[start:start + batch_size]))
            several = isinstance(out, (tuple, list))
            outputs.append(tuple(t.float().numpy() for t in out) if several else out.float().numpy())
    if isinstance(outputs[0], tuple):  # several outputs (a detector's boxes, scores): a tuple, as parity passes them
        return float(task.score(tuple(np.concatenate(parts) for parts in zip(*outputs)), targets))
    return float(task.score(np.concatenate(outputs), targets))


def run_qat(task, ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.recipe.quant
    if not cfg.enabled:
        atomic_write_json(ctx.stage_dir / "metrics.json", {"enabled": False})
        return {"enabled": False}
    reference, _ = float_student(task, ctx)
    fallback = match_fallback(reference, cfg.fallback)
    fallback_modules = outermost(path for paths in fallback.values() for path in paths)
    inputs, targets = task.eval_arrays(ctx, ctx.recipe.export.eval_samples)
    metric_float = evaluate_torch(reference, task, inputs, targets)

    ptq = _calibrated(task, ctx, reference, fallback_modules)
    metric_ptq = evaluate_torch(ptq, task, inputs, targets)
    ctx.console.print(f"PTQ int8: {task.metric.name} {metric_ptq:.4f} (float {metric_float:.4f}), "
                      f"{len(quantizers(ptq))} quantizers, {len(getattr(ptq, FOLDS_ATTR))} BatchNorms folded, "
                      f"{len(fallback_modules)} float fallback layers")
    sensitivity = _sensitivity(task, ctx, ptq, inputs, targets)

    qat = load_quantized(reference, ctx.stage_dir / PTQ_FILE)  # a fresh copy: PTQ stays the baseline
    for param in qat.parameters():  # weights and quantizer scales train; NNCF's integer flags do not
        param.requires_grad_(param.is_floating_point())
    objective = QatObjective(qat, reference, task.qat_loss, cfg.kd_weight)
    result = fit(objective, _training_set(task, ctx), cfg.train, seed=ctx.recipe.seed,
                 checkpoint_dir=ctx.stage_dir / "checkpoints", desc="qat")
    qat.eval()
    save_quantized(qat, ctx.stage_dir / QAT_FILE)
    metric_qat = evaluate_torch(qat, task, inputs, targets)
    metrics = {
        "enabled": True,
        "metric": task.metric.name,
        "float": metric_float,
        "ptq": metric_ptq,
        "qat": metric_qat,
        "eval_samples": len(inputs),
        "quantizers": len(quantizers(qat)),
        "fallback": fallback,
        "sensitivity_top": sensitivity[: cfg.sensitivity.top],
        "history": result.history,
    }
    atomic_write_json(ctx.stage_dir / "metrics.json", metrics)
    ctx.console.print(f"QAT int8: {task.metric.name} {metric_qat:.4f} (PTQ {metric_ptq:.4f}, float {metric_float:.4f})")
    _check_budget(task, cfg.max_metric_delta, metric_float, metric_qat)
    return {"float": metric_float, "ptq": metric_ptq, "qat": metric_qat}


def _training_set(task, ctx: StageContext) -> Any:
    """The task's QAT data, or a seeded subset of it: fake-quant training is several times slower per image
    than float training, and a calibrated model needs far less than a full epoch to adapt."""
    from torch.utils.data import Subset

    dataset, limit = task.qat_dataset(ctx), ctx.recipe.quant.train_samples
    if limit is None or limit >= len(dataset):
        return dataset
    picks = np.random.default_rng(ctx.recipe.seed).choice(len(dataset), size=limit, replace=False)
    return Subset(dataset, sorted(picks.tolist()))


def _calibrated(task, ctx: StageContext, reference, fallback_modules: list[str]) -> Any:
    cfg = ctx.recipe.quant
    calibration = task.calibration_inputs(ctx, cfg.calibration_samples)
    batches = [torch.from_numpy(calibration[i:i + cfg.calibration_batch])
               for i in range(0, len(calibration), cfg.calibration_batch)]
    with ctx.console.status(f"calibrating int8 on {len(calibration)} training images"):
        ptq = quantize_ptq(reference, batches, fallback_modules=fallback_modules, placement=cfg.placement,
                           fold_bn=cfg.fold_batchnorm)
    save_quantized(ptq, ctx.stage_dir / PTQ_FILE)
    return ptq


def _sensitivity(task, ctx: StageContext, ptq, inputs: np.ndarray, targets: Any) -> list[dict[str, Any]]:
    cfg = ctx.recipe.quant.sensitivity
    if not cfg.enabled:
        return []
    sub_inputs, sub_targets = inputs[: cfg.samples], targets[: cfg.samples]
    with Progress(console=ctx.console, transient=True) as bar:
        job = bar.add_task("per-layer sensitivity", total=None)
        baseline, costs = layer_sensitivity(
            ptq, lambda model: evaluate_torch(model, task, sub_inputs, sub_targets),
            lower_is_better=task.metric.lower_is_better,
            progress=lambda done, total: bar.update(job, completed=done, total=total),
        )
    ranked = [cost.to_dict() for cost in costs]
    atomic_write_json(ctx.stage_dir / "sensitivity.json", {
        "metric": task.metric.name, "samples": len(sub_inputs), "quantized_metric": baseline, "layers": ranked,
    })
    for entry in ranked[: min(3, cfg.top)]:
        ctx.console.print(f"  sensitive: {entry['module']} costs {entry['cost']:+.4f} {task.metric.unit}")
    return ranked


def _check_budget(task, budget: float, metric_float: float, metric_qat: float) -> None:
    worse = metric_qat - metric_float if task.metric.lower_is_better else metric_float - metric_qat
    if not worse <= budget:  # written so that NaN fails
        raise CheckFailed(
            f"qat: int8 {task.metric.name} {metric_qat:.4f} is {worse:.4f} {task.metric.unit} worse than float "
            f"{metric_float:.4f} (budget quant.max_metric_delta {budget}); see sensitivity.json for layers to "
            f"keep in float (quant.fallback)"
        )
