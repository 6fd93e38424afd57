"""`edgekd deploy` through a real OpenSSH server on 127.0.0.1: copy, verify on the device, smoke inference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekd.cli.app import app
from edgekd.deploy import deploy
from edgekd.errors import EdgekdError
from edgekd.profile import remote
from tests.remote.conftest import write_tiny_onnx


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder as the pipeline leaves it: export/<backend>/ with models and manifests."""
    onnx_dir = tmp_path / "runs" / "tiny" / "export" / "onnx"
    onnx_dir.mkdir(parents=True)
    write_tiny_onnx(onnx_dir / "student.onnx")
    (onnx_dir / "manifest.json").write_text(json.dumps({"stage": "export"}))
    return tmp_path / "runs" / "tiny"


def _cli_args(sshd_server, remote_dir: Path) -> list[str]:
    return ["--device", "rpi5", "--host", sshd_server.address, "--known-hosts", str(sshd_server.known_hosts),
            "--identity", str(sshd_server.key_file), "--remote-python", sshd_server.python,
            "--remote-dir", str(remote_dir)]


def test_deploy_copies_verifies_and_smoke_tests_a_run(run_dir, make_target, remote_options, tmp_path) -> None:
    device_dir = tmp_path / "device" / "tiny"
    report = deploy(run_dir, make_target("rpi5"), remote_dir=str(device_dir), options=remote_options)
    assert set(report.files) == {"onnx/student.onnx", "onnx/manifest.json"}
    assert [(i.artifact, i.step, i.status) for i in report.items] == [("onnx/student.onnx", "smoke", "ok")]
    assert "[1, 4, 8, 8]" in report.items[0].detail and not report.failed
    copied = device_dir / "onnx" / "student.onnx"
    assert copied.read_bytes() == (run_dir / "export" / "onnx" / "student.onnx").read_bytes()
    assert report.environment["jetson"] is None  # this "device" is not a Jetson: no engine step


def test_deploy_smoke_tests_openvino_ir_too(run_dir, make_target, remote_options, tmp_path) -> None:
    ov = pytest.importorskip("openvino")
    ir_dir = run_dir / "export" / "openvino"
    ir_dir.mkdir()
    ov.save_model(ov.convert_model(str(run_dir / "export" / "onnx" / "student.onnx")), str(ir_dir / "student.xml"))
    report = deploy(run_dir, make_target(), remote_dir=str(tmp_path / "device"), options=remote_options)
    assert {(i.artifact, i.runtime, i.status) for i in report.items} == {
        ("onnx/student.onnx", "onnxruntime", "ok"), ("openvino/student.xml", "openvino", "ok")}


def _model_the_runtime_cannot_load(path: Path) -> None:
    """A well-formed ONNX file (it passes the check made before connecting) with an operator no runtime has."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph([node], "unloadable", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    onnx.save(model, path)


def test_a_broken_model_fails_its_smoke_test_and_exits_1(run_dir, sshd_server, tmp_path) -> None:
    _model_the_runtime_cannot_load(run_dir / "export" / "onnx" / "broken.onnx")
    result = CliRunner().invoke(app, ["deploy", str(run_dir), *_cli_args(sshd_server, tmp_path / "dev"), "--json"])
    assert result.exit_code == 1, result.output
    items = {i["artifact"]: i for i in json.loads(result.stdout)[0]["items"]}
    assert items["onnx/student.onnx"]["status"] == "ok"
    assert items["onnx/broken.onnx"]["status"] == "failed" and "cannot load" in items["onnx/broken.onnx"]["detail"]


def test_deploy_refuses_a_file_changed_on_the_device(run_dir, make_target, remote_options, tmp_path,
                                                     monkeypatch) -> None:
    import edgekd.deploy as deploy_module

    def upload_then_corrupt(session, files, remote_dir):
        remote.upload(session, files, remote_dir)
        session.check(["sh", "-c", 'printf x >> "$1"', "sh", f"{remote_dir}/onnx/manifest.json"])

    monkeypatch.setattr(deploy_module, "upload", upload_then_corrupt)
    with pytest.raises(EdgekdError, match="refusing to run: sha256 mismatch for onnx/manifest.json"):
        deploy(run_dir, make_target(), remote_dir=str(tmp_path / "device"), options=remote_options)


def test_cli_deploy_of_a_single_file_prints_a_table(sshd_server, tmp_path) -> None:
    model = write_tiny_onnx(tmp_path / "one.onnx")
    result = CliRunner().invoke(app, ["deploy", str(model), *_cli_args(sshd_server, tmp_path / "dev")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "one.onnx" in result.stdout and "ok" in result.stdout
    shutil.rmtree(tmp_path / "dev")


def test_a_file_that_is_not_a_model_is_refused_before_connecting(run_dir, tmp_path) -> None:
    (run_dir / "export" / "onnx" / "broken.onnx").write_bytes(b"not a model")
    # port 9 on localhost: a connection attempt would fail differently (refused), and slowly with retries
    result = CliRunner().invoke(app, ["deploy", str(run_dir), "--device", "rpi5", "--host", "pi@127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert "broken.onnx: not an ONNX model" in result.stderr and "connect" not in result.stderr
