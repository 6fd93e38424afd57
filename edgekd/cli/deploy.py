"""`edgekd deploy RUN_DIR_OR_ARTIFACT --device D --host H`: copy, verify, build (Jetson) and smoke-test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from edgekd.cli.common import JsonOpt, guarded, out
from edgekd.cli.remote_options import (
    AttemptsOpt, DeviceOpt, FleetOpt, HostOpt, IdentityOpt, InputShapeOpt, InsecureOpt, KnownHostsOpt,
    RemotePythonOpt, TrtexecOpt, parse_shape, remote_options, resolve_targets,
)
from edgekd.errors import CheckFailed, EdgekdError

RemoteDirOpt = Annotated[
    Optional[str], typer.Option("--remote-dir", help="Folder on the device (default: edgekd/<name> in the login home).")
]
_STATUS = {"ok": "[green]ok[/green]", "failed": "[bold red]failed[/bold red]", "skipped": "[yellow]skipped[/yellow]"}


@guarded
def deploy_command(
    source: Annotated[Path, typer.Argument(help="A run folder (its export/ is copied) or an .onnx/.xml file.",
                                           show_default=False)],
    device: DeviceOpt = None,
    host: HostOpt = None,
    fleet: FleetOpt = None,
    remote_dir: RemoteDirOpt = None,
    input_shape: InputShapeOpt = None,
    known_hosts: KnownHostsOpt = None,
    identity: IdentityOpt = None,
    insecure_accept_new_host: InsecureOpt = False,
    remote_python: RemotePythonOpt = "python3",
    trtexec: TrtexecOpt = "trtexec",
    attempts: AttemptsOpt = 3,
    as_json: JsonOpt = False,
) -> None:
    """Copy artifacts to each device, verify their sha256 there, build engines on Jetsons, run a smoke inference.

    Exit 1 when a smoke inference failed, 2 when a device could not be reached or a hash did not match.
    """
    from edgekd.deploy import deploy

    targets = resolve_targets(device, host, fleet, identity)
    if not targets:
        raise EdgekdError("deploy needs a device: --device ID --host USER@ADDRESS, or --fleet FILE")
    options = remote_options(known_hosts, identity, insecure_accept_new_host, remote_python, attempts, trtexec)
    reports = [deploy(source, target, remote_dir=remote_dir, options=options, input_shape=parse_shape(input_shape))
               for target in targets]
    if as_json:
        rows = [report.model_dump(mode="json") for report in reports]
        out.print(json.dumps(rows, indent=2), highlight=False, markup=False, soft_wrap=True)
    else:
        out.print(_table(reports))
    failed = [f"{r.name}:{item.artifact}" for r in reports for item in r.items if item.status == "failed"]
    if failed:
        raise CheckFailed(f"{len(failed)} artifact(s) failed on the device: {', '.join(failed)}")


def _table(reports) -> Table:
    table = Table("device", "remote folder", "artifact", "step", "runtime", "status", "detail", title="edgekd deploy")
    for report in reports:
        for item in report.items:
            table.add_row(escape(report.name), escape(report.remote_dir), escape(item.artifact), item.step,
                          item.runtime, _STATUS[item.status], escape(item.detail))
    return table
