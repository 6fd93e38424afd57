"""The training loop: plain PyTorch, seeded per step, checkpointed, resumable, DDP-aware.

Every random draw inside a step (masks, dropout) comes from a generator reseeded from (seed, step, rank),
and the data order from the sampler's (seed, epoch); so a run resumed from a checkpoint after `kill -9`
takes exactly the steps an uninterrupted run takes and ends with the same weights.

The objective trains on the TrainConfig's `device` in its `precision` (edgekd.compute: autocast, and loss
scaling for fp16) and is back on the CPU when `fit` returns, so evaluation and export see a CPU model wherever
it trained; checkpoints are saved as they are and loaded onto the CPU first, so a run resumes on any device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from edgekd import distributed as dist
from edgekd.artifacts import atomic_torch_save, load_checkpoint, restart_hint
from edgekd.compute import CPU_FP32, Compute, map_tensors, resolve
from edgekd.distill.progress import TrainProgress
from edgekd.errors import EdgekdError, TrainingDiverged, first_line
from edgekd.recipe.common import TrainConfig

LAST_CHECKPOINT = "last.pt"


@dataclass
class FitResult:
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_at_step: Optional[int] = None


@dataclass
class _State:
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2**63 - 1)


def fit(
    objective: nn.Module,
    dataset: Dataset,
    cfg: TrainConfig,
    *,
    seed: int,
    checkpoint_dir: Path,
    desc: str,
    validate: Optional[Callable[[], dict[str, float]]] = None,
    stop: Optional[Callable[[list[dict[str, float]]], bool]] = None,
) -> FitResult:
    """Optimise `objective` (whose forward(batch) returns a dict with a 'loss') over `dataset`.

    Only parameters with requires_grad train. Checkpoints go to `checkpoint_dir/last.pt` at every epoch
    end and every `cfg.checkpoint_every_steps` steps; an existing checkpoint is resumed from.
    `validate()` runs after each epoch and its numbers join that epoch's history entry; `stop(history)`
    then ends training early (early stopping). Both see the restored history after a resume, so a
    resumed run stops where an uninterrupted one would.
    """
    sampler = DistributedSampler(dataset, dist.world_size(), dist.rank(), shuffle=True, seed=seed, drop_last=True)
    if len(sampler) == 0:  # zero steps would still write a checkpoint and a metric that later stages build on
        raise EdgekdError(f"{desc}: the training set has {len(dataset)} samples; it needs at least "
                          f"{dist.world_size()} (one per process)")
    batch_size = max(1, min(cfg.batch_size, len(sampler)))
    steps_per_epoch = len(sampler) // batch_size
    compute = resolve(cfg.device or "auto", cfg.precision)
    objective.to(compute.torch_device())  # before the optimizer: its state lives beside the parameters
    params = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(cfg, steps_per_epoch))
    scaler = compute.grad_scaler()
    training = _Training(optimizer, scheduler, scaler, compute)
    state = _resume(objective, training, checkpoint_dir / LAST_CHECKPOINT)
    resumed_at = state.global_step if state.global_step else None
    model = _wrap_ddp(objective, compute)
    try:
        with TrainProgress(desc, total=cfg.epochs * steps_per_epoch, done=state.global_step) as progress:
            if resumed_at:
                progress.log(f"{desc}: resuming from step {resumed_at} ({checkpoint_dir / LAST_CHECKPOINT})")
            if compute != CPU_FP32:
                progress.log(f"{desc}: training on {compute.device} in {compute.precision}")
            while state.epoch < cfg.epochs and not (stop and state.history and stop(state.history)):
                sampler.set_epoch(state.epoch)
                batches = _epoch_batches(sampler, batch_size)[state.step_in_epoch :]
                loader = DataLoader(dataset, batch_sampler=batches, num_workers=cfg.num_workers,
                                    pin_memory=compute.device_type == "cuda")
                objective.train()
                for batch in loader:
                    _train_step(model, batch, training, cfg, state, seed, checkpoint_dir, desc)
                    progress.advance(state.sums["loss"] / max(state.step_in_epoch, 1),
                                     len(batch[0]) * dist.world_size())
                    if cfg.checkpoint_every_steps and state.global_step % cfg.checkpoint_every_steps == 0:
                        _save(objective, training, state, checkpoint_dir)
                _end_epoch(state, steps_per_epoch, progress, desc, cfg.epochs, validate)
                _save(objective, training, state, checkpoint_dir)
    finally:
        objective.to("cpu")  # what follows a training stage (evaluation, caches, export) works on the CPU model
    return FitResult(steps=state.global_step, history=state.history, resumed_at_step=resumed_at)


@dataclass
class _Training:
    """What a step updates besides the model."""

    optimizer: Any
    scheduler: Any
    scaler: Any  # torch.amp.GradScaler, enabled for fp16 only
    compute: Compute


def to_device(batch: Any, device: Any) -> Any:
    """A batch's tensors on `device`, whatever containers hold them (non-tensors pass through)."""
    return map_tensors(batch, lambda tensor: tensor.to(device, non_blocking=True))


def _train_step(model, batch, training: _Training, cfg, state: _State, seed, checkpoint_dir, desc) -> None:
    torch.manual_seed(step_seed(seed, state.global_step, dist.rank()))
    if training.compute.device != "cpu":
        batch = to_device(batch, training.compute.torch_device())
    with training.compute.autocast():
        terms = model(batch)
    loss = terms["loss"].float()
    loss_value = dist.all_reduce_mean(float(loss.detach()))
    if not math.isfinite(loss_value):
        last = checkpoint_dir / LAST_CHECKPOINT
        where = str(last) if last.exists() else "none (no checkpoint written yet)"
        raise TrainingDiverged(
            f"{desc}: loss became {loss_value} at step {state.global_step + 1} (epoch {state.epoch + 1}); "
            f"last good checkpoint: {where}"
        )
    optimizer, scaler = training.optimizer, training.scaler
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if cfg.grad_clip:
        scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.grad_clip)
    scaler.step(optimizer)  # skips the step when fp16 gradients overflowed
    scaler.update()
    training.scheduler.step()
    state.global_step += 1
    state.step_in_epoch += 1
    for name, value in terms.items():
        state.sums[name] = state.sums.get(name, 0.0) + (loss_value if name == "loss" else float(value.detach()))


def _end_epoch(state: _State, steps: int, progress: TrainProgress, desc: str, epochs: int, validate=None) -> None:
    means = {name: total / max(steps, 1) for name, total in state.sums.items()}
    if validate is not None:
        means.update(validate())
    state.history.append({"epoch": float(state.epoch + 1), **means})
    progress.log(f"{desc} epoch {state.epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4g}" for k, v in means.items()))
    state.epoch += 1
    state.step_in_epoch = 0
    state.sums = {}


def _epoch_batches(sampler: DistributedSampler, batch_size: int) -> list[list[int]]:
    indices = list(sampler)
    return [indices[i : i + batch_size] for i in range(0, len(indices) - batch_size + 1, batch_size)]


def _warmup_cosine(cfg: TrainConfig, steps_per_epoch: int):
    total = max(cfg.epochs * steps_per_epoch, 1)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _wrap_ddp(objective: nn.Module, compute: Compute) -> nn.Module:
    if not dist.is_distributed():
        return objective
    if compute.device_type == "cuda":  # one GPU per process (torchrun's LOCAL_RANK, edgekd.compute)
        index = compute.torch_device().index
        return nn.parallel.DistributedDataParallel(objective, device_ids=[index], output_device=index)
    return nn.parallel.DistributedDataParallel(objective)


def _save(objective, training: _Training, state: _State, checkpoint_dir: Path) -> None:
    if not dist.is_main():
        return
    payload: dict[str, Any] = {
        "model": objective.state_dict(),
        "optimizer": training.optimizer.state_dict(),
        "scheduler": training.scheduler.state_dict(),
        "epoch": state.epoch,
        "step_in_epoch": state.step_in_epoch,
        "global_step": state.global_step,
        "sums": dict(state.sums),
        "history": list(state.history),
    }
    if training.scaler.is_enabled():
        payload["scaler"] = training.scaler.state_dict()
    atomic_torch_save(payload, checkpoint_dir / LAST_CHECKPOINT)


def _resume(objective, training: _Training, path: Path) -> _State:
    if not path.exists():
        return _State()
    payload = load_checkpoint(path)
    if not isinstance(payload, dict):
        raise EdgekdError(f"{path}: not a resumable training checkpoint (a {type(payload).__name__})"
                          f"{restart_hint(path)}")
    try:
        objective.load_state_dict(payload["model"])  # copies the CPU-loaded tensors onto the objective's device
        training.optimizer.load_state_dict(payload["optimizer"])  # moves its state beside the parameters
        training.scheduler.load_state_dict(payload["scheduler"])
        if training.scaler.is_enabled() and "scaler" in payload:
            training.scaler.load_state_dict(payload["scaler"])
        return _State(
            epoch=payload["epoch"],
            step_in_epoch=payload["step_in_epoch"],
            global_step=payload["global_step"],
            sums=dict(payload["sums"]),
            history=list(payload["history"]),
        )
    except (LookupError, TypeError, ValueError, RuntimeError, AttributeError) as error:  # another run's or version's
        raise EdgekdError(f"{path}: not a resumable checkpoint of this training ({type(error).__name__}: "
                          f"{first_line(error)}){restart_hint(path)}") from error
