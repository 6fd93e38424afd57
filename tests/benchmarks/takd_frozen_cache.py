"""Benchmark: one TAKD training step with the frozen teacher's and TA's outputs cached vs computed per step.

    python -m tests.benchmarks.takd_frozen_cache [--steps 20] [--batch 16] [--threads 2]

Default (full-recipe) widths, random scenes of the recipe's shapes; steps alternate between the two objectives so
load on the machine hits both alike. Prints the median step time of each and their ratio. Not a test: pytest
does not collect this file.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import default_collate

import edgekd.recipe.schema  # noqa: F401  (the recipe package first: it imports every task's config)
from edgekd.tasks.mono3d.config import Mono3dKD
from edgekd.tasks.mono3d.frozen_cache import with_frozen_outputs
from edgekd.tasks.mono3d.models import CameraDetector, LidarDetector, NetConfig
from edgekd.tasks.mono3d.objectives import TakdObjective


def _scenes(count: int, cfg: NetConfig) -> list[tuple[torch.Tensor, ...]]:
    width, height = cfg.image_size
    rows, cols = cfg.grid.shape
    return [(torch.randn(3, height, width), torch.rand(1, height, width) * 40, torch.rand(4, rows, cols),
             torch.rand(10, rows // 2, cols // 2), (torch.rand(1, height // 4, width // 4) > 0.5).float())
            for _ in range(count)]


def _objective(cfg: NetConfig) -> tuple[TakdObjective, torch.optim.Optimizer]:
    torch.manual_seed(0)
    student = CameraDetector(cfg, "predicted", residual_branch=True)
    objective = TakdObjective(student, LidarDetector(cfg), CameraDetector(cfg, "lidar"), Mono3dKD(), 1.0, 3.0)
    return objective.train(), torch.optim.AdamW(student.parameters(), lr=1e-4)


def _step(objective, optimizer, batch) -> float:
    start = time.perf_counter()
    optimizer.zero_grad()
    objective(batch)["loss"].backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = NetConfig(lift_backend="elements")  # the recipe's lift backend
    scenes = _scenes(args.batch, cfg)
    (per_step, per_step_opt), (cached, cached_opt) = _objective(cfg), _objective(cfg)
    start = time.perf_counter()
    carried = with_frozen_outputs(cached.teacher, cached.assistant, scenes)
    fill = time.perf_counter() - start
    plain_batch = default_collate(scenes)
    cached_batch = default_collate([carried[i] for i in range(len(carried))])
    times = {"per step": [], "cached": []}
    for step in range(args.steps + 2):  # the first two pairs warm up
        a = _step(per_step, per_step_opt, plain_batch)
        b = _step(cached, cached_opt, cached_batch)
        if step >= 2:
            times["per step"].append(a)
            times["cached"].append(b)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"batch {args.batch}, {args.threads} threads, {args.steps} alternating steps each")
    for name, value in medians.items():
        print(f"  {name:9} median step {value * 1000:8.1f} ms")
    print(f"  per step / cached: {medians['per step'] / medians['cached']:.2f}×; filling the cache: "
          f"{fill / args.batch * 1000:.1f} ms per scene (once per stage)")


if __name__ == "__main__":
    main()
