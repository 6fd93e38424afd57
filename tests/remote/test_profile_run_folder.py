"""One command times every checked file of a run folder on the device: each runtime the runner executes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.errors import EdgekdError
from edgekd.export import BACKENDS
from edgekd.profile.measure import profile_artifact
from edgekd.profile.remote import ProfileSettings
from tests.remote.conftest import INPUT_SHAPE, write_tiny_onnx

FAST = ProfileSettings(threads=1, warmup=1, runs=5)


def _run_folder(tmp_path: Path) -> Path:
    """A run folder whose export stage wrote an ONNX file, an ncnn pair when the extra is here, and a failed row
    (its file never written); paths relative to the run folder, as the export stage records them."""
    import torch
    from torch import nn

    export = tmp_path / "run" / "export"
    (export / "onnx").mkdir(parents=True)
    onnx_file = write_tiny_onnx(export / "onnx" / "student.onnx")
    rows = [{"role": "student", "variant": "float", "runtime": "onnxruntime", "precision": "fp32",
             "status": "passed", "path": "export/onnx/student.onnx"},
            {"role": "student", "variant": "qat", "runtime": "onnxruntime", "precision": "int8",
             "status": "failed", "path": "export/onnx/student.int8.onnx"}]
    if BACKENDS.get("ncnn").is_available():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval()
        pair = BACKENDS.get("ncnn").export(model, torch.zeros(INPUT_SHAPE), export / "ncnn" / "student.fp32.param",
                                           opset=17).path
        rows.append({"role": "student", "variant": "float", "runtime": "ncnn", "precision": "fp32",
                     "status": "passed", "path": pair.relative_to(tmp_path / "run").as_posix()})
    (export / "artifacts.json").write_text(json.dumps(rows))
    return tmp_path / "run"


def test_every_checked_file_is_timed_on_the_device(make_target, remote_options, tmp_path) -> None:
    outcomes = profile_artifact(_run_folder(tmp_path), FAST, [make_target("rpi5")], remote_options)
    expected = ["student float onnxruntime fp32"]
    if BACKENDS.get("ncnn").is_available():
        expected.append("student float ncnn fp32")
    assert [o.artifact for o in outcomes] == expected  # the failed row is not timed
    assert all(o.error is None and o.result.mode == "measured-remote" for o in outcomes)
    assert [o.result.runtime for o in outcomes] == [label.split()[2] for label in expected]


def test_a_run_folder_without_devices_or_export_is_refused(tmp_path) -> None:
    with pytest.raises(EdgekdError, match="recipe's profile stage times it"):
        profile_artifact(_run_folder(tmp_path), FAST)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgekdError, match="export/artifacts.json is missing"):
        profile_artifact(tmp_path / "empty", FAST, ["unused"])


def test_a_listed_file_that_is_missing_is_named(make_target, remote_options, tmp_path) -> None:
    run = _run_folder(tmp_path)
    (run / "export" / "onnx" / "student.onnx").unlink()
    with pytest.raises(EdgekdError, match="export/onnx/student.onnx is listed but missing"):
        profile_artifact(run, FAST, [make_target("rpi5")], remote_options)
