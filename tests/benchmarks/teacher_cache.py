"""Benchmark: a distillation training step with the frozen teacher's outputs cached vs computed on every step.

    python -m tests.benchmarks.teacher_cache --task layout [--steps 10] [--batch 16] [--threads 2]
    python -m tests.benchmarks.teacher_cache --task mono3d
    python -m tests.benchmarks.teacher_cache --task gaze --batch 64

layout: FGD from the full recipe's PicoDet-LCNet ×2.5 teacher to the ×1.0 student at 320×256. mono3d: TAKD at
the default widths (LiDAR teacher and TA frozen). gaze: masked-image KD from the ConvNeXt V2-Atto teacher. Random inputs of the recipes' shapes; steps alternate between
the two objectives so load on the machine hits both alike. Prints the median step time of each, their ratio and
the one-off cost of filling the cache. Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import default_collate

import edgekd.recipe.schema  # noqa: F401  (the recipe package first: it imports every task's config)
from edgekd.distill.teacher_cache import cache_teacher_outputs


def layout_case(batch: int):
    """(make objective, samples, teacher outputs of an objective) for FGD at the full recipe's sizes."""
    from edgekd.recipe.loader import load_recipe
    from edgekd.tasks.layout import common
    from edgekd.tasks.layout.stages import distill_objective

    recipe = load_recipe("recipes/layout/picodet_fgd.yaml")
    height, width = common.input_size(recipe)
    boxes = torch.tensor([[20.0, 30, 200, 60], [20, 80, 230, 200], [30, 220, 120, 300]])
    samples = [(torch.randn(3, height, width), common.pad_targets(boxes, torch.tensor([1, 0, 3]), 3))
               for _ in range(batch)]

    def make():
        torch.manual_seed(0)
        student, teacher = common.build_detector(recipe, "student"), common.build_detector(recipe, "teacher")
        objective = distill_objective(recipe, student, teacher.eval())
        objective.scale = 1.0
        return objective

    return make, samples, lambda objective: (lambda b: objective.teacher_maps(b[0]))


def mono3d_case(batch: int):
    """The same for TAKD at the default widths."""
    from edgekd.tasks.mono3d.config import Mono3dKD
    from edgekd.tasks.mono3d.frozen_cache import frozen_outputs
    from edgekd.tasks.mono3d.models import CameraDetector, LidarDetector, NetConfig
    from edgekd.tasks.mono3d.objectives import TakdObjective

    cfg = NetConfig(lift_backend="elements")  # the recipe's lift backend
    width, height = cfg.image_size
    rows, cols = cfg.grid.shape
    samples = [(torch.randn(3, height, width), torch.rand(1, height, width) * 40, torch.rand(4, rows, cols),
                torch.rand(10, rows // 2, cols // 2), (torch.rand(1, height // 4, width // 4) > 0.5).float())
               for _ in range(batch)]

    def make():
        torch.manual_seed(0)
        student = CameraDetector(cfg, "predicted", residual_branch=True)
        return TakdObjective(student, LidarDetector(cfg), CameraDetector(cfg, "lidar"), Mono3dKD(), 1.0, 3.0)

    return make, samples, lambda objective: (lambda b: frozen_outputs(objective.teacher, objective.assistant, b))


def gaze_case(batch: int):
    """The same for DFT Gaze's masked-image feature KD at the full recipe's sizes (64×64 grey eye images)."""
    from edgekd.recipe.loader import load_recipe
    from edgekd.tasks.gaze import common
    from edgekd.tasks.gaze.objectives import MaskedFeatureDistillation

    recipe = load_recipe("recipes/gaze/dft_gaze.yaml")
    samples = [(torch.randn(1, 64, 64), torch.zeros(2)) for _ in range(batch)]

    def make():
        torch.manual_seed(0)
        teacher, student = common.build_model(recipe.teacher.arch), common.build_model(recipe.distill.arch)
        return MaskedFeatureDistillation(student, teacher, recipe.distill, common.feature_channel_map(student),
                                         common.feature_channel_map(teacher))

    return make, samples, lambda objective: (lambda b: objective.teacher_maps(b[0]))


CASES = {"layout": layout_case, "mono3d": mono3d_case, "gaze": gaze_case}


def _step(objective, optimizer, batch) -> float:
    start = time.perf_counter()
    optimizer.zero_grad()
    objective(batch)["loss"].backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(CASES), required=True)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    make, samples, outputs_of = CASES[args.task](args.batch)
    live, cached = make().train(), make().train()
    start = time.perf_counter()
    carried = cache_teacher_outputs(outputs_of(cached), samples, batch_size=args.batch)
    fill = (time.perf_counter() - start) / len(samples)
    batches = {"per step": default_collate(samples), "cached": default_collate([carried[i] for i in range(len(carried))])}
    runs = {"per step": live, "cached": cached}
    optimisers = {name: torch.optim.AdamW([p for p in o.parameters() if p.requires_grad], lr=1e-4)
                  for name, o in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for step in range(args.steps + 2):  # the first two of each warm up
        for name in runs:
            elapsed = _step(runs[name], optimisers[name], batches[name])
            if step >= 2:
                times[name].append(elapsed)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.task}: batch {args.batch}, {args.threads} threads, {args.steps} alternating steps each")
    for name, value in medians.items():
        print(f"  {name:9} median step {value * 1000:8.1f} ms")
    print(f"  per step / cached: {medians['per step'] / medians['cached']:.2f}×; filling the cache: "
          f"{fill * 1000:.1f} ms per sample (once per stage)")


if __name__ == "__main__":
    main()
