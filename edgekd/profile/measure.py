"""`edgekd profile` in one call: on this host, or on each device over SSH at once — one result type.

>>> outcomes = profile_artifact("student.onnx", ProfileSettings(runs=200))            # this host
>>> outcomes = profile_artifact("student.onnx", settings, targets=[target_from_host("rpi5", "pi@10.0.0.5")])
>>> outcomes[0].result.mode
'measured-remote'
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from edgekd.errors import EdgekdError
from edgekd.profile.local import ProfileResult
from edgekd.profile.remote import FleetOutcome, ModelFiles, ProfileSettings, RemoteOptions, profile_fleet
from edgekd.device_runner.common import RunnerError, resolve_shape, usable_cores
from edgekd.profile.targets import DeviceTarget


def profile_artifact(
    artifact: str | Path, settings: ProfileSettings = ProfileSettings(), targets: Sequence[DeviceTarget] = (),
    options: RemoteOptions = RemoteOptions(),
) -> list[FleetOutcome]:
    """Measure on every target concurrently, or on this host when there are none. A run folder: every file its
    export stage checked, on every target (edgekd.profile.run_folder)."""
    if Path(artifact).is_dir():
        from edgekd.profile.run_folder import profile_run_folder

        return profile_run_folder(Path(artifact), settings, targets, options)
    if targets:
        return profile_fleet(artifact, targets, settings, options)
    return [FleetOutcome(None, result=profile_here(artifact, settings))]


def profile_here(artifact: str | Path, settings: ProfileSettings = ProfileSettings()) -> ProfileResult:
    """This host's CPU, through edgekd.profile.local (.onnx with ONNX Runtime, .xml with OpenVINO)."""
    from edgekd.profile.local import profile_side_by_side
    from edgekd.profile.sessions import open_session, runtime_for

    settings.validate()
    files = ModelFiles.of(artifact)
    runtime = files.runtime(settings.runtime)
    if runtime != runtime_for(files.primary):
        raise EdgekdError(f"{files.primary.name}: on this host it runs with {runtime_for(files.primary)}, "
                          f"not {runtime}; profile {runtime} on a device with --host, or convert the file")
    threads = settings.threads or usable_cores()
    precision = settings.precision or "fp32"
    declared = open_session(files.primary, runtime, threads=1, precision=precision).input_shape
    try:
        shape = resolve_shape(declared, list(settings.input_shape) if settings.input_shape else None)
    except RunnerError as error:
        raise EdgekdError(f"{files.primary.name}: {error}") from None
    results = profile_side_by_side({"model": files.primary}, input_shape=shape, threads=threads,
                                   warmup=settings.warmup, runs=settings.runs, rounds=1,
                                   precisions={"model": precision})
    return results["model"]
