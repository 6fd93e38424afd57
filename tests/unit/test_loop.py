"""The training loop: learns, checkpoints, resumes to the same weights, stops clearly on NaN."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from edgekd.artifacts import load_checkpoint
from edgekd.distill.loop import LAST_CHECKPOINT, fit
from edgekd.errors import TrainingDiverged
from edgekd.recipe.common import TrainConfig


class Regression(nn.Module):
    """A linear model with a frozen bias term and dropout, so per-step seeding matters."""

    def __init__(self, nan_at_call: int | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.frozen = nn.Linear(4, 1)
        self.frozen.requires_grad_(False)
        self.dropout = nn.Dropout(0.2)
        self.calls = 0
        self.nan_at_call = nan_at_call

    def forward(self, batch):
        x, y = batch
        self.calls += 1
        loss = ((self.linear(self.dropout(x)) + self.frozen(x) - y) ** 2).mean()
        if self.nan_at_call is not None and self.calls >= self.nan_at_call:
            loss = loss * float("nan")
        return {"loss": loss}


def dataset(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]))


def make(nan_at_call=None) -> Regression:
    torch.manual_seed(1)
    return Regression(nan_at_call)


CFG = TrainConfig(epochs=3, batch_size=8, lr=0.05, weight_decay=0.0, checkpoint_every_steps=5)


def test_fit_learns_and_checkpoints(tmp_path: Path) -> None:
    model = make()
    frozen_before = model.frozen.weight.clone()
    result = fit(model, dataset(), CFG, seed=0, checkpoint_dir=tmp_path, desc="t")
    assert result.steps == 3 * 8
    assert [h["epoch"] for h in result.history] == [1.0, 2.0, 3.0]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert torch.equal(model.frozen.weight, frozen_before)
    saved = load_checkpoint(tmp_path / LAST_CHECKPOINT)
    assert saved["global_step"] == 24 and saved["epoch"] == 3


def test_resume_mid_epoch_reaches_identical_weights(tmp_path: Path) -> None:
    reference = make()
    fit(reference, dataset(), CFG, seed=0, checkpoint_dir=tmp_path / "ref", desc="ref")

    interrupted = make(nan_at_call=11)  # dies during step 11: the last checkpoint is at step 10
    with pytest.raises(TrainingDiverged):
        fit(interrupted, dataset(), CFG, seed=0, checkpoint_dir=tmp_path / "run", desc="run")
    assert load_checkpoint(tmp_path / "run" / LAST_CHECKPOINT)["global_step"] == 10

    resumed = make()
    result = fit(resumed, dataset(), CFG, seed=0, checkpoint_dir=tmp_path / "run", desc="run")
    assert result.resumed_at_step == 10
    assert torch.equal(resumed.linear.weight, reference.linear.weight)
    assert torch.equal(resumed.linear.bias, reference.linear.bias)


def test_nan_loss_names_the_step_and_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged) as caught:
        fit(make(nan_at_call=7), dataset(), CFG, seed=0, checkpoint_dir=tmp_path, desc="teacher")
    message = str(caught.value)
    assert "step 7" in message and "nan" in message
    assert str(tmp_path / LAST_CHECKPOINT) in message


def test_nan_before_any_checkpoint_says_so(tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged, match="none"):
        fit(make(nan_at_call=1), dataset(), CFG, seed=0, checkpoint_dir=tmp_path, desc="teacher")


def test_a_finished_checkpoint_is_not_trained_again(tmp_path: Path) -> None:
    fit(make(), dataset(), CFG, seed=0, checkpoint_dir=tmp_path, desc="t")
    again = make()
    result = fit(again, dataset(), CFG, seed=0, checkpoint_dir=tmp_path, desc="t")
    assert again.calls == 0 and result.steps == 24


def test_bf16_autocast_on_the_cpu_learns_and_resumes_to_identical_weights(tmp_path: Path) -> None:
    bf16 = CFG.model_copy(update={"device": "cpu", "precision": "bf16"})
    reference = make()
    result = fit(reference, dataset(), bf16, seed=0, checkpoint_dir=tmp_path / "ref", desc="ref")
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert reference.linear.weight.dtype == torch.float32  # autocast computes in bf16, the weights stay fp32

    with pytest.raises(TrainingDiverged):
        fit(make(nan_at_call=11), dataset(), bf16, seed=0, checkpoint_dir=tmp_path / "run", desc="run")
    resumed = make()
    fit(resumed, dataset(), bf16, seed=0, checkpoint_dir=tmp_path / "run", desc="run")
    assert torch.equal(resumed.linear.weight, reference.linear.weight)

    fp32 = make()
    fit(fp32, dataset(), CFG, seed=0, checkpoint_dir=tmp_path / "fp32", desc="fp32")
    assert not torch.equal(fp32.linear.weight, reference.linear.weight)  # bf16 really ran


@pytest.fixture
def storages_tagged_as_cuda():
    """torch.save records where each storage lived; tag CPU storages "cuda:0", as a GPU run's checkpoint is."""
    registry = torch.serialization._package_registry
    entry = (0, lambda obj: "cuda:0" if obj.device.type == "cpu" else None, lambda obj, location: None)
    registry.insert(0, entry)

    def stop() -> None:
        if entry in registry:
            registry.remove(entry)

    yield stop
    stop()


def test_a_checkpoint_written_on_a_gpu_resumes_on_the_cpu(tmp_path: Path, storages_tagged_as_cuda) -> None:
    reference = make()
    with pytest.raises(TrainingDiverged):  # the GPU run: its last checkpoint is at step 10
        fit(make(nan_at_call=11), dataset(), CFG, seed=0, checkpoint_dir=tmp_path / "run", desc="run")
    storages_tagged_as_cuda()  # from here on, this "machine" is the CPU-only one
    with (tmp_path / "run" / LAST_CHECKPOINT).open("rb") as handle:
        assert b"cuda:0" in handle.read()
    with pytest.raises(RuntimeError, match="CUDA"):  # what a load without map_location would do here
        torch.load(tmp_path / "run" / LAST_CHECKPOINT, weights_only=True)
    fit(reference, dataset(), CFG, seed=0, checkpoint_dir=tmp_path / "ref", desc="ref")
    resumed = make()
    result = fit(resumed, dataset(), CFG, seed=0, checkpoint_dir=tmp_path / "run", desc="run")
    assert result.resumed_at_step == 10 and torch.equal(resumed.linear.weight, reference.linear.weight)


def test_a_batch_moves_whatever_holds_its_tensors() -> None:
    from collections import namedtuple

    from edgekd.distill.loop import to_device

    Pair = namedtuple("Pair", "x y")
    batch = (torch.ones(1), [torch.zeros(1), "name"], {"mask": torch.ones(1)}, Pair(torch.ones(1), 3))
    moved = to_device(batch, torch.device("meta"))
    assert moved[0].is_meta and moved[1][0].is_meta and moved[1][1] == "name" and moved[2]["mask"].is_meta
    assert isinstance(moved[3], Pair) and moved[3].x.is_meta and moved[3].y == 3
