"""TensorRT: build an engine with the Python API where TensorRT and an NVIDIA GPU are present, and the
on-device bundle everywhere else.

An engine only runs on the GPU model and TensorRT version that built it, so every engine gets a
fingerprint sidecar (`<engine>.json`: TensorRT version, GPU name, compute capability, JetPack/L4T when
known, sha256) and `load_engine` refuses one whose fingerprint does not match the machine.

Where TensorRT cannot run (this project's CI, any x86 host without a GPU) `write_device_bundle` writes
what the target needs to build its own engine: the ONNX, `build_engine.sh` with the exact trtexec
command, and the lint report for the target's TensorRT version.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

from edgekd.artifacts import atomic_path, atomic_write_json, atomic_write_text, sha256_file
from edgekd.errors import EdgekdError
from edgekd.export.base import Exporter, ExportResult
from edgekd.export.trt_lint import lint_onnx
from edgekd.export.trtexec import engine_path_for, legacy_workspace_flag, shell_line, trtexec_command

FINGERPRINT_KEYS = ("tensorrt", "gpu", "compute_capability", "jetpack")
BUNDLE_SCRIPT = "build_engine.sh"


class TensorRtExporter(Exporter):
    name = "tensorrt"
    listing_order = 30
    runtime = "tensorrt"
    precisions = ("fp32", "fp16", "int8")
    default_precisions = ("fp16", "int8")
    deploy_default = "int8"
    file_suffix = ".engine"
    requires = ("tensorrt",)
    extra_name = "tensorrt"
    doctor_modules = ("tensorrt",)
    # Engines are built and timed on the device with trtexec (edgekd.profile.remote_trt), not by the runner.
    remote_runner = None
    reads_suffixes = (".engine", ".onnx")  # on the device, trtexec builds the engine from the ONNX

    def device_bundle(self, onnx_path, out_dir, *, precision, input_name, input_shape, settings):
        bundle = write_device_bundle(
            onnx_path, out_dir, precision=precision, input_name=input_name, input_shape=input_shape,
            target_tensorrt=settings.tensorrt_target, workspace_mb=settings.tensorrt_workspace_mb,
            dla_core=settings.tensorrt_dla_core,
        )
        errors = [f["message"] for f in bundle["lint"]["findings"] if f["severity"] == "error"]
        return {"path": out_dir / bundle["script"], "sha256": bundle["onnx_sha256"],
                "size_bytes": (out_dir / bundle["onnx"]).stat().st_size, "errors": errors,
                "note": f"engine to be built on the device ({self.missing_reason()})",
                "extra": {"command": bundle["command"], "lint": bundle["lint"]}}

    def profile_on_device(self, files, target, settings, options):
        from edgekd.profile.remote_trt import profile_tensorrt

        return profile_tensorrt(files, target, settings, options)

    def is_available(self) -> bool:
        return super().is_available() and _cuda_gpu() is not None

    def missing_reason(self) -> str:
        reason = super().missing_reason()
        if reason:
            return reason + " and an NVIDIA GPU; without them, build on the device (trtexec route) from the bundle `edgekd export` writes"
        if _cuda_gpu() is None:
            return "TensorRT is installed but no CUDA GPU is visible; build on the device (trtexec route) from the bundle `edgekd export` writes"
        return ""

    def _export(self, model, example_input, out_path, *, precision, opset, input_names, output_names,
                source_onnx: str | Path | None = None, workspace_mb: int = 1024, dla_core: Optional[int] = None,
                timing_cache: str | Path | None = None, simplify: bool = True, dynamic_batch: bool = True,
                max_batch: int = 8) -> ExportResult:
        with tempfile.TemporaryDirectory(prefix="edgekd-trt-") as folder:
            onnx_path = Path(source_onnx) if source_onnx else _export_onnx(
                model, example_input, Path(folder) / "model.onnx", precision, opset, input_names, output_names,
                simplify, dynamic_batch)
            lint = lint_onnx(onnx_path, target_tensorrt=_installed_version())
            if not lint.passed:
                errors = [f.message for f in lint.findings if f.severity == "error"]
                raise EdgekdError(f"{onnx_path.name} will not build on TensorRT: {errors[0]}")
            shape = tuple(example_input.shape) if hasattr(example_input, "shape") else None
            engine = build_engine(onnx_path, precision=precision, workspace_mb=workspace_mb, dla_core=dla_core,
                                  timing_cache=timing_cache, input_shape=shape, max_batch=max_batch)
        with atomic_path(out_path) as tmp:
            tmp.write_bytes(engine)
        fingerprint = {**machine_fingerprint(), "sha256": sha256_file(out_path), "precision": precision}
        atomic_write_json(fingerprint_path(out_path), fingerprint)
        return ExportResult(backend=self.name, precision=precision, path=out_path, sha256=fingerprint["sha256"],
                            size_bytes=out_path.stat().st_size, opset=None,
                            extra={"fingerprint": fingerprint, "lint": lint.to_dict()})


def _export_onnx(model, example_input, path, precision, opset, input_names, output_names, simplify, dynamic):
    from edgekd.export.backends.onnx import OnnxExporter

    OnnxExporter().export(model, example_input, path, precision="int8" if precision == "int8" else "fp32",
                          opset=opset, input_names=input_names, output_names=output_names, simplify=simplify,
                          dynamic_batch=dynamic, int8_placement="explicit")
    return path


def build_engine(onnx_path: Path, *, precision: str, workspace_mb: int, dla_core: Optional[int] = None,
                 timing_cache: str | Path | None = None, input_shape: Optional[Sequence[int]] = None,
                 max_batch: int = 8) -> bytes:
    """Serialized engine bytes, built with TensorRT's builder + ONNX parser on this machine's GPU."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if _major(trt.__version__) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EdgekdError(f"TensorRT cannot parse {onnx_path.name}: {errors[0] if errors else 'unknown error'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # explicit quantization: the Q/DQ pairs carry the scales
    if dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    _add_batch_profile(builder, network, config, input_shape, max_batch)
    cache = _load_timing_cache(config, timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgekdError(f"TensorRT failed to build an engine from {onnx_path.name} (see the log above)")
    if timing_cache:
        with atomic_path(Path(timing_cache)) as tmp:
            tmp.write_bytes(bytes(cache.serialize()))
    return bytes(serialized)


def _add_batch_profile(builder, network, config, input_shape, max_batch: int) -> None:
    tensor = network.get_input(0)
    if tensor is None or -1 not in tuple(tensor.shape):
        return
    if input_shape is None:
        raise EdgekdError("the ONNX has dynamic dimensions: give the input shape to build an optimisation profile")
    opt = tuple(int(d) for d in input_shape)
    profile = builder.create_optimization_profile()
    profile.set_shape(tensor.name, (1, *opt[1:]), opt, (max(max_batch, opt[0]), *opt[1:]))
    config.add_optimization_profile(profile)


def _load_timing_cache(config, timing_cache) -> Any:
    data = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def fingerprint_path(engine: Path) -> Path:
    return engine.with_suffix(engine.suffix + ".json")


def machine_fingerprint() -> dict[str, Optional[str]]:
    """What an engine built here is tied to; None for what this machine cannot tell."""
    gpu = _cuda_gpu()
    return {
        "tensorrt": _installed_version(default=None),
        "gpu": gpu[0] if gpu else None,
        "compute_capability": gpu[1] if gpu else None,
        "jetpack": jetson_release(),
    }


def fingerprint_mismatch(engine: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    """Human-readable differences that make an engine unusable here; [] when it may load."""
    problems = []
    for key in FINGERPRINT_KEYS:
        built, here = engine.get(key), machine.get(key)
        if built is not None and built != here:
            problems.append(f"{key}: engine built with {built}, this machine has {here or 'none'}")
    return problems


def load_engine(path: str | Path, *, machine: Optional[dict[str, Any]] = None) -> bytes:
    """The engine's bytes after checking its hash and fingerprint; EdgekdError naming every mismatch."""
    path = Path(path)
    sidecar = fingerprint_path(path)
    if not path.is_file():
        raise EdgekdError(f"engine not found: {path}")
    if not sidecar.is_file():
        raise EdgekdError(f"{path.name} has no fingerprint ({sidecar.name}); rebuild it with edgekd or trtexec here")
    fingerprint = json.loads(sidecar.read_text())
    if fingerprint.get("sha256") != sha256_file(path):
        raise EdgekdError(f"{path.name} does not match the sha256 in {sidecar.name}: the file changed after the build")
    problems = fingerprint_mismatch(fingerprint, machine if machine is not None else machine_fingerprint())
    if problems:
        raise EdgekdError(f"{path.name} was built for another machine — " + "; ".join(problems)
                          + " (engines are tied to GPU and TensorRT version: rebuild it on this device)")
    return path.read_bytes()


def write_device_bundle(
    onnx_path: Path,
    out_dir: Path,
    *,
    precision: str,
    input_name: str,
    input_shape: Sequence[int],
    target_tensorrt: str = "8.6",
    workspace_mb: int = 1024,
    dla_core: Optional[int] = None,
    dynamic_batch: bool = True,
) -> dict[str, Any]:
    """ONNX + build_engine.sh (the trtexec command, run on the device) + lint.json, for `target_tensorrt`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_copy = out_dir / onnx_path.name
    if onnx_path.resolve() != onnx_copy.resolve():
        with atomic_path(onnx_copy) as tmp:
            shutil.copyfile(onnx_path, tmp)
    lint = lint_onnx(onnx_copy, target_tensorrt=target_tensorrt)
    atomic_write_json(out_dir / "lint.json", lint.to_dict())
    argv = trtexec_command(
        onnx_copy.name, engine_path_for(onnx_copy.name, precision), precision=precision, input_name=input_name,
        input_shape=input_shape, dynamic_batch=dynamic_batch, workspace_mb=workspace_mb, dla_core=dla_core,
        timing_cache="timing.cache", timing_json=f"{onnx_copy.stem}.{precision}.times.json",
    )
    if _parse_major_minor(target_tensorrt) < (8, 4):
        argv = legacy_workspace_flag(argv)
    script = out_dir / BUNDLE_SCRIPT
    atomic_write_text(script, _script(argv, sha256_file(onnx_copy), onnx_copy.name))
    os.chmod(script, 0o755)
    return {"onnx": onnx_copy.name, "onnx_sha256": sha256_file(onnx_copy), "script": script.name,
            "command": shell_line(argv), "lint": lint.to_dict(), "target_tensorrt": target_tensorrt}


def _script(argv: list[str], digest: str, onnx_name: str) -> str:
    log = shell_line([onnx_name + ".trtexec.log"])
    return (
        "#!/bin/sh\n"
        "# Build and time the TensorRT engine on the target device (engines are tied to its GPU and TensorRT).\n"
        "set -eu\n"
        'cd "$(dirname "$0")"\n'
        f"echo {shlex.quote(f'{digest}  {onnx_name}')} | sha256sum -c -\n"
        f"{shell_line(argv)} 2>&1 | tee {log}\n"
        # A pipeline's status is tee's and POSIX sh has no pipefail: trtexec's own verdict decides the exit code.
        f"grep -q '^&&&& PASSED' {log}\n"
    )


def jetson_release() -> Optional[str]:
    """L4T release from /etc/nv_tegra_release (e.g. 'R36 (release), REVISION: 4.0'), None off-Jetson."""
    try:
        first = Path("/etc/nv_tegra_release").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return first.lstrip("# ").split(", GCID")[0].strip() or None


def _installed_version(default: Optional[str] = "8.6") -> Optional[str]:
    try:
        import tensorrt as trt
    except ImportError:
        return default
    return trt.__version__


def _cuda_gpu() -> Optional[tuple[str, str]]:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return torch.cuda.get_device_name(0), f"{major}.{minor}"


def _major(version: str) -> int:
    return int(version.split(".")[0])


def _parse_major_minor(version: str) -> tuple[int, int]:
    parts = [int(p) for p in version.split(".")[:2]]
    return (parts[0], parts[1] if len(parts) > 1 else 0)
