"""Latency of an ONNX or OpenVINO IR artifact measured on a device over SSH, one device or a fleet at once.

Each attempt: connect (host key verified) → fresh temp dir on the device → copy the artifact and
the device runner (edgekd/device_runner) → it checks every file's sha256 on the device, then times the model with the
device's python3, numpy and runtime → one JSON line back → the temp dir is removed. The result is the
same `ProfileResult` local profiling returns, with mode "measured-remote" and the device's environment.

>>> target = target_from_host("rpi5", "pi@10.0.0.5")
>>> result = profile_remote("student.onnx", target, ProfileSettings(threads=4, runs=200))
>>> result.stats.p50_ms, result.environment["cpu"]
"""

from __future__ import annotations

import contextlib
import json
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from edgekd.errors import EdgekdError
from edgekd.export import PRECISIONS
from edgekd.device_runner.common import RESULT_MARKER
from edgekd.profile.local import ProfileResult, rounded_samples
from edgekd.profile.model_check import check_model_file
from edgekd.profile.ssh import Session, SshOptions, connect, with_retries
from edgekd.profile.stats import LatencyStats
from edgekd.profile.targets import DeviceTarget, target_from_host

__all__ = ["ProfileSettings", "RemoteOptions", "RefusedOnDevice", "FleetOutcome", "profile_remote", "profile_fleet",
           "target_from_host"]

RUNNER = "edgekd_runner"  # edgekd/device_runner, copied whole, is this folder on the device
_RUNNER_SOURCE = Path(__file__).resolve().parent.parent / "device_runner"


def runner_files(under: str = "") -> dict[str, Path]:
    """The device runner's files keyed by their path on the device (inside `under`, relative to the workdir)."""
    folder = posixpath.join(under, RUNNER) if under else RUNNER
    return {posixpath.join(folder, *path.relative_to(_RUNNER_SOURCE).parts): path
            for path in sorted(_RUNNER_SOURCE.rglob("*.py"))}


@dataclass(frozen=True)
class RemoteOptions(SshOptions):
    python: str = "python3"  # the device's interpreter with numpy and the runtime installed
    trtexec: str = "trtexec"  # on a Jetson; the runner falls back to JetPack's /usr/src/tensorrt/bin/trtexec


class RefusedOnDevice(EdgekdError):
    """A file on the device is not the one that was sent (sha256 mismatch or missing): nothing was run."""


@dataclass(frozen=True)
class ProfileSettings:
    runtime: Optional[str] = None  # None: from the file suffix (.onnx → onnxruntime, .xml → openvino)
    threads: Optional[int] = None  # None: every core the process may use on the measuring host
    warmup: int = 10
    runs: int = 100
    input_shape: Optional[tuple[int, ...]] = None  # None: the model's own, a symbolic batch taken as 1
    precision: Optional[str] = None  # OpenVINO IR does not record it; None: fp32

    def validate(self) -> None:
        checks = [
            (self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}"),
            (self.warmup >= 0, f"warmup must be >= 0, got {self.warmup}"),
            (self.runs >= 1, f"runs must be >= 1, got {self.runs}"),
            (not self.input_shape or all(d >= 1 for d in self.input_shape), f"bad input shape {self.input_shape}"),
            (self.precision is None or self.precision in PRECISIONS,
             f"--precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise EdgekdError(message)

    def runner_args(self, runtime: str) -> list[str]:
        args = ["--runtime", runtime, "--threads", str(self.threads or 0),
                "--warmup", str(self.warmup), "--runs", str(self.runs)]
        args += ["--precision", self.precision] if self.precision else []
        return args + (["--input-shape", ",".join(map(str, self.input_shape))] if self.input_shape else [])


@dataclass(frozen=True)
class ModelFiles:
    """A model and the files it needs beside it (an OpenVINO .bin), with the sha256 of each."""

    primary: Path
    hashes: dict[str, str]  # file name -> sha256, primary first
    paths: dict[str, Path]

    @classmethod
    def of(cls, path: str | Path) -> "ModelFiles":
        from edgekd.artifacts import sha256_file

        path = Path(path)
        if not path.is_file():
            raise EdgekdError(f"artifact not found: {path}")
        primary = _primary_backend(path)
        files = [path] + [path.with_suffix(suffix) for suffix in primary.companion_suffixes]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise EdgekdError(f"{path.name}: {missing[0]} must be beside it")
        return cls(path, {f.name: sha256_file(f) for f in files}, {f.name: f for f in files})

    def runtime(self, requested: Optional[str]) -> str:
        """The runtime to use; a runtime that cannot read this file is refused, never swapped."""
        from edgekd.export import backend_for_runtime, runtime_names

        natural = _primary_backend(self.primary).runtime
        runtime = requested or natural
        if runtime not in runtime_names():
            raise EdgekdError(f"unknown runtime {runtime!r}; choose one of {', '.join(runtime_names())}")
        if self.primary.suffix not in backend_for_runtime(runtime).reads_suffixes:
            raise EdgekdError(f"{self.primary.name} is a {natural} file: it needs --runtime {natural}, not {runtime}")
        return runtime


def _primary_backend(path: Path) -> Any:
    """The backend whose own file format `path` is, among those a device can time."""
    from edgekd.export import BACKENDS, backend_for_file, backend_names

    backend = backend_for_file(path, runner_only=True)
    if backend is None:
        accepted = " or ".join(BACKENDS.get(n).file_suffix for n in backend_names() if BACKENDS.get(n).remote_runner)
        raise EdgekdError(f"{path.name}: profiling takes a {accepted} file, not {path.suffix!r}")
    return backend


@dataclass
class FleetOutcome:
    """One device's result, or the one-line reason it has none. No target: measured on this host."""

    target: Optional[DeviceTarget]
    result: Optional[ProfileResult] = None
    error: Optional[str] = None
    artifact: Optional[str] = None  # which file, when one command times several (edgekd.profile.run_folder)

    @property
    def name(self) -> str:
        return self.target.name if self.target else "local"

    def to_dict(self) -> dict[str, Any]:
        where = {"name": self.name, "device": self.target.device if self.target else None,
                 "host": self.target.address if self.target else "localhost"}
        return {**where, "artifact": self.artifact, "ok": self.error is None, "error": self.error,
                "result": self.result.model_dump(mode="json") if self.result else None}


def profile_remote(
    artifact: str | Path, target: DeviceTarget, settings: ProfileSettings = ProfileSettings(),
    options: RemoteOptions = RemoteOptions(),
) -> ProfileResult:
    """Profile `artifact` on one device; raises EdgekdError with the device's name on any failure."""
    settings.validate()
    return _profile_files(ModelFiles.of(artifact), target, settings, options)


def profile_fleet(
    artifact: str | Path, targets: Sequence[DeviceTarget], settings: ProfileSettings = ProfileSettings(),
    options: RemoteOptions = RemoteOptions(), max_parallel: int = 8,
) -> list[FleetOutcome]:
    """Profile on every device concurrently (one thread each, devices do not share load); a failure on one
    device is reported in its outcome and does not stop the others."""
    settings.validate()
    files = ModelFiles.of(artifact)  # hash once, and fail on a bad file before any connection
    files.runtime(settings.runtime)
    check_model_file(files.primary, settings.input_shape)
    if not targets:
        raise EdgekdError("no devices to profile on")
    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(targets)))) as pool:
        futures = [pool.submit(_outcome, files, target, settings, options) for target in targets]
        return [future.result() for future in futures]


def _outcome(files: ModelFiles, target: DeviceTarget, settings: ProfileSettings,
             options: RemoteOptions) -> FleetOutcome:
    try:
        return FleetOutcome(target, result=_profile_files(files, target, settings, options))
    except EdgekdError as error:
        return FleetOutcome(target, error=str(error))


def _profile_files(files: ModelFiles, target: DeviceTarget, settings: ProfileSettings,
                   options: RemoteOptions) -> ProfileResult:
    from edgekd.export import backend_for_runtime

    runtime = files.runtime(settings.runtime)
    backend = backend_for_runtime(runtime)
    if backend.remote_runner is None:  # a runtime with its own device route (TensorRT: trtexec)
        return backend.profile_on_device(files, target, settings, options)
    payload = with_retries(target, options, lambda: _profile_once(files, target, settings, runtime, options))
    return _result(payload, files, target, settings, runtime)


def _profile_once(files: ModelFiles, target: DeviceTarget, settings: ProfileSettings, runtime: str,
                  options: RemoteOptions) -> dict[str, Any]:
    from edgekd.export import backend_for_runtime

    with connect(target, options) as session, remote_tempdir(session) as workdir:
        upload(session, {**files.paths, **runner_files()}, workdir)
        runner_name = backend_for_runtime(runtime).remote_runner
        args = ["profile", files.primary.name, *expect_args(files.hashes), *settings.runner_args(runner_name)]
        return require_ok(target, run_runner(session, workdir, options.python, args))


def _result(payload: dict[str, Any], files: ModelFiles, target: DeviceTarget, settings: ProfileSettings,
            runtime: str) -> ProfileResult:
    from edgekd.profile.clock_check import judge, nominal_mhz

    shape = [int(d) for d in payload["input_shape"]]
    environment = {**payload["environment"], "name": target.name, "device": target.device, "host": target.address}
    power_mode = (environment.get("jetson") or {}).get("power_mode")
    environment["clock_check"] = judge(payload.get("clocks"), nominal_mhz(target.device, power_mode))
    return ProfileResult(
        mode="measured-remote", runtime=runtime, model=files.primary.name,
        sha256=files.hashes[files.primary.name], precision=payload["precision"], threads=payload["threads"],
        settings=payload["settings"],
        batch_size=shape[0], input_shape=shape, warmup=settings.warmup, runs=settings.runs, rounds=1,
        stats=LatencyStats.from_samples(payload["samples_ms"], batch_size=shape[0]),
        samples_ms=rounded_samples(payload["samples_ms"]),
        cold_start_ms=payload["cold_start_ms"], peak_rss_mb=payload["peak_rss_mb"], environment=environment,
    )


# ---------------------------------------------------------------- device-side steps, shared with deploy


@contextlib.contextmanager
def remote_tempdir(session: Session) -> Iterator[str]:
    """A private directory on the device (mktemp: mode 0700), removed afterwards."""
    path = session.check(["mktemp", "-d", "-t", "edgekd.XXXXXXXX"]).strip()
    if not path.startswith("/"):
        raise EdgekdError(f"{session.target.label}: mktemp returned {path!r}, not a directory path")
    try:
        yield path
    finally:
        with contextlib.suppress(Exception):  # best effort: the error that got us here matters more
            session.run(["rm", "-rf", "--", path], timeout=60)


def upload(session: Session, files: dict[str, Path], remote_dir: str) -> None:
    """Copy files (keyed by their path relative to remote_dir) to the device, creating folders."""
    folders = sorted({posixpath.dirname(posixpath.join(remote_dir, name)) for name in files})
    session.check(["mkdir", "-p", "--", *folders])
    for name, local in files.items():
        session.put(local, posixpath.join(remote_dir, name))


def expect_args(hashes: dict[str, str]) -> list[str]:
    return [arg for name, digest in hashes.items() for arg in ("--expect", f"{name}={digest}")]


def run_runner(session: Session, workdir: str, python: str, args: Sequence[str],
               runner: str = RUNNER) -> dict[str, Any]:
    """Start the runner in `workdir` and return its JSON payload (ok or not)."""
    done = session.run([python, runner, *args], cwd=workdir)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    label = session.target.label
    if done.returncode == 127:
        raise EdgekdError(f"{label}: {python!r} was not found on the device; pass --remote-python")
    detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise EdgekdError(f"{label}: the device runner failed (exit {done.returncode}): {detail}")


def require_ok(target: DeviceTarget, payload: dict[str, Any]) -> dict[str, Any]:
    if payload.get("ok"):
        return payload
    if payload.get("kind") == "hash":
        raise RefusedOnDevice(f"{target.label}: refusing to run: {payload['error']}")
    raise EdgekdError(f"{target.label}: {payload.get('error', 'the device runner failed')}")
