"""A frozen teacher's outputs computed once per training sample instead of once per step.

When the teacher is frozen (eval mode, no gradient) and the training samples are not augmented, what the teacher
gives for a sample is the same in every epoch. Running it on every step is then pure overhead — for feature KD
often a third or more of a step. `cache_teacher_outputs` runs it once over the dataset and returns the dataset
with each item extended by that sample's outputs (a dict of tensors, batched by the default collate like the
rest), which an objective reads instead of calling the teacher. The numbers are the same up to floating-point
summation order (the teacher saw other batch compositions).

The cache is held in memory; above `max_bytes` (measured on one sample, times the dataset's length) nothing is
cached and None is returned, so the caller keeps running the teacher on every step.

>>> data = cache_teacher_outputs(lambda batch: {"logits": teacher(batch[0])}, train_set)
>>> images, targets, cached = data[0]
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

MAX_CACHE_BYTES = 6 * 1024**3
Outputs = Callable[[tuple], dict[str, torch.Tensor]]  # a collated batch → {name: (N, ...) tensor}


class WithTeacherOutputs(Dataset):
    """`dataset` with each item followed by its cached teacher outputs: (*item, {name: tensor})."""

    def __init__(self, dataset: Dataset, outputs: dict[str, torch.Tensor]) -> None:
        self.dataset, self.outputs = dataset, outputs

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple:
        return (*self.dataset[index], {name: value[index] for name, value in self.outputs.items()})


def cache_bytes(outputs: Outputs, dataset: Dataset) -> int:
    """The cache's size for `dataset`: one sample's outputs times the number of samples."""
    with torch.no_grad():
        sample = outputs(default_collate([dataset[0]]))
    return len(dataset) * sum(value.numel() * value.element_size() for value in sample.values())


def cache_teacher_outputs(outputs: Outputs, dataset: Dataset, *, batch_size: int = 32,
                          progress: Optional[Callable[[int], None]] = None,
                          max_bytes: int = MAX_CACHE_BYTES) -> Optional[WithTeacherOutputs]:
    """`dataset` carrying `outputs(batch)` for every sample, or None when that would exceed `max_bytes`.

    `outputs` must be deterministic for a sample (a frozen model in eval mode); `progress(n)` is called as n
    samples are done.
    """
    if len(dataset) == 0 or cache_bytes(outputs, dataset) > max_bytes:
        return None
    parts: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            for name, value in outputs(batch).items():
                parts.setdefault(name, []).append(value.detach())
            if progress is not None:
                progress(len(batch[0]))
    return WithTeacherOutputs(dataset, {name: torch.cat(values) for name, values in parts.items()})


def cached_or_live(outputs: Outputs, dataset: Dataset, console, what: str) -> Dataset:
    """For a training stage: `dataset` carrying `outputs` (with a progress bar on `console`, labelled `what`), or
    `dataset` itself, with a one-line note, when the cache would not fit in memory."""
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        job = bar.add_task(f"{what}, once per sample", total=len(dataset))
        cached = cache_teacher_outputs(outputs, dataset, progress=lambda n: bar.advance(job, n))
    if cached is None:
        console.print(f"{what} would not fit in memory (over {MAX_CACHE_BYTES / 1024**3:.0f} GiB): computing them "
                      "on every step")
        return dataset
    return cached
