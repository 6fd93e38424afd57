"""Predicted latency of a run's ONNX files on every device with calibration data, for the report.

Only calibrated (device, runtime, unit, compute precision) groups are predicted: an uncalibrated estimate next to
measured numbers would read as a datum. A fp32 file is predicted at fp32 and fp16 (runtimes build fp16 from it);
an int8 (Q/DQ) file at int8. Failures never stop the report: each becomes a note.

>>> source = PredictionSource("student", "float", "export/onnx/student.onnx", "fp32", metric=16.5)
>>> predictions, notes = predict_files([source], run_dir)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from edgekd.errors import EdgekdError
from edgekd.report.schema import Prediction

# The precisions a runtime may run a file of this precision at.
DEPLOY_PRECISIONS = {"fp32": ("fp32", "fp16"), "int8": ("int8",)}


@dataclass(frozen=True)
class PredictionSource:
    role: str
    variant: str
    path: str  # relative to the run folder
    precision: str  # of the file
    metric: float | None


@dataclass(frozen=True)
class _Pair:
    device: str
    runtime: str
    unit: str
    precision: str


def predict_files(sources: list[PredictionSource], run_dir: Path) -> tuple[list[Prediction], list[str]]:
    """Predictions for every source on every calibrated pair, and a note for each thing that failed."""
    try:
        pairs = calibrated_pairs()
    except EdgekdError as error:
        return [], [f"predicted latency skipped: {error}"]
    predictions, notes = [], []
    for source in sources:
        for pair in pairs:
            if pair.precision not in DEPLOY_PRECISIONS.get(source.precision, ()):
                continue
            try:
                predictions.append(_predict(source, pair, run_dir))
            except Exception as error:  # a predictor bug must not cost the run its report
                notes.append(f"predicted latency of {source.path} on {pair.device}/{pair.runtime}/{pair.precision} "
                             f"failed: {type(error).__name__}: {error}")
    return predictions, _dedupe(notes)


def calibrated_pairs() -> list[_Pair]:
    """(device, runtime, unit, requested precision) whose group has calibration rows; one per group
    (ncnn "fp32" and "fp16" compute alike on an A76: the first asked, fp32, stands for both)."""
    from edgekd.profile.predict import load_calibration

    calibrated = set(load_calibration()["factors"]["eff"])
    seen, pairs = set(), []
    for pair, group in _all_pairs():
        if group in calibrated and group not in seen:
            seen.add(group)
            pairs.append(pair)
    return pairs


def _all_pairs() -> Iterator[tuple[_Pair, str]]:
    from edgekd.devices import PRECISIONS, list_devices, load_device
    from edgekd.profile.roofline import target

    for device in list_devices():
        spec = load_device(device)
        for runtime, units in spec.runtimes.items():
            for unit, precisions in units.items():
                for precision in (p for p in PRECISIONS if p in precisions and unit != "dla"):
                    yield _Pair(device, runtime, unit, precision), target(spec, runtime, precision, unit=unit).group


def _predict(source: PredictionSource, pair: _Pair, run_dir: Path) -> Prediction:
    from edgekd.profile.predict import predict

    result = predict(run_dir / source.path, pair.device, pair.runtime, pair.precision, unit=pair.unit)
    return Prediction(
        role=source.role, variant=source.variant, source=source.path, precision=pair.precision,
        compute_precision=result["compute_precision"], device=pair.device, runtime=pair.runtime, unit=pair.unit,
        threads=result["threads"], latency_ms=result["latency_ms"], metric=source.metric,
        calibrated=result["calibrated"], **_calibration(result["calibration"]),
    )


def _calibration(info: dict[str, Any]) -> dict[str, Any]:
    return {"calibration_group": info["group"], "calibration_models": info.get("models") or [],
            "fit_error": info.get("fit_error"), "lomo_error": info.get("lomo_error")}


def _dedupe(notes: list[str]) -> list[str]:
    return list(dict.fromkeys(notes))
