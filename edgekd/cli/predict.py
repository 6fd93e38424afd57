"""`edgekd predict MODEL.onnx --device D --runtime R --precision P`: calibrated per-layer latency prediction.

Also `--calibrate MEASUREMENTS.csv --device D` (refit a device on your measurements) and `--refit` (rebuild
devices/calibration.json from the published table, with the leave-one-model-out error).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from edgekd.cli.common import JsonOpt, guarded, out
from edgekd.errors import EdgekdError
from edgekd.export import PRECISIONS, all_runtime_names
from edgekd.paths import check_output_file
from edgekd.registry import unknown_name_message

_PUBLISHED = Path(__file__).resolve().parents[3] / "shared" / "data" / "device_latency_calibration.csv"
PathOpt = Optional[Path]


@guarded
def predict_command(
    model: Annotated[PathOpt, typer.Argument(help="ONNX model file.", show_default=False)] = None,
    device: Annotated[Optional[str], typer.Option("--device", "-d", help="Device id or YAML path.")] = None,
    runtime: Annotated[str, typer.Option("--runtime", "-r", help="|".join(all_runtime_names()))] = "onnxruntime",
    precision: Annotated[str, typer.Option("--precision", "-p", help="|".join(PRECISIONS))] = "fp32",
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores of the mode).")] = None,
    unit: Annotated[Optional[str], typer.Option(help="cpu|gpu (default: the runtime's default on the device).")] = None,
    power_mode: Annotated[Optional[str], typer.Option(help="nvpmodel / clock mode from the device YAML.")] = None,
    allow_uncalibrated: Annotated[bool, typer.Option(help="Estimate an uncalibrated pair (flagged).")] = False,
    calibrate: Annotated[PathOpt, typer.Option(help="Refit --device from your measurements CSV.")] = None,
    refit: Annotated[bool, typer.Option(help="Rebuild the calibration file from the published table.")] = False,
    data: Annotated[PathOpt, typer.Option(help="Published table for --refit.")] = None,
    calibration_file: Annotated[PathOpt, typer.Option(help="Calibration JSON (default devices/calibration.json).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Predict batch-1 latency of an ONNX model on an edge device from its calibrated roofline."""
    from edgekd.profile import predict as api

    target_file = calibration_file or api.calibration_path()
    if refit or calibrate is not None:  # both write the calibration file: refuse a path it cannot be before fitting
        check_output_file(target_file, "--calibration-file")
    if refit:
        return _show_refit(_refit(data or _PUBLISHED, target_file), target_file, as_json)
    if calibrate is not None:
        return _show_calibrate(_calibrate(calibrate, device, target_file), device, target_file, as_json)
    _check_names(model, device, runtime, precision)
    result = api.predict(model, device, runtime, precision, threads=threads, unit=unit, power_mode=power_mode,
                         calibration=target_file, allow_uncalibrated=allow_uncalibrated)
    _show(result, as_json)


def _check_names(model: PathOpt, device: Optional[str], runtime: str, precision: str) -> None:
    from edgekd.devices.spec import PRECISIONS, RUNTIMES

    if model is None:
        raise EdgekdError("missing MODEL.onnx (or use --calibrate / --refit)")
    if device is None:
        raise EdgekdError("missing --device")
    if runtime not in RUNTIMES:
        raise EdgekdError(unknown_name_message("runtime", runtime, list(RUNTIMES)))
    if precision not in PRECISIONS:
        raise EdgekdError(unknown_name_message("precision", precision, list(PRECISIONS)))


def _refit(data: Path, target_file: Path) -> dict[str, Any]:
    from edgekd.artifacts import atomic_write_json
    from edgekd.profile.calibrate import refit_published

    if not Path(data).is_file():
        raise EdgekdError(f"published calibration table not found: {data} (pass --data)")
    doc = refit_published(data)
    atomic_write_json(target_file, doc)
    return doc


def _calibrate(measurements: Path, device: Optional[str], target_file: Path) -> dict[str, Any]:
    from edgekd.artifacts import atomic_write_json
    from edgekd.profile.calibrate import calibrate_device
    from edgekd.profile.predict import load_calibration

    if device is None:
        raise EdgekdError("--calibrate needs --device")
    doc = calibrate_device(measurements, device, load_calibration(target_file))
    atomic_write_json(target_file, doc)
    return doc


def _show(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print(json.dumps(result, indent=2), highlight=False, markup=False, soft_wrap=True)
        return
    flag = "" if result["calibrated"] else " [bold yellow](UNCALIBRATED)[/bold yellow]"
    out.print(f"{escape(result['model'])}: [bold]{result['latency_ms']:.3g} ms[/bold] predicted on "
              f"{result['device']} / {result['runtime']} ({result['unit']}, {result['compute_precision']}){flag}")
    table = Table("op kind", "ms", title="ms per op kind")
    for kind, ms in result["by_kind_ms"].items():
        table.add_row(kind, f"{ms:.3g}")
    out.print(table)
    lomo = result["calibration"]["lomo_error"]
    out.print("calibration (leave-one-model-out): " + (json.dumps(lomo) if lomo else "not measurable for this pair"))
    for note in result["notes"]:
        out.print(f"[yellow]note:[/yellow] {escape(note)}")


def _show_refit(doc: dict[str, Any], path: Path, as_json: bool) -> None:
    tables = {k: v for k, v in doc["lomo"].items() if k != "rows"}
    if as_json:
        out.print(json.dumps(tables, indent=2), highlight=False, markup=False, soft_wrap=True)
        return
    table = Table("device", "rows", "median |err| %", "within ±10 %", "within ±25 %", title="leave-one-model-out")
    for device, s in [*tables["per_device"].items(), ("all", tables["overall"])]:
        table.add_row(device, str(s["n"]), str(s.get("median_abs_pct")), str(s.get("within_10pct")), str(s.get("within_25pct")))
    out.print(table)
    out.print(f"{len(doc['rows_used'])} rows used, {len(doc['rows_skipped'])} skipped; wrote {escape(str(path))}")


def _show_calibrate(doc: dict[str, Any], device: str, path: Path, as_json: bool) -> None:
    mine = {g: e for g, e in doc["factors"]["eff"].items() if g.startswith(f"{device}/")}
    if as_json:
        out.print(json.dumps({"device": device, "eff": mine, "file": str(path)}, indent=2), highlight=False, markup=False, soft_wrap=True)
        return
    for group, eff in sorted(mine.items()):
        out.print(f"{escape(group)}: efficiency {eff:.4g} ({escape(str(doc['groups'][group]['source']))})")
    out.print(f"wrote {escape(str(path))}")
