"""`edgekd export`: a recipe's export stage, or any timm model to every backend, each with parity."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from edgekd import api
from edgekd.cli.common import JsonOpt, RunsDirOpt, SetOpt, err, guarded, out
from edgekd.errors import CheckFailed, EdgekdError
from edgekd.export import BACKENDS, PRECISIONS, backend_names
from edgekd.paths import check_output_dir

_OPT_IN = [name for name in backend_names() if not BACKENDS.get(name).default_precisions]
BackendOpt = Annotated[
    Optional[list[str]],
    typer.Option("--backend", "-b", help=f"{' | '.join(backend_names())} (repeatable; default: those a recipe "
                                         f"exports by default; {', '.join(_OPT_IN)} on request)."),
]
PrecisionOpt = Annotated[
    Optional[list[str]],
    typer.Option("--precision", "-p", help=f"{' | '.join(PRECISIONS)} (repeatable; default: fp32 and fp16 where "
                                           "supported)."),
]


@guarded
def export_command(
    source: Annotated[str, typer.Argument(help="A recipe .yaml, or timm:NAME (random weights unless --weights).",
                                          show_default=False)],
    backend: BackendOpt = None,
    precision: PrecisionOpt = None,
    input_shape: Annotated[str, typer.Option("--input-shape", help="N,C,H,W for a timm model.")] = "1,3,224,224",
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Local state_dict for a timm model.")] = None,
    calibration: Annotated[
        Optional[Path], typer.Option("--calibration", help="int8: a .npy of calibration inputs (N,C,H,W float32).")
    ] = None,
    parity_inputs: Annotated[
        Optional[Path], typer.Option("--parity-inputs", help="A .npy of inputs every file is checked on (N,C,H,W "
                                                             "float32, e.g. your own photographs; default: seeded "
                                                             "noise).")
    ] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder for a timm model.")] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset.")] = 18,
    tensorrt_target: Annotated[str, typer.Option("--tensorrt-target", help="Target TensorRT version for the lint.")] = "10.3",
    set_: SetOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Recipe: re-run the export stage.")] = False,
    runs_dir: RunsDirOpt = api.DEFAULT_RUNS_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Export to the backends with a parity check per file (exit 1 when one fails); `edgekd doctor` lists them.

    A recipe runs its pipeline up to the export stage (resuming what is done). A timm model is exported
    on its own: `edgekd export timm:mobilenetv3_large_100 --input-shape 1,3,224,224`.
    """
    if source.endswith((".yaml", ".yml")):
        _export_recipe(Path(source), set_ or [], force, runs_dir)
        return
    rows = _export_model(source, backend, precision, input_shape, weights, calibration, out_dir, opset, tensorrt_target,
                         parity_inputs)
    if as_json:
        out.print(json.dumps([row.to_dict() for row in rows], indent=2), highlight=False, markup=False, soft_wrap=True)
    else:
        out.print(_table(rows))
    failed = [f"{r.backend} {r.precision}: {r.reason}" for r in rows if r.status == "failed"]
    if failed:
        raise CheckFailed("export failed — " + "; ".join(failed))


def _export_recipe(path: Path, overrides: list[str], force: bool, runs_dir: Path) -> None:
    check_output_dir(runs_dir, "--runs-dir")
    recipe = api.load_recipe(path, overrides)
    api.export_recipe(recipe, force=force, runs_dir=runs_dir, console=err)
    out.print(f"artifacts: {runs_dir / recipe.name / 'export' / 'artifacts.json'}")


def _export_model(spec, backend, precision, input_shape, weights, calibration, out_dir, opset, tensorrt_target,
                  parity_inputs=None):
    from edgekd.export import EXPORTERS
    from edgekd.export.orchestrate import ExportSettings
    from edgekd.export.standalone import build_model_spec

    ExportSettings(opset=opset, tensorrt_target=tensorrt_target)  # checks both before any work
    shape = _shape(input_shape)
    defaults = [name for name in backend_names() if EXPORTERS.get(name).default_precisions]  # as a recipe's
    backends = _backends(backend or defaults, precision, EXPORTERS)
    folder = out_dir or Path(api.DEFAULT_RUNS_DIR) / "export" / spec.replace(":", "-")
    check_output_dir(folder, "--out")
    calib = _load_npy(calibration, shape) if calibration else None
    checked_on = _load_npy(parity_inputs, shape, "--parity-inputs") if parity_inputs else None
    model = build_model_spec(spec, weights)
    with err.status("exporting") as status, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        rows = api.export_model(model, shape, folder, backends, calibration=calib, parity_inputs=checked_on,
                                opset=opset, target_tensorrt=tensorrt_target,
                                progress=lambda what: status.update(f"exporting {what}"))
    for message in dict.fromkeys(str(w.message) for w in caught if "simplification skipped" in str(w.message)):
        err.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True)
    return rows


def _backends(names: list[str], precisions: Optional[list[str]], exporters) -> dict[str, list[str]]:
    chosen = {}
    for name in names:
        exporter = exporters.get(name)
        if precisions:
            chosen[name] = list(precisions)  # checked against the backend's capabilities, refused with a reason
        else:
            chosen[name] = [p for p in ("fp32", "fp16") if p in exporter.precisions]
    return chosen


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise EdgekdError(f"--input-shape '{text}': expected N,C,H,W integers, e.g. 1,3,224,224") from None
    if len(shape) != 4 or min(shape) < 1:
        raise EdgekdError(f"--input-shape '{text}': expected four positive sizes N,C,H,W")
    return shape


def _load_npy(path: Path, shape: tuple[int, ...], option: str = "--calibration"):
    import numpy as np

    if not path.is_file():
        raise EdgekdError(f"{option}: {path} not found")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise EdgekdError(f"{option}: {path} is not a plain .npy array ({exc})") from None
    if data.ndim != 4 or tuple(data.shape[1:]) != shape[1:] or not len(data):
        raise EdgekdError(f"{option}: {path} has shape {data.shape}, expected (N, {', '.join(map(str, shape[1:]))})"
                          " with N >= 1")
    return data.astype(np.float32, copy=False)


def _table(rows) -> Table:
    table = Table("backend", "precision", "status", "SNR dB", "top-1 agree", "max |Δ|", "int8 kernels", "size",
                  "file / note", title="edgekd export")
    for row in rows:
        mark = {"passed": "[green]passed[/green]", "failed": "[bold red]FAILED[/bold red]"}.get(row.status, row.status)
        parity = row.parity or {}
        snr = parity.get("snr_db")
        snr = "-" if snr is None else snr if isinstance(snr, str) else f"{snr:.1f}"
        agree = "-" if parity.get("top1_agreement") is None else f"{parity['top1_agreement']:.2f}"
        diff = "-" if parity.get("max_abs_diff") is None else f"{parity['max_abs_diff']:.2e}"
        size = "-" if row.size_bytes is None else f"{row.size_bytes / 2**20:.2f} MiB"
        note = row.path if row.status in ("passed", "bundle") else (row.reason or row.path or "")
        table.add_row(row.backend, row.precision, mark, snr, agree, diff, _kernels(row), size, escape(str(note)))
    return table


def _kernels(row) -> str:
    kernels, quantized = row.extra.get("kernels"), row.extra.get("quantized_by_qat")
    if not kernels or not quantized:
        return "-"
    return f"{kernels['int8_convs']}/{quantized['convs']} convs"
