"""The same YOLOv8 model exported by edgekd and by Ultralytics: parity of each against PyTorch, latency side by side.

Both files come from one set of (seeded, random) weights. edgekd's file is `EXPORTERS.get("onnx")` on the
`YoloDetector` (unfused, dynamic batch); Ultralytics' file is its own `model.export(format="onnx")` on a copy
(Ultralytics fuses Conv+BN and fixes the batch at 1). Each file is checked against the unfused PyTorch model on
the same seeded inputs (`edgekd.export.parity.check_parity`), then both are timed on ONNX Runtime in one
`profile_side_by_side` call, whose alternating rounds let machine drift hit both alike. The p50 ratio comes with
a bootstrap interval (`edgekd.profile.stats.median_ratio`); a ratio < 1 means edgekd's file is faster.

>>> result = compare_exports("yolov8n", imgsz=320, out_dir="runs/yolo_compare")
>>> result.edgekd.parity_max_abs_diff, result.latency_ratio_p50
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from edgekd.artifacts import atomic_path, atomic_write_json, sha256_file
from edgekd.errors import EdgekdError
from edgekd.yolo.offline import require_ultralytics

RESULT_FILE = "compare.json"
PARITY_BUDGET = 1e-3  # fp32 |Δ|, as a recipe's export.parity defaults to
INPUT_SEED = 0
OUTPUT_NAME = "output0"  # Ultralytics' name for the raw head tensor; edgekd's file uses it too


@dataclass
class ExportSide:
    """One exporter's file: what was written, its parity against PyTorch, its latency."""

    exporter: str
    path: str
    size_bytes: int
    sha256: str
    nodes: int
    parity_max_abs_diff: float
    parity_budget: float
    parity_passed: bool
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float


@dataclass
class YoloCompareResult:
    """Both sides plus the settings that produced them; ratios are edgekd / Ultralytics (< 1: edgekd faster)."""

    model: str
    num_classes: int
    imgsz: int
    opset: int
    simplify: bool
    threads: int
    warmup: int
    runs: int
    rounds: int
    parity_samples: int
    seed: int
    ultralytics_version: str
    edgekd: ExportSide
    ultralytics: ExportSide
    latency_ratio_p50: float
    latency_ratio_p50_interval: tuple[float, float]
    latency_ratio_p90: float
    environment: dict[str, Any]

    @property
    def parity_passed(self) -> bool:
        return self.edgekd.parity_passed and self.ultralytics.parity_passed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "parity_passed": self.parity_passed}


def compare_exports(name: str = "yolov8n", *, imgsz: int = 320, out_dir: str | Path = "runs/yolo_compare",
                    num_classes: int = 80, opset: int = 18, simplify: bool = True, threads: int = 1,
                    warmup: int = 10, runs: int = 100, rounds: int = 5, parity_samples: int = 4,
                    parity_budget: float = PARITY_BUDGET, seed: int = 0,
                    progress: Optional[Callable[[str], None]] = None) -> YoloCompareResult:
    """Export `name` both ways under `out_dir`, check and time both; write `out_dir/compare.json` and return it.

    `progress(text)` is called before each step. Parity failures are reported in the result, not raised.
    """
    import torch

    from edgekd.yolo.models import build_yolo

    _check_settings(name, imgsz, parity_samples)
    ultralytics = require_ultralytics()
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    model = build_yolo(name, num_classes)
    files = {}
    _say(progress, "exporting with edgekd")
    files["edgekd"] = _edgekd_export(model, out_dir / "edgekd" / f"{name}.onnx", imgsz, opset, simplify)
    model.forget_traced_anchors()
    _say(progress, "exporting with Ultralytics")
    files["ultralytics"] = _ultralytics_export(model, out_dir / "ultralytics" / f"{name}.onnx", imgsz, opset,
                                               simplify)
    _say(progress, "checking parity")
    inputs = np.random.default_rng(INPUT_SEED).random((parity_samples, 3, imgsz, imgsz), dtype=np.float32)
    parity = {side: _parity(model, path, inputs, parity_budget, threads) for side, path in files.items()}
    _say(progress, "profiling both files")
    timings = _profile(files, imgsz, threads, warmup, runs, rounds)
    result = _result(name, num_classes, imgsz, opset, simplify, threads, warmup, runs, rounds, parity_samples, seed,
                     ultralytics.__version__, files, parity, timings)
    atomic_write_json(out_dir / RESULT_FILE, result.to_dict())
    return result


def _check_settings(name: str, imgsz: int, parity_samples: int) -> None:
    from edgekd.yolo.models import check_model_name

    check_model_name(name)  # before Ultralytics is needed: a typo is reported even where it is not installed
    if imgsz < 32 or imgsz % 32:
        raise EdgekdError(f"imgsz must be a multiple of 32 (YOLOv8's largest stride), got {imgsz}")
    if parity_samples < 1:
        raise EdgekdError(f"parity_samples must be >= 1, got {parity_samples}")


def _say(progress, text: str) -> None:
    if progress is not None:
        progress(text)


def _edgekd_export(model, path: Path, imgsz: int, opset: int, simplify: bool) -> Path:
    import torch

    from edgekd.export import EXPORTERS

    EXPORTERS.get("onnx").export(model, torch.zeros(1, 3, imgsz, imgsz), path, precision="fp32", opset=opset,
                                 output_names=(OUTPUT_NAME,), simplify=simplify)
    return path


def _ultralytics_export(model, path: Path, imgsz: int, opset: int, simplify: bool) -> Path:
    """Ultralytics' own `YOLO.export(format="onnx")` on a copy of the weights, moved atomically to `path`.

    The copy matters: Ultralytics' exporter fuses Conv+BN, freezes the parameters and switches the head to its
    export mode in place.
    """
    from ultralytics import YOLO
    from ultralytics.cfg import get_cfg

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ultralytics-export-", dir=path.parent) as folder:
        detector = copy.deepcopy(model.detector)
        # Ultralytics names its output after `pt_path` and reads its settings from `args` (a dict on a YOLO model).
        detector.pt_path = str(Path(folder) / f"{model.name}.pt")
        detector.args = {**vars(get_cfg()), "model": f"{model.name}.yaml", "task": "detect"}
        wrapper = YOLO(f"{model.name}.yaml", task="detect")  # a fresh 80-class model, replaced by our copy
        wrapper.model = detector
        try:
            written = wrapper.export(format="onnx", imgsz=imgsz, opset=opset, simplify=simplify, dynamic=False,
                                     batch=1, device="cpu")
        except Exception as exc:  # Ultralytics raises anything from assertion errors to exporter failures
            raise EdgekdError(f"Ultralytics' ONNX export failed: {type(exc).__name__}: {exc}") from exc
        with atomic_path(path) as tmp:
            shutil.copyfile(written, tmp)
    return path


def _parity(model, path: Path, inputs: np.ndarray, budget: float, threads: int):
    from edgekd.export.parity import check_parity

    return check_parity(model, path, inputs, runtime="onnxruntime", max_abs_diff=budget, max_metric_delta=None,
                        threads=threads)


def _profile(files: dict[str, Path], imgsz: int, threads: int, warmup: int, runs: int, rounds: int):
    from edgekd.profile.local import profile_side_by_side

    return profile_side_by_side(files, input_shape=(1, 3, imgsz, imgsz), threads=threads, warmup=warmup, runs=runs,
                                rounds=rounds)


def _side(exporter: str, path: Path, parity, timing) -> ExportSide:
    import onnx

    stats = timing.stats
    return ExportSide(exporter=exporter, path=str(path), size_bytes=path.stat().st_size, sha256=sha256_file(path),
                      nodes=len(onnx.load(str(path)).graph.node), parity_max_abs_diff=parity.max_abs_diff,
                      parity_budget=parity.budget_max_abs_diff, parity_passed=parity.passed, p50_ms=stats.p50_ms,
                      p90_ms=stats.p90_ms, p99_ms=stats.p99_ms, mean_ms=stats.mean_ms)


def _result(name, num_classes, imgsz, opset, simplify, threads, warmup, runs, rounds, parity_samples, seed,
            version, files, parity, timings) -> YoloCompareResult:
    from edgekd.profile.stats import median_ratio

    sides = {key: _side(key, files[key], parity[key], timings[key]) for key in files}
    ratio = median_ratio(timings["edgekd"].samples_ms, timings["ultralytics"].samples_ms)
    return YoloCompareResult(
        model=name, num_classes=num_classes, imgsz=imgsz, opset=opset, simplify=simplify, threads=threads,
        warmup=warmup, runs=runs, rounds=min(rounds, runs), parity_samples=parity_samples, seed=seed,
        ultralytics_version=version, edgekd=sides["edgekd"], ultralytics=sides["ultralytics"],
        latency_ratio_p50=ratio.ratio, latency_ratio_p50_interval=(ratio.low, ratio.high),
        latency_ratio_p90=sides["edgekd"].p90_ms / sides["ultralytics"].p90_ms,
        environment=timings["edgekd"].environment,
    )
