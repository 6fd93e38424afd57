"""`edgekd doctor`: what this installation can run."""

from __future__ import annotations

import json

from rich.markup import escape
from rich.table import Table

from edgekd import api
from edgekd.cli.common import JsonOpt, guarded, out
from edgekd.devices import devices_dir


@guarded
def doctor_command(as_json: JsonOpt = False) -> None:
    """Show available runtimes, optional extras and device specs."""
    info = api.doctor()
    if as_json:
        out.print(json.dumps(info, indent=2), highlight=False, markup=False)
        return
    out.print(f"edgekd {info['edgekd']}")
    runtimes = Table("runtime", "available", "version", "how to get it", title="Runtimes")
    for row in info["runtimes"]:
        runtimes.add_row(row["runtime"], _mark(row["available"]), row["version"] or "-", escape(row["hint"]))
    extras = Table("extra", "installed", "missing packages", title="Optional extras")
    for row in info["extras"]:
        extras.add_row(row["extra"], _mark(row["installed"]), ", ".join(row["missing"]) or "-")
    out.print(runtimes, extras)
    for row in info["runtimes"]:
        if row["note"]:
            out.print(f"{row['runtime']} {escape(row['note'])}", highlight=False)
    _print_training(info["training"])
    folder = escape(str(devices_dir()))
    out.print(f"devices ({folder}): " + (", ".join(info["devices"]) or "none found"))


def _mark(flag: bool) -> str:
    return "[green]yes[/green]" if flag else "[yellow]no[/yellow]"


def _print_training(training: dict) -> None:
    gpus = training["cuda"]
    if gpus:
        table = Table("device", "name", "memory", "compute capability", "bf16", title="Training: CUDA GPUs")
        for gpu in gpus:
            table.add_row(gpu["device"], escape(gpu["name"]), f"{gpu['memory_gib']} GiB", gpu["capability"],
                          _mark(gpu["bf16"]))
        out.print(table)
    else:
        build = f"torch built for CUDA {training['torch_cuda_build']}" if training["torch_cuda_build"] else \
            "CPU-only torch"
        out.print(f"training: no CUDA GPU ({build}); recipes train on the CPU", highlight=False)
    out.print(f"training on the CPU in bf16: {training['cpu_bf16']}", highlight=False)
