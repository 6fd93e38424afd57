"""Every file of a run's export stage timed on each device in one command: `edgekd profile runs/NAME --device rpi5
--host pi@10.0.0.5`.

The files are those the export stage wrote and checked (export/artifacts.json rows that passed, or were built
for the device; not the PTQ baseline), of every runtime the device runner executes — ONNX Runtime, OpenVINO, ncnn, ExecuTorch, LiteRT —
each timed with the precision its row records. Devices run in parallel, files one after another on each, so two
files never share a board's cores.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from edgekd.errors import EdgekdError
from edgekd.profile.remote import FleetOutcome, ProfileSettings, RemoteOptions, profile_fleet
from edgekd.profile.targets import DeviceTarget

PROFILED_STATUSES = ("passed", "built")


def run_folder_files(folder: Path) -> list[dict[str, Any]]:
    """The artifacts.json rows of files the device runner can time, with their absolute path."""
    from edgekd.export import BACKENDS, backend_names
    from edgekd.paths import read_text

    listing = Path(folder) / "export" / "artifacts.json"
    if not listing.is_file():
        raise EdgekdError(f"{folder}: not a run folder with an export stage ({listing} is missing)")
    try:
        rows = json.loads(read_text(listing, "export listing"))
    except ValueError as error:
        raise EdgekdError(f"{listing}: not JSON ({error})") from None
    runnable = {BACKENDS.get(n).runtime for n in backend_names() if BACKENDS.get(n).remote_runner}
    picked = []
    for row in rows if isinstance(rows, list) else []:
        if row.get("status") not in PROFILED_STATUSES or row.get("runtime") not in runnable or not row.get("path") \
                or row.get("variant") == "ptq":  # the PTQ baseline is reported beside QAT, not shipped
            continue
        path = Path(folder) / row["path"]  # the export stage records paths relative to the run folder
        if not path.is_file():
            raise EdgekdError(f"{listing}: {row['path']} is listed but missing; rerun the export stage")
        picked.append({**row, "path": path})
    if not picked:
        raise EdgekdError(f"{listing}: no checked file the device runner can time")
    return picked


def profile_run_folder(folder: Path, settings: ProfileSettings, targets: Sequence[DeviceTarget],
                       options: RemoteOptions) -> list[FleetOutcome]:
    """One outcome per (file, device); a file that fails on a device is that outcome's error."""
    if not targets:
        raise EdgekdError("a run folder is timed on devices (--device/--host or --fleet); on this host the "
                          "recipe's profile stage times it: edgekd run RECIPE --stages profile")
    outcomes = []
    for row in run_folder_files(folder):
        per_file = dataclasses.replace(settings, runtime=row["runtime"], precision=row["precision"])
        label = f"{row['role']} {row['variant']} {row['runtime']} {row['precision']}"
        try:
            found = profile_fleet(row["path"], targets, per_file, options)
        except EdgekdError as error:  # the file itself (a shape the runner refuses): every device's outcome
            found = [FleetOutcome(target, error=str(error)) for target in targets]
        outcomes += [dataclasses.replace(outcome, artifact=label) for outcome in found]
    return outcomes
