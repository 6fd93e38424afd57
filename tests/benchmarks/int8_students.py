"""Benchmark: the four recipes' students at full size, ONNX Runtime int8 (its own placement) vs fp32 vs the explicit
Q/DQ file ONNX Runtime got before, timed side by side.

    python -m tests.benchmarks.int8_students --task mono3d [--runs 400] [--threads 2]
    python -m tests.benchmarks.int8_students --task layout | gaze | ibvs
    python -m tests.benchmarks.int8_students --task mono3d --set model.lift_backend=elements   # a recipe override

Random weights (the speed of a placement does not depend on them), int8 by PTQ on 64 seeded uniform inputs with
the recipe's `quant.fallback`; prints the int8 kernel counts, the file sizes and each file's p50 with its ratio to
fp32. The recipe's accuracy needs trained models: run the recipe for that. Not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

RECIPES = {"layout": "recipes/layout/picodet_fgd.yaml", "mono3d": "recipes/mono3d/takd.yaml",
           "gaze": "recipes/gaze/dft_gaze.yaml", "ibvs": "recipes/ibvs/nser.yaml"}


def student(task: str, recipe) -> tuple[object, tuple[int, ...]]:
    """The deployed student of `task` at the recipe's size (random weights) and its input shape."""
    from edgekd.models import deploy_copy

    if task == "layout":
        from edgekd.tasks.layout.common import build_detector

        return build_detector(recipe, "student").eval(), (1, 3, recipe.data.height, recipe.data.width)
    if task == "mono3d":
        from edgekd.tasks.mono3d.common import StudentMaps, build, net_config

        p2 = np.array([[721.5, 0, 609.5, 44.9], [0, 721.5, 172.8, 0.2], [0, 0, 1, 0.003]], np.float32)
        cfg = net_config(recipe, p2)
        return StudentMaps(build("student", cfg)).eval(), (1, 3, cfg.image_size[1], cfg.image_size[0])
    if task == "gaze":
        from edgekd.tasks.gaze.common import build_model

        size = recipe.data.image_size
        return deploy_copy(build_model(recipe.distill.arch)).eval(), (1, 1, size, size)
    from edgekd.tasks.ibvs.student_stages import build_student

    size = recipe.student.input_size
    return build_student(recipe).eval(), (1, 3, size, size)


def bench(task: str, runs: int, threads: int, overrides: list[str]) -> None:
    import torch

    import edgekd.recipe.schema  # noqa: F401  (registers every task's recipe section)
    from edgekd.export import BACKENDS
    from edgekd.profile.local import profile_side_by_side
    from edgekd.quant.nncf_quant import quantize_ptq
    from edgekd.recipe.loader import load_recipe

    torch.manual_seed(0)
    recipe = load_recipe(RECIPES[task], overrides)
    model, shape = student(task, recipe)
    calibration = np.random.default_rng(0).uniform(-2, 2, (64, *shape[1:])).astype(np.float32)
    batches = [torch.from_numpy(calibration[i:i + 16]) for i in range(0, 64, 16)]
    quantized = quantize_ptq(model, batches, fallback_modules=list(recipe.quant.fallback))
    onnx, example = BACKENDS.get("onnx"), torch.zeros(shape)
    with tempfile.TemporaryDirectory(prefix=f"edgekd-int8-{task}-") as folder:
        fp32 = onnx.export(model, example, Path(folder) / "fp32.onnx")
        ort = onnx.export(quantized, example, Path(folder) / "ort.onnx", precision="int8", calibration=calibration)
        explicit = onnx.export(quantized, example, Path(folder) / "explicit.onnx", precision="int8",
                               int8_placement="explicit")
        files = {"fp32": fp32, "onnxruntime int8": ort, "explicit Q/DQ int8 (before)": explicit}
        timed = profile_side_by_side({k: r.path for k, r in files.items()}, input_shape=shape, threads=threads,
                                     warmup=20, runs=runs, rounds=10)
        print(f"\n{task} {shape}; quantized by PTQ: {ort.extra['quantized_by_qat']}")
        for key, result in files.items():
            p50 = timed[key].stats.p50_ms
            print(f"{key:28} {result.size_bytes / 1e6:7.2f} MB  kernels {result.extra.get('kernels', '-')}  "
                  f"p50 {p50:7.3f} ms  {p50 / timed['fp32'].stats.p50_ms:5.2f}× the fp32 time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(RECIPES), required=True)
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe override, as `edgekd run --set`")
    args = parser.parse_args()
    bench(args.task, args.runs, args.threads, args.overrides)


if __name__ == "__main__":
    main()
