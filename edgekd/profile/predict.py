"""Predicted latency of an ONNX model on a device, from the calibrated per-layer roofline.

Each kernel costs `max(compute, memory) + t0`; the device YAML gives the roofs, `devices/calibration.json` the
fitted efficiencies (made by `edgekd predict --refit` from the published table only). A (device, runtime,
precision) with no calibration rows is refused unless `allow_uncalibrated`, and then flagged.

>>> result = predict("model.onnx", device="rpi5", runtime="ncnn", precision="fp32")
>>> result["latency_ms"], result["calibrated"]
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Optional

from edgekd.devices import devices_dir, load_device
from edgekd.errors import EdgekdError
from edgekd.profile.fit import Factors, Sample, predict_ms
from edgekd.profile.graph import graph_nodes
from edgekd.profile.roofline import Target, node_work, roofs, target

CALIBRATION_FILE = "calibration.json"


def calibration_path(folder: Optional[Path] = None) -> Path:
    return devices_dir(folder) / CALIBRATION_FILE


def load_calibration(path: Optional[Path] = None) -> dict[str, Any]:
    path = Path(path) if path else calibration_path()
    if not path.is_file():
        raise EdgekdError(f"calibration file not found: {path} (make it with `edgekd predict --refit`)")
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise EdgekdError(f"{path}: not valid JSON ({error})") from None


def predict(model: str | Path, device: str, runtime: str, precision: str, *, threads: Optional[int] = None,
            unit: Optional[str] = None, power_mode: Optional[str] = None, calibration: Optional[Path] = None,
            allow_uncalibrated: bool = False) -> dict[str, Any]:
    """Predicted batch-1 latency (ms) with its provenance, calibration error and per-op-kind split."""
    spec = load_device(device)
    tgt = target(spec, runtime, precision, unit=unit, threads=threads, power_mode=power_mode)
    doc = load_calibration(calibration)
    factors, calibrated, notes = _factors_for(Factors.from_dict(doc["factors"]), spec, tgt, doc, allow_uncalibrated)
    nodes = graph_nodes(model)
    rf = roofs(spec, tgt)
    sample = Sample(tgt, rf, _threads(threads, rf.cores), node_work(nodes, tgt))
    (total,), (by_kind,) = predict_ms(factors, [sample])
    return {
        "mode": "predicted", "model": str(model), "latency_ms": round(total, 3),
        "device": spec.id, "runtime": runtime, "unit": tgt.unit, "precision": precision,
        "compute_precision": tgt.compute_precision, "threads": sample.threads if tgt.unit == "cpu" else None,
        "power_mode": power_mode or spec.default_power_mode, "calibrated": calibrated,
        "calibration": _pair_error(doc, tgt), "by_kind_ms": {k: round(v, 3) for k, v in by_kind.items()},
        "macs": sum(n.macs for n in nodes), "kernels": len(sample.work), "roof": rf.roof,
        "latency_basis": "batch 1, inference only, as the calibration rows (benchmark loop averages)",
        "notes": notes,
    }


def _threads(threads: Optional[int], cores: int) -> int:
    if threads is not None and threads < 1:
        raise EdgekdError(f"--threads must be at least 1 (got {threads})")
    return min(threads or cores, cores)


def _factors_for(factors: Factors, spec: Any, tgt: Target, doc: dict[str, Any], allow: bool) -> tuple[Factors, bool, list[str]]:
    if tgt.group in factors.eff:
        return factors, True, []
    calibrated = sorted(g for g in factors.eff if g.startswith(f"{tgt.device}/"))
    if not allow:
        raise EdgekdError(
            f"no calibration data for {tgt.group} (calibrated on {tgt.device}: {', '.join(calibrated) or 'none'}); "
            f"measure a few models and run `edgekd predict --calibrate MEASUREMENTS.csv --device {tgt.device}`, "
            "or pass --allow-uncalibrated for an unvalidated estimate")
    eff, basis = _borrowed_eff(factors, spec, tgt, doc)
    factors = Factors(**{**factors.to_dict(), "eff": {**factors.eff, tgt.group: eff}})
    return factors, False, [f"UNCALIBRATED: no rows for {tgt.group}; efficiency borrowed from {basis}"]


def _borrowed_eff(factors: Factors, spec: Any, tgt: Target, doc: dict[str, Any]) -> tuple[float, str]:
    """Median efficiency of calibrated groups of the same runtime and unit whose roof is of the same kind
    (published peaks and nominal cores x GHz roofs are not comparable), else of the same unit."""
    roof_kind = roofs(spec, tgt).roof.split()[0]
    groups = doc.get("groups", {})

    def same_roof(group: str) -> bool:
        return groups.get(group, {}).get("roof", "").split()[:1] == [roof_kind]

    for label, match in ((tgt.family, lambda g: g.split("/")[1:3] == tgt.family.split("/")),
                         (f"unit {tgt.unit}", lambda g: g.split("/")[2] == tgt.unit)):
        values = [v for g, v in factors.eff.items() if match(g) and same_roof(g)]
        if values:
            return statistics.median(values), f"the median of {len(values)} {label} group(s)"
    raise EdgekdError(f"no calibration data for {tgt.group} and nothing comparable to borrow from")


def _pair_error(doc: dict[str, Any], tgt: Target) -> dict[str, Any]:
    group = doc.get("groups", {}).get(tgt.group, {})
    lomo = doc.get("lomo", {}).get("per_group", {}).get(tgt.group)
    return {"group": tgt.group, "source": group.get("source"), "models": group.get("models", []),
            "fit_error": group.get("fit_error"), "lomo_error": lomo}
