"""Fit the latency model on the published table, measure it leave-one-model-out, write devices/calibration.json.

    edgekd predict --refit            # the committed devices/calibration.json comes from this
    edgekd predict --calibrate my.csv --device rpi5   # refit rpi5's efficiencies from your own measurements
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

from edgekd.devices import devices_dir, load_device
from edgekd.errors import EdgekdError
from edgekd.profile import zoo
from edgekd.profile.calibration_data import CalRow, read_measurements, read_published
from edgekd.profile.fit import Factors, Sample, fit, predict_ms
from edgekd.profile.roofline import node_work, roofs, target

log = logging.getLogger(__name__)
PUBLISHED_CSV = "device_latency_calibration.csv"


def samples_from_rows(rows: list[CalRow], folder: Path) -> tuple[list[Sample], list[dict[str, str]]]:
    """Samples for the usable rows, and {id, reason} for every row left out."""
    samples, skipped = [], []
    for row in rows:
        reason = row.skip
        if reason is None:
            try:
                samples.append(_sample(row, folder))
            except (zoo.ModelUnavailable, EdgekdError) as error:
                reason = str(error)
        if reason is not None:
            log.info("calibration row %s (%s) skipped: %s", row.id, row.model, reason)
            skipped.append({"id": row.id, "model": row.model, "reason": reason})
    return samples, skipped


def _sample(row: CalRow, folder: Path) -> Sample:
    spec = load_device(row.device, folder)
    tgt = target(spec, row.runtime, row.precision, unit=row.unit)
    nodes = zoo.model_nodes(row.model, row.input_size, folder)
    rf = roofs(spec, tgt)
    return Sample(tgt, rf, row.threads or rf.cores, node_work(nodes, tgt), row.latency_ms, row.model, row.id)


def lomo(samples: list[Sample]) -> list[dict[str, Any]]:
    """Refit without each model, predict its rows. A row whose group has no other model is 'unpredictable'."""
    results = []
    for model in sorted({s.model for s in samples}):
        train = [s for s in samples if s.model != model]
        held = [s for s in samples if s.model == model]
        factors = fit(train)
        seen = {s.target.group for s in train}
        predicted, _ = predict_ms(factors, held)
        for sample, value in zip(held, predicted):
            results.append({
                "id": sample.row_id, "model": model, "group": sample.target.group, "device": sample.target.device,
                "measured_ms": sample.latency_ms, "predicted_ms": round(value, 4),
                "error_pct": round(100 * (value - sample.latency_ms) / sample.latency_ms, 2),
                "predictable": sample.target.group in seen,
            })
    return results


def summarise(errors: list[float]) -> dict[str, Any]:
    """n, median |%| error, MAPE, and the share within ±10 % / ±25 % (nn-Meter's accuracy metric)."""
    if not errors:
        return {"n": 0}
    absolute = [abs(e) for e in errors]
    return {"n": len(errors), "median_abs_pct": round(statistics.median(absolute), 1),
            "mape": round(statistics.fmean(absolute), 1),
            "within_10pct": round(sum(a <= 10 for a in absolute) / len(absolute), 3),
            "within_25pct": round(sum(a <= 25 for a in absolute) / len(absolute), 3)}


def lomo_tables(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per device, per group and overall summaries of the predictable rows; unpredictable rows listed apart."""
    usable = [r for r in results if r["predictable"]]
    by_device, by_group = defaultdict(list), defaultdict(list)
    for r in usable:
        by_device[r["device"]].append(r["error_pct"])
        by_group[r["group"]].append(r["error_pct"])
    return {
        "overall": summarise([r["error_pct"] for r in usable]),
        "per_device": {d: summarise(e) for d, e in sorted(by_device.items())},
        "per_group": {g: summarise(e) for g, e in sorted(by_group.items())},
        "unpredictable_rows": [r["id"] for r in results if not r["predictable"]],
    }


def in_sample(factors: Factors, samples: list[Sample]) -> dict[str, Any]:
    predicted, _ = predict_ms(factors, samples)
    by_group = defaultdict(list)
    for sample, value in zip(samples, predicted):
        by_group[sample.target.group].append(100 * (value - sample.latency_ms) / sample.latency_ms)
    return {g: summarise(e) for g, e in sorted(by_group.items())}


def refit_published(csv_path: str | Path, folder: Optional[Path] = None, with_lomo: bool = True) -> dict[str, Any]:
    """The whole calibration document: factors, rows used and skipped, fit and LOMO errors."""
    from edgekd.artifacts import sha256_file

    folder = devices_dir(folder)
    for name in ("YOLO11n",):  # refresh the committed ultralytics summary when the extra is installed
        zoo.save_summary(name, 640, folder)
    samples, skipped = samples_from_rows(read_published(csv_path), folder)
    factors = fit(samples)
    groups = _group_info(samples, factors)
    doc = {"version": 1, "generated_by": "edgekd predict --refit", "data": Path(csv_path).name,
           "data_sha256": sha256_file(csv_path), "factors": factors.to_dict(), "groups": groups,
           "rows_used": [s.row_id for s in samples], "rows_skipped": skipped}
    if with_lomo:
        results = lomo(samples)
        doc["lomo"] = {**lomo_tables(results), "rows": results}
    return doc


def _group_info(samples: list[Sample], factors: Factors, source: str = "published") -> dict[str, Any]:
    fit_errors = in_sample(factors, samples)
    info: dict[str, Any] = {}
    for sample in samples:
        entry = info.setdefault(sample.target.group, {"source": source, "roof": sample.roofs.roof, "models": [],
                                                      "fit_error": fit_errors[sample.target.group]})
        if sample.model not in entry["models"]:
            entry["models"].append(sample.model)
    return info


def calibrate_device(measurements: str | Path, device: str, doc: dict[str, Any],
                     folder: Optional[Path] = None) -> dict[str, Any]:
    """A copy of calibration `doc` with `device`'s group efficiencies refitted on the user's rows."""
    folder = devices_dir(folder)
    load_device(device, folder)
    rows = read_measurements(measurements, device)
    samples, skipped = samples_from_rows(rows, folder)
    if skipped:
        raise EdgekdError(f"{measurements}: row {skipped[0]['id']} unusable: {skipped[0]['reason']}")
    if not samples:
        raise EdgekdError(f"{measurements}: no measurement rows")
    base = Factors.from_dict(doc["factors"])
    factors = fit(samples, init=base, only_groups={s.target.group for s in samples})
    groups = _group_info(samples, factors, source=f"user: {Path(measurements).name}")
    return {**doc, "factors": factors.to_dict(), "groups": {**doc.get("groups", {}), **groups}}
