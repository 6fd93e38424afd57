"""`edgekd profile ARTIFACT`: latency on this host, or on devices over SSH (several at once)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from edgekd.cli.common import JsonOpt, err, guarded, out
from edgekd.cli.remote_options import (
    AttemptsOpt, DeviceOpt, FleetOpt, HostOpt, IdentityOpt, InputShapeOpt, InsecureOpt, KnownHostsOpt,
    RemotePythonOpt, TrtexecOpt, parse_shape, remote_options, resolve_targets,
)
from edgekd.errors import EdgekdError
from edgekd.export import runtime_names

RuntimeOpt = Annotated[
    Optional[str], typer.Option("--runtime", help=f"{' | '.join(runtime_names())} (default: from the file suffix).")
]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="Inference threads (default: every usable core).")]
WarmupOpt = Annotated[int, typer.Option("--warmup", help="Untimed runs before timing.")]
RunsOpt = Annotated[int, typer.Option("--runs", help="Timed runs.")]
PrecisionOpt = Annotated[
    Optional[str], typer.Option("--precision", help="Precision of an OpenVINO IR (fp32/fp16/int8).")
]
OutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write the JSON results to this file.")]


@guarded
def profile_command(
    artifact: Annotated[Path, typer.Argument(
        help="A model file (.onnx, .xml, .param, .pte, .tflite), or a run folder: every file its export stage "
             "checked, timed on each device.", show_default=False)],
    runtime: RuntimeOpt = None,
    threads: ThreadsOpt = None,
    warmup: WarmupOpt = 10,
    runs: RunsOpt = 100,
    input_shape: InputShapeOpt = None,
    precision: PrecisionOpt = None,
    device: DeviceOpt = None,
    host: HostOpt = None,
    fleet: FleetOpt = None,
    known_hosts: KnownHostsOpt = None,
    identity: IdentityOpt = None,
    insecure_accept_new_host: InsecureOpt = False,
    remote_python: RemotePythonOpt = "python3",
    trtexec: TrtexecOpt = "trtexec",
    attempts: AttemptsOpt = 3,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure latency here, or on each --device/--host pair (or --fleet file) over SSH, concurrently.

    Exit 2 when any device could not be profiled; the others are still reported.
    """
    from edgekd.paths import check_output_file
    from edgekd.profile.measure import profile_artifact
    from edgekd.profile.remote import ProfileSettings

    check_output_file(output, "--output")
    settings = ProfileSettings(runtime=runtime, threads=threads, warmup=warmup, runs=runs,
                               input_shape=parse_shape(input_shape), precision=precision)
    targets = resolve_targets(device, host, fleet, identity)
    options = remote_options(known_hosts, identity, insecure_accept_new_host, remote_python, attempts, trtexec)
    outcomes = profile_artifact(artifact, settings, targets, options)
    rows = [outcome.to_dict() for outcome in outcomes]
    if output is not None:
        from edgekd.artifacts import atomic_write_json

        atomic_write_json(output, rows)
    if as_json:
        out.print(json.dumps(rows, indent=2), highlight=False, markup=False, soft_wrap=True)
    else:
        out.print(_table(outcomes))
    _fail_on_errors(outcomes, show=as_json)


def _fail_on_errors(outcomes, show: bool) -> None:
    failed = [outcome for outcome in outcomes if outcome.error]
    for outcome in failed if show else []:  # the table already shows them
        err.print(f"[red]{escape(outcome.name)}:[/red] {escape(outcome.error)}", soft_wrap=True)
    if failed:
        names = ", ".join(f"{o.name} ({o.artifact})" if o.artifact else o.name for o in failed)
        what = "measurements" if any(o.artifact for o in outcomes) else "devices"
        raise EdgekdError(f"{len(failed)} of {len(outcomes)} {what} failed: {names}")


def _table(outcomes) -> Table:
    from edgekd.profile.clock_check import summary

    # The CPU and the rest of the environment are in --json; a table wider than a terminal helps nobody.
    several = any(outcome.artifact for outcome in outcomes)
    table = Table("name", "device", *(["file"] if several else []), "runtime", "thr", "p50", "p90", "p99", "cold",
                  "RSS MB", "mode / error", title="edgekd profile (ms)")
    for outcome in outcomes:
        row, result = outcome.to_dict(), outcome.result
        where = [escape(row["name"]), escape(row["device"] or "this host"),
                 *([escape(outcome.artifact or "")] if several else [])]
        if result is None:
            table.add_row(*where, *["-"] * 7, f"[red]{escape(row['error'])}[/red]")
            continue
        s = result.stats
        rss = "-" if result.peak_rss_mb is None else f"{result.peak_rss_mb:.1f}"
        untrusted = summary(result.environment.get("clock_check"))
        mode = result.mode + (f" [red]{escape(untrusted)}[/red]" if untrusted else "")
        table.add_row(*where, result.runtime, str(result.threads), f"{s.p50_ms:.3g}", f"{s.p90_ms:.3g}",
                      f"{s.p99_ms:.3g}", f"{result.cold_start_ms:.0f}", rss, mode)
    return table
