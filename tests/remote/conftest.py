"""Fixtures for the remote tests: a real local sshd, targets and options that reach it, a tiny ONNX model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.remote.sshd_fixture import SshServer, dropping_server, sshd_server  # noqa: F401  (fixtures)

INPUT_SHAPE = (1, 3, 8, 8)


@pytest.fixture
def make_target(sshd_server: SshServer):
    from edgekd.profile.targets import target_from_host

    def make(device: str = "rpi5", *, port: int | None = None):
        return target_from_host(device, f"{sshd_server.user}@127.0.0.1:{port or sshd_server.port}",
                                key_file=sshd_server.key_file)

    return make


@pytest.fixture
def remote_options(sshd_server: SshServer):
    from edgekd.profile.remote import RemoteOptions

    return RemoteOptions(known_hosts=sshd_server.known_hosts, python=sshd_server.python, attempts=3,
                         backoff_s=0.05, connect_timeout_s=5.0, warn=lambda message: None)


def write_tiny_onnx(path: Path) -> Path:
    """Conv + Relu on a fixed 1x3x8x8 input, built with onnx.helper (no torch needed)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(INPUT_SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every supported ONNX Runtime
    save(model, str(path))
    return path


@pytest.fixture
def tiny_onnx(tmp_path: Path) -> Path:
    return write_tiny_onnx(tmp_path / "tiny.onnx")
