"""ncnn files on a device: profiled and deployed through the runner over a real OpenSSH server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.deploy import deploy
from edgekd.export import BACKENDS
from edgekd.profile.remote import ProfileSettings, profile_remote
from tests.remote.conftest import INPUT_SHAPE, write_tiny_onnx

pytestmark = pytest.mark.skipif(not BACKENDS.get("ncnn").is_available(), reason="the ncnn extra is not installed")
FAST = ProfileSettings(threads=1, warmup=2, runs=20)


@pytest.fixture
def ncnn_pair(tmp_path: Path) -> Path:
    import torch

    onnx_path = write_tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "run" / "export" / "ncnn" / "student.fp32.param"
    return BACKENDS.get("ncnn").export(None, torch.zeros(INPUT_SHAPE), out, source_onnx=onnx_path).path


def test_an_ncnn_file_is_profiled_on_the_device(ncnn_pair, make_target, remote_options) -> None:
    result = profile_remote(ncnn_pair, make_target("rpi5"), FAST, remote_options)
    assert result.mode == "measured-remote" and result.runtime == "ncnn"
    assert result.stats.count == 20 and 0 < result.stats.p50_ms
    assert result.input_shape == list(INPUT_SHAPE)
    assert result.settings["inference_precision"] == "f32" and "ncnn" in result.environment["packages"]


def test_an_ncnn_run_folder_is_deployed_and_smoke_tested(ncnn_pair, make_target, remote_options, tmp_path) -> None:
    run = ncnn_pair.parents[2]
    report = deploy(run, make_target("rpi5"), remote_dir=str(tmp_path / "device"), options=remote_options)
    assert set(report.files) == {"ncnn/student.fp32.param", "ncnn/student.fp32.bin"}
    assert [(i.artifact, i.runtime, i.status) for i in report.items] == [("ncnn/student.fp32.param", "ncnn", "ok")]
    assert "[1, 4, 8, 8]" in report.items[0].detail


def test_an_ncnn_param_without_its_bin_is_refused_before_connecting(ncnn_pair, make_target, remote_options) -> None:
    from edgekd.errors import EdgekdError

    ncnn_pair.with_suffix(".bin").unlink()
    with pytest.raises(EdgekdError, match="student.fp32.bin must be beside it"):
        profile_remote(ncnn_pair, make_target(), FAST, remote_options)
