"""Put exported artifacts on a device and prove they run there.

`deploy(source, target)` copies an artifact (or every file under a run's export/ folder) and the device
runner to `~/edgekd/<name>/` on the device, checks every file's sha256 there (a mismatch is refused),
runs one smoke inference per model (.onnx with ONNX Runtime, .xml with OpenVINO), and on a Jetson builds
the TensorRT engine with trtexec on the device. Each model gets an ok / failed / skipped line.

>>> report = deploy(Path("runs/quickstart"), target_from_host("rpi5", "pi@10.0.0.5"))
>>> [(item.artifact, item.status) for item in report.items]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict

from edgekd.errors import EdgekdError
from edgekd.export import backend_for_file, runner_runtime_for
from edgekd.profile.remote import (
    RUNNER, ModelFiles, RefusedOnDevice, RemoteOptions, expect_args, require_ok, run_runner, runner_files, upload,
)
from edgekd.profile.model_check import check_model_file
from edgekd.profile.ssh import Session, connect, with_retries
from edgekd.profile.targets import DeviceTarget

RUNNER_FOLDER = ".edgekd"  # the runner goes beside the artifacts, out of the way of the user's files
RUNNER_NAME = f"{RUNNER_FOLDER}/{RUNNER}"


class DeployItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    artifact: str
    step: Literal["smoke", "engine"]
    runtime: str
    status: Literal["ok", "failed", "skipped"]
    detail: str = ""


class DeployReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    device: str
    host: str
    remote_dir: str
    files: dict[str, str]  # relative path -> sha256, as verified on the device
    items: list[DeployItem]
    environment: dict[str, Any]

    @property
    def failed(self) -> bool:
        return any(item.status == "failed" for item in self.items)


def collect_artifacts(source: Path) -> dict[str, Path]:
    """Files to copy, keyed by their path relative to the deploy folder."""
    source = Path(source)
    if source.is_file():
        return dict(ModelFiles.of(source).paths)
    if not source.is_dir():
        raise EdgekdError(f"nothing to deploy at {source}: give an .onnx/.xml file or a run folder")
    root = source / "export" if (source / "export").is_dir() else source
    files = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
             if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".tmp")}
    if not any(runner_runtime_for(name) for name in files):
        raise EdgekdError(f"{root}: no .onnx or .xml artifacts to deploy")
    return files


def deploy(
    source: str | Path, target: DeviceTarget, *, remote_dir: Optional[str] = None,
    options: RemoteOptions = RemoteOptions(), input_shape: Optional[tuple[int, ...]] = None,
) -> DeployReport:
    """Copy, verify, build (Jetson) and smoke-test on one device; EdgekdError on connection or hash failure."""
    from edgekd.artifacts import sha256_file

    files = collect_artifacts(Path(source))
    # Every model is checked before a connection is tried. A run folder holds models of several input sizes
    # (teacher and student), so a shape is checked up front only for a single file; the device's smoke test
    # reports per model whether it fits.
    single = Path(source).is_file()
    for name in (n for n in files if runner_runtime_for(n)):
        check_model_file(files[name], input_shape if single else None)
    hashes = {name: sha256_file(path) for name, path in files.items()}
    folder = remote_dir or f"edgekd/{Path(source).resolve().stem}"
    return with_retries(target, options, lambda: _deploy_once(files, hashes, target, folder, options, input_shape))


def _deploy_once(files: dict[str, Path], hashes: dict[str, str], target: DeviceTarget, folder: str,
                 options: RemoteOptions, input_shape: Optional[tuple[int, ...]]) -> DeployReport:
    with connect(target, options) as session:
        upload(session, {**files, **runner_files(RUNNER_FOLDER)}, folder)
        checked = require_ok(target, _runner(session, folder, options, ["verify", *expect_args(hashes)]))
        environment = checked["environment"]
        items = []
        for name in (n for n in files if runner_runtime_for(n)):
            items.append(_smoke(session, folder, name, hashes, options, input_shape))
            if environment.get("jetson") and name.endswith(".onnx") and _tensorrt_source(files[name]):
                items.append(_engine(session, folder, name, files[name], hashes, environment, options))
    return DeployReport(name=target.name, device=target.device, host=target.address, remote_dir=folder,
                        files=hashes, items=items, environment=environment)


def _tensorrt_source(path: Path) -> bool:
    """Whether TensorRT builds from this ONNX: not the int8 file placed for ONNX Runtime (u8 activations, which
    TensorRT refuses); its explicit twin, `*.int8.explicit.onnx`, is TensorRT's."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return meta.get("edgekd.int8_placement") != "onnxruntime"


def _runner(session: Session, folder: str, options: RemoteOptions, args: list[str]) -> dict[str, Any]:
    return run_runner(session, folder, options.python, args, runner=RUNNER_NAME)


def _smoke(session: Session, folder: str, name: str, hashes: dict[str, str], options: RemoteOptions,
           input_shape: Optional[tuple[int, ...]]) -> DeployItem:
    backend = backend_for_file(name, runner_only=True)
    runtime = backend.remote_runner
    companions = {str(Path(name).with_suffix(s)) for s in backend.companion_suffixes}
    own = {n: d for n, d in hashes.items() if n == name or n in companions}
    shape = ["--input-shape", ",".join(map(str, input_shape))] if input_shape else []
    payload = _runner(session, folder, options, ["smoke", name, *expect_args(own), "--runtime", runtime, *shape])
    if payload.get("kind") == "hash":
        require_ok(session.target, payload)  # a file changed since the verify step: refuse, do not report
    if not payload.get("ok"):
        return DeployItem(artifact=name, step="smoke", runtime=runtime, status="failed", detail=payload["error"])
    detail = f"input {payload['input_shape']} -> outputs {payload['output_shapes']}"
    return DeployItem(artifact=name, step="smoke", runtime=runtime, status="ok", detail=detail)


def _engine(session: Session, folder: str, name: str, local: Path, hashes: dict[str, str],
            environment: dict[str, Any], options: RemoteOptions) -> DeployItem:
    """Build the TensorRT engine on the Jetson next to the ONNX file (trtexec also runs it once)."""
    from edgekd.profile.remote_trt import OnnxInput, run_trtexec, tensorrt_tools, trtexec_argv

    try:
        tools = tensorrt_tools()
        spec = OnnxInput.of(local, None)
        precision = spec.precision or "fp32"
        version = (environment.get("jetson") or {}).get("tensorrt")
        argv = trtexec_argv(tools, name, spec, precision, version, trtexec=options.trtexec)
        run_trtexec(session, folder, options, argv, expect_args({name: hashes[name]}), RUNNER_NAME)
    except RefusedOnDevice:
        raise  # a file that changed on the device is refused outright, not reported as one failed step
    except EdgekdError as error:
        return DeployItem(artifact=name, step="engine", runtime="tensorrt", status="failed", detail=str(error))
    engine = tools.engine_path_for(name, precision)
    return DeployItem(artifact=name, step="engine", runtime="tensorrt", status="ok", detail=f"built {engine}")
