"""Options shared by `edgekd profile` and `edgekd deploy` for reaching devices over SSH."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rich.markup import escape

from edgekd.cli.common import err
from edgekd.errors import EdgekdError

DeviceOpt = Annotated[
    Optional[list[str]], typer.Option("--device", "-d", help="Device id (rpi5, jetson-orin-nano, ...), with --host.")
]
HostOpt = Annotated[
    Optional[list[str]], typer.Option("--host", help="USER@ADDRESS[:PORT] of the matching --device (repeatable).")
]
FleetOpt = Annotated[
    Optional[Path], typer.Option("--fleet", help="YAML file of devices: {name, device, host, port, user, key_file}.")
]
KnownHostsOpt = Annotated[
    Optional[Path], typer.Option("--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts).")
]
IdentityOpt = Annotated[
    Optional[Path], typer.Option("--identity", "-i", help="SSH private key (default: ssh-agent and ~/.ssh keys).")
]
InsecureOpt = Annotated[
    bool, typer.Option("--insecure-accept-new-host", help="Record an UNKNOWN host key (never a changed one).")
]
RemotePythonOpt = Annotated[
    str, typer.Option("--remote-python", help="Python on the device, with numpy and the runtime.")
]
TrtexecOpt = Annotated[
    str, typer.Option("--trtexec", help="trtexec on a Jetson (default: PATH, then /usr/src/tensorrt/bin).")
]
AttemptsOpt = Annotated[int, typer.Option("--attempts", help="Connection attempts per device (exponential backoff).")]
InputShapeOpt = Annotated[
    Optional[str], typer.Option("--input-shape", help="e.g. 1,3,224,224 (default: the model's, dynamic batch as 1).")
]


def parse_shape(text: Optional[str]) -> Optional[tuple[int, ...]]:
    if not text:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise EdgekdError(f"--input-shape {text!r}: expected sizes like 1,3,224,224") from None
    if not shape or min(shape) < 1:
        raise EdgekdError(f"--input-shape {text!r}: expected positive sizes like 1,3,224,224")
    return shape


def resolve_targets(devices: Optional[list[str]], hosts: Optional[list[str]], fleet: Optional[Path],
                    identity: Optional[Path]):
    """Devices from --device/--host pairs and/or a fleet file; none means this host."""
    from edgekd.profile.targets import load_fleet, targets_from_cli, unique_names

    targets = targets_from_cli(devices or [], hosts or [], key_file=identity) if devices or hosts else []
    return unique_names(targets + (load_fleet(fleet) if fleet is not None else []))


def remote_options(known_hosts: Optional[Path], identity: Optional[Path], accept_new: bool, python: str,
                   attempts: int, trtexec: str = "trtexec"):
    from edgekd.profile.remote import RemoteOptions

    if attempts < 1:
        raise EdgekdError(f"--attempts must be >= 1, got {attempts}")
    return RemoteOptions(known_hosts=known_hosts, identity=identity, accept_new_host=accept_new, python=python,
                         trtexec=trtexec, attempts=attempts, warn=_warn)


def _warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True)
