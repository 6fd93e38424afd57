"""LiteRT files on a device: profiled and deployed through the runner over a real OpenSSH server."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.deploy import deploy
from edgekd.export import BACKENDS
from edgekd.export.litert_env import converter_python
from edgekd.export.litert_env import converter_python
from edgekd.profile.remote import ProfileSettings, profile_remote
from tests.remote.conftest import INPUT_SHAPE

pytestmark = pytest.mark.skipif(not BACKENDS.get("litert").is_available() or converter_python() is None,
                                reason="the litert extra or its converter environment is not installed")
FAST = ProfileSettings(threads=1, warmup=2, runs=20)


@pytest.fixture
def tflite_file(tmp_path: Path) -> Path:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval()
    out = tmp_path / "run" / "export" / "litert" / "student.fp32.tflite"
    return BACKENDS.get("litert").export(model, torch.zeros(INPUT_SHAPE), out).path


def test_a_tflite_file_is_profiled_on_the_device(tflite_file, make_target, remote_options) -> None:
    result = profile_remote(tflite_file, make_target("rpi5"), FAST, remote_options)
    assert result.mode == "measured-remote" and result.runtime == "tflite"
    assert result.stats.count == 20 and result.input_shape == list(INPUT_SHAPE)
    assert result.settings["delegate"].startswith("XNNPACK") and "ai-edge-litert" in result.environment["packages"]


def test_a_run_folder_with_a_tflite_file_is_deployed_and_smoke_tested(tflite_file, make_target, remote_options,
                                                                      tmp_path) -> None:
    report = deploy(tflite_file.parents[2], make_target("rpi5"), remote_dir=str(tmp_path / "device"),
                    options=remote_options)
    assert [(i.artifact, i.runtime, i.status) for i in report.items] == [
        ("litert/student.fp32.tflite", "tflite", "ok")]
    assert "[1, 4, 8, 8]" in report.items[0].detail
