"""TensorRT on a Jetson: the engine is built on the device with trtexec (engines are bound to one GPU and
one TensorRT version, so building anywhere else is pointless), then timed by trtexec itself.

The trtexec command line and the parsing of its report come from edgekd.export.trtexec
(`trtexec_command`, `parse_trtexec_output`); this module moves files and runs the command there.
Latency samples are trtexec's own per-iteration host latencies (H2D + compute + D2H, `--exportTimes`),
so `LatencyStats` is computed from raw samples exactly as for the other runtimes. `cold_start_ms` is the
wall time of a fresh `trtexec --loadEngine` process running one inference (CUDA start-up included).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from edgekd.errors import EdgekdError
from edgekd.profile.local import ProfileResult, rounded_samples
from edgekd.device_runner.common import RunnerError, resolve_shape
from edgekd.profile.ssh import Session, connect, with_retries
from edgekd.profile.stats import LatencyStats

TIMES_FILE = "trtexec-times.json"


def tensorrt_tools() -> Any:
    """edgekd.export.trtexec, or a clear refusal when this installation does not have it."""
    try:
        from edgekd.export import trtexec
    except ImportError:
        raise EdgekdError(
            "on-device TensorRT needs edgekd.export.trtexec (the trtexec command builder), "
            "which this installation lacks; profile the ONNX file with --runtime onnxruntime meanwhile"
        ) from None
    return trtexec


@dataclass(frozen=True)
class OnnxInput:
    name: str
    shape: list[int]
    dynamic_batch: bool
    precision: Optional[str]  # stamped by edgekd's exporter as metadata "edgekd.precision"

    @classmethod
    def of(cls, path: Path, requested: Optional[tuple[int, ...]]) -> "OnnxInput":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        weights = {init.name for init in model.graph.initializer}
        inputs = [value for value in model.graph.input if value.name not in weights]
        if len(inputs) != 1:
            raise EdgekdError(f"{path.name}: one input is supported, the model has {len(inputs)}")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
        try:
            shape = resolve_shape(dims, list(requested) if requested else None)
        except RunnerError as error:
            raise EdgekdError(f"{path.name}: {error}") from None
        meta = {prop.key: prop.value for prop in model.metadata_props}
        return cls(inputs[0].name, shape, bool(dims) and dims[0] is None, meta.get("edgekd.precision"))


def trtexec_argv(tools: Any, onnx_name: str, spec: OnnxInput, precision: str, tensorrt_version: Optional[str],
                 runs: Optional[int] = None, trtexec: str = "trtexec") -> list[str]:
    """Build (and time, when `runs` is given) on the device; paths are relative to the device folder."""
    argv = tools.trtexec_command(
        onnx_name, tools.engine_path_for(onnx_name, precision), precision=precision, input_name=spec.name,
        input_shape=spec.shape, dynamic_batch=spec.dynamic_batch, timing_json=TIMES_FILE if runs else None,
        trtexec=trtexec,
    )
    argv += [f"--iterations={runs}", "--duration=0"] if runs else ["--iterations=1", "--duration=0"]
    return tools.legacy_workspace_flag(argv) if _before_8_4(tensorrt_version) else argv


def _before_8_4(version: Optional[str]) -> bool:
    # JetPack 4.6 (Jetson Nano) ships TensorRT 8.2, whose trtexec lacks --memPoolSize.
    parts = (version or "").split(".")
    return len(parts) >= 2 and parts[0].isdigit() and parts[1][:1].isdigit() and \
        (int(parts[0]), int(parts[1].split("-")[0])) < (8, 4)


def run_trtexec(session: Session, workdir: str, options: Any, argv: list[str], expect: list[str],
                runner: str) -> dict[str, Any]:
    """trtexec through the device runner (hash check first, wall time measured on the device)."""
    from edgekd.profile.remote import require_ok, run_runner

    payload = require_ok(session.target, run_runner(session, workdir, options.python,
                                                    ["exec", *expect, "--", *argv], runner=runner))
    if payload["returncode"] != 0:
        tail = [line for line in payload["output"].splitlines() if line.strip()][-3:]
        raise EdgekdError(f"{session.target.label}: trtexec failed (exit {payload['returncode']}): "
                          + " | ".join(tail))
    return payload


def profile_tensorrt(files: Any, target: Any, settings: Any, options: Any) -> ProfileResult:
    """Build the engine on the Jetson and time it there; refused on anything that is not a Jetson."""
    if not target.is_jetson:
        raise EdgekdError(f"{target.label}: tensorrt runs on Jetson devices; {target.device} is not one")
    tools = tensorrt_tools()
    spec = OnnxInput.of(files.primary, settings.input_shape)
    precision = settings.precision or spec.precision or "fp32"
    done = with_retries(target, options, lambda: _profile_once(tools, files, spec, precision, target, settings,
                                                               options))
    return _result(done, files, spec, precision, target, settings)


def _profile_once(tools, files, spec, precision, target, settings, options) -> dict[str, Any]:
    from edgekd.profile.remote import RUNNER, expect_args, remote_tempdir, require_ok, run_runner, runner_files, upload

    with connect(target, options) as session, remote_tempdir(session) as workdir:
        upload(session, {**files.paths, **runner_files()}, workdir)
        expect = expect_args(files.hashes)
        checked = require_ok(target, run_runner(session, workdir, options.python, ["verify", *expect]))
        version = (checked["environment"].get("jetson") or {}).get("tensorrt")
        argv = trtexec_argv(tools, files.primary.name, spec, precision, version, runs=settings.runs,
                            trtexec=options.trtexec)
        timed = run_trtexec(session, workdir, options, argv, expect, RUNNER)
        times = json.loads(session.check(["cat", "--", f"{workdir}/{TIMES_FILE}"]))
        engine = tools.engine_path_for(files.primary.name, precision)
        shapes = [arg for arg in argv if arg.startswith("--shapes=")]
        cold_argv = [options.trtexec, f"--loadEngine={engine}", *shapes, "--iterations=1", "--duration=0", "--warmUp=0"]
        cold = run_trtexec(session, workdir, options, cold_argv, expect, RUNNER)
    return {"timed": timed, "times": times, "cold": cold, "argv": argv}


def _result(done: dict[str, Any], files: Any, spec: OnnxInput, precision: str, target: Any,
            settings: Any) -> ProfileResult:
    tools = tensorrt_tools()
    report = tools.parse_trtexec_output(done["timed"]["output"])
    samples = [float(entry["latencyMs"]) for entry in done["times"] if isinstance(entry, dict) and "latencyMs" in entry]
    if not samples:
        raise EdgekdError(f"{target.label}: trtexec wrote no per-iteration times to {TIMES_FILE}")
    environment = {**done["timed"]["environment"], "name": target.name, "device": target.device,
                   "host": target.address, "gpu": report.device, "tensorrt_runtime": report.tensorrt_version}
    return ProfileResult(
        mode="measured-remote", runtime="tensorrt", model=files.primary.name,
        sha256=files.hashes[files.primary.name], precision=precision, threads=1, batch_size=spec.shape[0],
        input_shape=spec.shape, warmup=0, runs=len(samples), rounds=1,
        settings={"trtexec": tools.shell_line(done["argv"]), "warmup": "trtexec --warmUp default (200 ms)",
                  "latency": "host latency per iteration (H2D + GPU compute + D2H)"},
        stats=LatencyStats.from_samples(samples, batch_size=spec.shape[0]),
        samples_ms=rounded_samples(samples),
        cold_start_ms=done["cold"]["wall_ms"], peak_rss_mb=None, environment=environment,
    )
