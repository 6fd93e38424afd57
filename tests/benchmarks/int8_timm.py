"""Benchmark: `edgekd export timm:NAME -p int8` — ONNX Runtime int8 vs fp32, timed side by side, and the file sizes.

    python -m tests.benchmarks.int8_timm [--models resnet18 mobilenetv3_large_100 ...] [--runs 200] [--threads 2]

For each model (random weights: no pretrained weights here) it writes 64 seeded calibration inputs, exports
ONNX fp32 + int8 (ONNX Runtime's placement), the explicit Q/DQ int8 graph (TensorRT's placement, what ONNX Runtime
used to get), and OpenVINO fp32 + int8 through `edgekd.export.standalone.export_model` — the code behind
`edgekd export timm:NAME -b onnx -b openvino -p fp32 -p int8 --calibration x.npy` — then times every file in
interleaved rounds in one process (edgekd.profile.local.profile_side_by_side). Prints one table per model: file
size, int8 kernels, p50, and the speed-up over the same runtime's fp32 file. Not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

MODELS = ("resnet18", "mobilenetv3_large_100", "efficientnet_b0", "convnext_atto")


def bench(name: str, folder: Path, runs: int, threads: int) -> None:
    import torch

    from edgekd.export.standalone import build_model_spec, export_model
    from edgekd.profile.local import profile_side_by_side

    torch.manual_seed(0)
    shape = (1, 3, 224, 224)
    calibration = np.random.default_rng(0).standard_normal((64, *shape[1:])).astype(np.float32)
    rows = export_model(build_model_spec(f"timm:{name}"), shape, folder,
                        {"onnx": ["fp32", "int8"], "openvino": ["fp32", "int8"]}, calibration=calibration)
    files = {f"{r.backend} {r.precision}": Path(r.path) for r in rows}
    files["onnx int8 (explicit Q/DQ)"] = folder / "onnx" / "model.int8.explicit.onnx"
    precisions = {key: key.split()[1] for key in files}
    timed = profile_side_by_side(files, input_shape=shape, threads=threads, warmup=20, runs=runs, rounds=5,
                                 precisions=precisions)
    by_key = {f"{r.backend} {r.precision}": r for r in rows}
    print(f"\n{name}")
    print(f"{'file':28} {'size MB':>8} {'vs fp32':>8} {'int8 kernels':>14} {'p50 ms':>8} {'speed-up':>8}  parity")
    for key, path in files.items():
        size = path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)
        fp32 = timed["onnx fp32" if key.startswith("onnx") else "openvino fp32"].stats.p50_ms
        p50 = timed[key].stats.p50_ms
        row = by_key.get(key)
        kernels = (row.extra.get("kernels") if row else None) or {}
        quantized = (row.extra.get("quantized_by_qat") if row else None) or {}
        cell = (f"{kernels['int8_convs']}/{quantized['convs']}+{kernels['int8_matmuls']}/{quantized['matmuls']}"
                if kernels and quantized else "-")
        checked = (row.parity or {}) if row else {}
        snr = checked.get("snr_db")
        parity = (f"{row.status} (SNR {float(snr) if snr is not None else float('nan'):.1f} dB, top-1 "
                  f"{checked.get('top1_agreement'):.2f}, {checked.get('execution', {}).get('inference_precision')})"
                  if checked else "-")
        fp32_file = files["onnx fp32" if key.startswith("onnx") else "openvino fp32"]
        fp32_size = fp32_file.stat().st_size + (fp32_file.with_suffix(".bin").stat().st_size
                                                 if fp32_file.suffix == ".xml" else 0)
        print(f"{key:28} {size / 1e6:8.2f} {size / fp32_size:7.2f}× {cell:>14} {p50:8.3f} {fp32 / p50:7.2f}×  {parity}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for name in args.models:
        with tempfile.TemporaryDirectory(prefix=f"edgekd-int8-{name}-") as folder:
            bench(name, Path(folder), args.runs, args.threads)


if __name__ == "__main__":
    main()
