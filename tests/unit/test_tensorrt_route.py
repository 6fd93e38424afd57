"""The TensorRT route without TensorRT: engine fingerprints, the on-device bundle, and the exporter's refusal."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekd.errors import EdgekdError  # noqa: E402
from edgekd.export import EXPORTERS  # noqa: E402
from edgekd.export.backends.tensorrt import (  # noqa: E402
    BUNDLE_SCRIPT,
    fingerprint_mismatch,
    fingerprint_path,
    load_engine,
    write_device_bundle,
)

ORIN = {"tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7", "jetpack": "R36 (release), REVISION: 4.0"}
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def write_engine(folder: Path, payload: bytes = b"serialized-engine", **fingerprint) -> Path:
    engine = folder / "student.fp16.engine"
    engine.write_bytes(payload)
    sidecar = {**ORIN, **fingerprint, "sha256": hashlib.sha256(payload).hexdigest(), "precision": "fp16"}
    fingerprint_path(engine).write_text(json.dumps(sidecar))
    return engine


def tiny_onnx(path: Path) -> Path:
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["output"], pads=[1, 1, 1, 1])], "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4, 16, 16])], initializer=[weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def bundle(tmp_path: Path, **overrides) -> tuple[dict, Path]:
    source = tiny_onnx(tmp_path / "student.onnx")
    out = tmp_path / "device bundle"
    options = {"precision": "fp16", "input_name": "input", "input_shape": (1, 3, 16, 16), "target_tensorrt": "10.3"}
    return write_device_bundle(source, out, **{**options, **overrides}), out


def script_argv(out: Path) -> list[str]:
    """The trtexec command of build_engine.sh, split the way the shell splits it."""
    line = next(line for line in (out / BUNDLE_SCRIPT).read_text().splitlines() if line.startswith("trtexec "))
    words = shlex.split(line)
    return words[:words.index("2>&1")]


# --- fingerprints -------------------------------------------------------------------------------------------------

def test_matching_fingerprint_has_no_mismatch() -> None:
    assert fingerprint_mismatch(dict(ORIN), dict(ORIN)) == []


def test_fingerprint_mismatch_names_both_sides() -> None:
    problems = fingerprint_mismatch(ORIN, {**ORIN, "tensorrt": "8.6.2", "gpu": None})
    assert problems == ["tensorrt: engine built with 10.3.0, this machine has 8.6.2",
                        "gpu: engine built with Orin, this machine has none"]


def test_unknown_build_facts_are_not_held_against_the_engine() -> None:
    assert fingerprint_mismatch({**ORIN, "jetpack": None}, {**ORIN, "jetpack": "R35 (release), REVISION: 5.0"}) == []


def test_matching_engine_loads(tmp_path: Path) -> None:
    engine = write_engine(tmp_path)
    assert load_engine(engine, machine=dict(ORIN)) == b"serialized-engine"
    assert load_engine(str(engine), machine=dict(ORIN)) == b"serialized-engine"


def test_engine_from_another_tensorrt_is_refused(tmp_path: Path) -> None:
    engine = write_engine(tmp_path)
    with pytest.raises(EdgekdError) as error:
        load_engine(engine, machine={**ORIN, "tensorrt": "10.7.0"})
    assert "10.3.0" in str(error.value) and "10.7.0" in str(error.value) and "rebuild" in str(error.value)


def test_engine_from_another_gpu_is_refused(tmp_path: Path) -> None:
    engine = write_engine(tmp_path, gpu="NVIDIA GeForce RTX 4090", compute_capability="8.9")
    with pytest.raises(EdgekdError) as error:
        load_engine(engine, machine=dict(ORIN))
    message = str(error.value)
    assert "NVIDIA GeForce RTX 4090" in message and "Orin" in message
    assert "compute_capability: engine built with 8.9, this machine has 8.7" in message


def test_engine_changed_after_the_build_fails_the_hash_check(tmp_path: Path) -> None:
    engine = write_engine(tmp_path)
    engine.write_bytes(b"serialized-engine, edited")
    with pytest.raises(EdgekdError, match="does not match the sha256"):
        load_engine(engine, machine=dict(ORIN))


def test_engine_without_a_sidecar_is_refused(tmp_path: Path) -> None:
    engine = write_engine(tmp_path)
    fingerprint_path(engine).unlink()
    with pytest.raises(EdgekdError, match=r"has no fingerprint \(student.fp16.engine.json\)"):
        load_engine(engine, machine=dict(ORIN))


def test_missing_engine_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EdgekdError, match="engine not found"):
        load_engine(tmp_path / "absent.engine", machine=dict(ORIN))


def test_this_machine_cannot_load_a_jetson_engine(tmp_path: Path) -> None:
    engine = write_engine(tmp_path)
    with pytest.raises(EdgekdError, match="built for another machine"):
        load_engine(engine)  # this machine's own fingerprint: no TensorRT 10.3 on an Orin here


# --- the on-device bundle -----------------------------------------------------------------------------------------

def test_bundle_writes_onnx_lint_and_an_executable_script(tmp_path: Path) -> None:
    result, out = bundle(tmp_path)
    copy = out / "student.onnx"
    assert copy.read_bytes() == (tmp_path / "student.onnx").read_bytes()
    assert result["onnx"] == "student.onnx" and result["onnx_sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()
    lint = json.loads((out / "lint.json").read_text())
    assert lint["target_tensorrt"] == "10.3" and lint["passed"] is True and lint == result["lint"]
    script = out / BUNDLE_SCRIPT
    assert result["script"] == BUNDLE_SCRIPT and os.access(script, os.X_OK)
    assert script.read_text().startswith("#!/bin/sh\n")


def test_bundle_script_runs_the_exact_trtexec_command(tmp_path: Path) -> None:
    result, out = bundle(tmp_path)
    argv = script_argv(out)
    assert shlex.split(result["command"]) == argv
    assert {"--onnx=student.onnx", "--saveEngine=student.fp16.engine", "--fp16",
            "--memPoolSize=workspace:1024M", "--percentile=90,95,99", "--timingCacheFile=timing.cache",
            "--exportTimes=student.fp16.times.json"} <= set(argv)
    # the ONNX has a dynamic batch: the build gets an optimisation profile
    assert "--minShapes=input:1x3x16x16" in argv and "--maxShapes=input:8x3x16x16" in argv


def test_bundle_for_trt82_uses_the_workspace_flag(tmp_path: Path) -> None:
    result, out = bundle(tmp_path, target_tensorrt="8.2", workspace_mb=512, precision="int8")
    argv = script_argv(out)
    assert "--workspace=512" in argv and "--percentile=99" in argv
    assert not any(arg.startswith("--memPoolSize") for arg in argv)
    assert {"--int8", "--fp16", "--saveEngine=student.int8.engine"} <= set(argv)
    assert result["target_tensorrt"] == "8.2" and result["lint"]["target_tensorrt"] == "8.2"


def test_bundle_with_dla_core(tmp_path: Path) -> None:
    _, out = bundle(tmp_path, dla_core=0)
    assert {"--useDLACore=0", "--allowGPUFallback"} <= set(script_argv(out))


def fake_trtexec(folder: Path, verdict: str, status: int) -> dict:
    folder.mkdir()
    tool = folder / "trtexec"
    tool.write_text(f"#!/bin/sh\necho '[I] building'\necho '&&&& {verdict} TensorRT.trtexec # trtexec'\n"
                    f"exit {status}\n")
    tool.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.skipif(os.name != "posix", reason="build_engine.sh is a POSIX shell script")
def test_bundle_script_exit_code_follows_trtexec(tmp_path: Path) -> None:
    _, out = bundle(tmp_path)
    script = str(out / BUNDLE_SCRIPT)
    passed = subprocess.run([script], env=fake_trtexec(tmp_path / "ok", "PASSED", 0), capture_output=True, text=True)
    assert passed.returncode == 0, passed.stderr
    assert "&&&& PASSED" in (out / "student.onnx.trtexec.log").read_text()
    failed = subprocess.run([script], env=fake_trtexec(tmp_path / "bad", "FAILED", 1), capture_output=True, text=True)
    assert failed.returncode != 0  # the failure is not hidden behind `| tee`


@pytest.mark.skipif(os.name != "posix", reason="build_engine.sh is a POSIX shell script")
def test_bundle_script_refuses_an_onnx_changed_after_export(tmp_path: Path) -> None:
    _, out = bundle(tmp_path)
    with open(out / "student.onnx", "ab") as file:
        file.write(b"\0")
    env = fake_trtexec(tmp_path / "ok", "PASSED", 0)
    run = subprocess.run([str(out / BUNDLE_SCRIPT)], env=env, capture_output=True, text=True)
    assert run.returncode != 0 and not (out / "student.onnx.trtexec.log").exists()


def test_bundle_in_place_keeps_the_onnx(tmp_path: Path) -> None:
    source = tiny_onnx(tmp_path / "student.onnx")
    before = source.read_bytes()
    write_device_bundle(source, tmp_path, precision="fp32", input_name="input", input_shape=(1, 3, 16, 16))
    assert source.read_bytes() == before and (tmp_path / BUNDLE_SCRIPT).is_file()


# --- the exporter without TensorRT --------------------------------------------------------------------------------

@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_exporter_is_unavailable_and_points_to_the_trtexec_route(tmp_path: Path) -> None:
    exporter = EXPORTERS.get("tensorrt")
    assert exporter.is_available() is False
    capabilities = exporter.capabilities()
    assert capabilities["available"] is False and "trtexec" in capabilities["missing"]
    with pytest.raises(EdgekdError, match="trtexec route"):
        exporter.export(object(), None, tmp_path / "student.engine", precision="fp16")
    assert not (tmp_path / "student.engine").exists()
