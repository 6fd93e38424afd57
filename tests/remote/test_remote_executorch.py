"""ExecuTorch programs on a device: profiled and deployed through the runner over a real OpenSSH server."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.deploy import deploy
from edgekd.export import BACKENDS
from edgekd.profile.remote import ProfileSettings, profile_remote
from tests.remote.conftest import INPUT_SHAPE

pytestmark = pytest.mark.skipif(not BACKENDS.get("executorch").is_available(),
                                reason="the executorch extra is not installed")
FAST = ProfileSettings(threads=1, warmup=2, runs=20)


@pytest.fixture
def program(tmp_path: Path) -> Path:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval()
    out = tmp_path / "run" / "export" / "executorch" / "student.fp32.pte"
    return BACKENDS.get("executorch").export(model, torch.zeros(INPUT_SHAPE), out).path


def test_a_program_is_profiled_on_the_device(program, make_target, remote_options) -> None:
    result = profile_remote(program, make_target("rpi5"), FAST, remote_options)
    assert result.mode == "measured-remote" and result.runtime == "executorch"
    assert result.stats.count == 20 and result.input_shape == list(INPUT_SHAPE)
    assert result.settings["delegate"] == "XNNPACK" and "executorch" in result.environment["packages"]


def test_a_run_folder_with_a_program_is_deployed_and_smoke_tested(program, make_target, remote_options,
                                                                  tmp_path) -> None:
    report = deploy(program.parents[2], make_target("rpi5"), remote_dir=str(tmp_path / "device"),
                    options=remote_options)
    assert [(i.artifact, i.runtime, i.status) for i in report.items] == [
        ("executorch/student.fp32.pte", "executorch", "ok")]
    assert "[1, 4, 8, 8]" in report.items[0].detail
