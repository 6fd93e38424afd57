"""Benchmark: training throughput (images/s) of each recipe's teacher and student at full size, fp32 vs bf16
autocast on the CPU, timed side by side.

    python -m tests.benchmarks.train_precision --task gaze|layout|mono3d|ibvs|all [--steps 20] [--rounds 3]
                                               [--batch N] [--threads 2] [--json PATH]
    python -m tests.benchmarks.train_precision --task mono3d --set model.bev_channels=128   # a recipe override

Random weights in train mode, one fixed random batch of the shape each network trains on (layout: pages at
the recipe's size; mono3d: the LiDAR teacher's pillar grid from a random point cloud, the TAKD camera student's
image; gaze: the eye image; ibvs: the teacher perception's training crop, the student's squeezed frame), at the
recipe's training batch size unless --batch. One step: zero_grad, forward under `Compute("cpu", precision)`'s
autocast, a scalar made from every floating output (mean of squares; no task loss, no teacher in the step),
backward, AdamW. Three warm-up steps per precision, then `--rounds` rounds of `--steps` timed steps, fp32 then
bf16 in each round, so load on the machine hits both alike; prints the median images/s of each and their ratio,
with how this CPU does bf16. Not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

RECIPES = {"layout": "recipes/layout/picodet_fgd.yaml", "mono3d": "recipes/mono3d/takd.yaml",
           "gaze": "recipes/gaze/dft_gaze.yaml", "ibvs": "recipes/ibvs/nser.yaml"}
PRECISIONS = ("fp32", "bf16")
WARMUP_STEPS = 3
LIDAR_POINTS = 20_000  # points per random LiDAR sweep for the mono3d teacher's pillar grid


@dataclass
class Network:
    """One network to time: how to build it, how to make a batch of its input, and the recipe's training sizes."""

    task: str
    role: str
    build: Callable[[], Any]                 # → nn.Module (random weights)
    sample_shape: tuple[int, ...]            # one input, without the batch axis
    batch: int                               # the recipe's training batch size
    train: Any                               # the recipe's TrainConfig (lr, weight_decay)
    make_input: Optional[Callable[[int], Any]] = None  # batch → input tensor; default: standard normal
    skip: Optional[str] = None               # why it is not timed


def networks(task: str, recipe) -> list[Network]:
    """The teacher and the student of `task` at the recipe's size, with their training inputs and batch sizes."""
    if task == "layout":
        from edgekd.tasks.layout.common import build_detector, input_size

        shape = (3, *input_size(recipe))
        return [Network(task, role, lambda role=role: build_detector(recipe, role), shape,
                        getattr(recipe, role).train.batch_size, getattr(recipe, role).train)
                for role in ("teacher", "student")]
    if task == "mono3d":
        from edgekd.tasks.mono3d.common import build, net_config
        from edgekd.tasks.mono3d.render3d import kitti_camera

        # The network-resolution P2 the data stage records for the synthetic scenes (KITTI's scaled to the size).
        cfg = net_config(recipe, kitti_camera(recipe.data.width, recipe.data.height).P2())
        rows, cols = cfg.grid.shape
        student_cfg = recipe.student
        return [
            Network(task, "teacher", lambda: build("teacher", cfg), (4, rows, cols), recipe.teacher.train.batch_size,
                    recipe.teacher.train, make_input=lambda n: random_pillars(n, cfg.grid)),
            # the TAKD student as the distill stage builds it: the residual branch when CMRD is on
            Network(task, "student", lambda: build("student", cfg, residual_branch=student_cfg.kd.cmrd,
                                                   fuse_residual=student_cfg.fuse_residual),
                    (3, cfg.image_size[1], cfg.image_size[0]), student_cfg.train.batch_size, student_cfg.train),
        ]
    if task == "gaze":
        from edgekd.tasks.gaze.common import IN_CHANS, build_model

        shape = (IN_CHANS, recipe.data.image_size, recipe.data.image_size)
        return [Network(task, "teacher", lambda: build_model(recipe.teacher.arch), shape,
                        recipe.teacher.train.batch_size, recipe.teacher.train),
                Network(task, "student", lambda: build_model(recipe.distill.arch), shape,
                        recipe.distill.train.batch_size, recipe.distill.train)]
    if task == "ibvs":
        from edgekd.tasks.ibvs.perception import crop_size
        from edgekd.tasks.ibvs.stages import build_teacher
        from edgekd.tasks.ibvs.student_stages import build_student

        crop, size = crop_size(recipe), recipe.student.input_size
        return [Network(task, "teacher", lambda: build_teacher(recipe), (3, crop, crop),
                        recipe.perception.train.batch_size, recipe.perception.train),
                Network(task, "student", lambda: build_student(recipe), (3, size, size),
                        recipe.student.train.batch_size, recipe.student.train)]
    raise ValueError(f"unknown task {task!r}")


def random_pillars(batch: int, grid) -> Any:
    """(batch, 4, Zb, Xb) pillar features of random point clouds inside the grid and its height band."""
    import torch

    from edgekd.tasks.mono3d.bev import pillar_features
    from edgekd.tasks.mono3d.dataset import CAMERA_HEIGHT_M

    sweeps = []
    for _ in range(batch):
        x = torch.empty(LIDAR_POINTS).uniform_(*grid.x_range)
        y = torch.empty(LIDAR_POINTS).uniform_(*grid.y_range)
        z = torch.empty(LIDAR_POINTS).uniform_(*grid.z_range)
        sweeps.append(pillar_features(torch.stack([x, y, z], dim=1), grid, CAMERA_HEIGHT_M))
    return torch.stack(sweeps)


def output_loss(out: Any) -> Any:
    """Σ mean(t²) over every floating tensor in `out` (tensors, tuples/lists and dicts, nested); None if none."""
    import torch

    if isinstance(out, torch.Tensor):
        return out.float().square().mean() if out.is_floating_point() else None
    parts = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else ()
    terms = [term for term in (output_loss(part) for part in parts) if term is not None]
    return sum(terms[1:], terms[0]) if terms else None


def train_step(net, optimizer, x, compute) -> None:
    optimizer.zero_grad(set_to_none=True)
    with compute.autocast():
        out = net(x)
        loss = output_loss(out)
    if loss is None:
        raise RuntimeError("the network's output holds no floating tensor to make a loss from")
    loss.backward()
    optimizer.step()


def images_per_second(net, optimizer, x, compute, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        train_step(net, optimizer, x, compute)
    return steps * x.shape[0] / (time.perf_counter() - start)


def bench_network(spec: Network, steps: int, rounds: int, batch: Optional[int], seed: int = 0) -> dict[str, Any]:
    import torch

    from edgekd.compute import Compute
    from edgekd.models.complexity import count_parameters

    batch = batch or spec.batch
    row: dict[str, Any] = {"task": spec.task, "role": spec.role, "batch": batch,
                           "input_shape": [batch, *spec.sample_shape]}
    torch.manual_seed(seed)
    try:
        net = spec.build()
    except ImportError as error:  # e.g. a YOLO teacher without the `yolo` extra
        return {**row, "skipped": f"cannot build: {error}"}
    net.train()
    row["parameters"] = count_parameters(net)
    x = spec.make_input(batch) if spec.make_input else torch.randn(batch, *spec.sample_shape)
    optimizer = torch.optim.AdamW(net.parameters(), lr=spec.train.lr, weight_decay=spec.train.weight_decay)
    computes = {precision: Compute("cpu", precision) for precision in PRECISIONS}
    for compute in computes.values():
        for _ in range(WARMUP_STEPS):
            train_step(net, optimizer, x, compute)
    timed: dict[str, list[float]] = {precision: [] for precision in PRECISIONS}
    for _ in range(rounds):
        for precision, compute in computes.items():
            timed[precision].append(images_per_second(net, optimizer, x, compute, steps))
    median = {precision: statistics.median(values) for precision, values in timed.items()}
    return {**row, "fp32_img_s": median["fp32"], "bf16_img_s": median["bf16"],
            "bf16_over_fp32": median["bf16"] / median["fp32"], "rounds_img_s": timed}


def format_row(row: dict[str, Any]) -> str:
    head = f"{row['task']:7} {row['role']:8}"
    shape = "×".join(str(v) for v in row["input_shape"])
    if "skipped" in row:
        return f"{head} {shape:>17}  skipped: {row['skipped']}"
    return (f"{head} {row['parameters']:>11,} params  input {shape:>17}  batch {row['batch']:4}  "
            f"fp32 {row['fp32_img_s']:8.1f} img/s  bf16 {row['bf16_img_s']:8.1f} img/s  "
            f"bf16/fp32 {row['bf16_over_fp32']:5.2f}×")


def bench(tasks: list[str], steps: int, rounds: int, batch: Optional[int], threads: int, overrides: list[str],
          json_path: Optional[Path]) -> list[dict[str, Any]]:
    import torch

    import edgekd.recipe.schema  # noqa: F401  (registers every task's recipe section)
    from edgekd.compute import cpu_bf16
    from edgekd.recipe.loader import load_recipe

    torch.set_num_threads(threads)
    cpu = {"cpu_bf16": cpu_bf16(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "torch": torch.__version__, "threads": threads, "steps": steps, "rounds": rounds,
           "warmup_steps": WARMUP_STEPS}
    print(f"CPU: bf16 {cpu['cpu_bf16']}, torch {cpu['torch']} kernels {cpu['cpu_capability']}, {threads} threads; "
          f"{rounds} rounds of {steps} training steps per precision after {WARMUP_STEPS} warm-up steps, "
          "median images/s", flush=True)
    rows = []
    for task in tasks:
        recipe = load_recipe(RECIPES[task], overrides)
        for spec in networks(task, recipe):
            row = {**bench_network(spec, steps, rounds, batch), **cpu}
            print(format_row(row), flush=True)
            rows.append(row)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"wrote {json_path}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=[*sorted(RECIPES), "all"], required=True)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per precision and round")
    parser.add_argument("--rounds", type=int, default=3, help="fp32/bf16 rounds; the median is reported")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: each recipe's training batch)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe override, as `edgekd run --set` (one task only)")
    args = parser.parse_args()
    if args.task == "all" and args.overrides:
        parser.error("--set needs a single --task: recipe keys differ between tasks")
    for name in ("steps", "rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be at least 1")
    tasks = sorted(RECIPES) if args.task == "all" else [args.task]
    bench(tasks, args.steps, args.rounds, args.batch, args.threads, args.overrides, args.json)


if __name__ == "__main__":
    main()
