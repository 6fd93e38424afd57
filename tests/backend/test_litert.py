"""The LiteRT backend: torch.export → litert-torch (in its own environment) → .tflite, parity through
ai-edge-litert, int8 with float inputs and outputs, refusals with reasons. Skipped without the litert extra or its converter
(`edgekd setup litert`; `make test` sets it up)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from backend.two_heads import RowsScatter, TwoHeads  # noqa: E402  (tests/ is on sys.path)
from edgekd.errors import EdgekdError  # noqa: E402
from edgekd.export import BACKENDS, runtime_for_file  # noqa: E402
from edgekd.export.litert_env import converter_python  # noqa: E402
from edgekd.export.parity import SCALED_BUDGETS, check_parity  # noqa: E402

LITERT = BACKENDS.get("litert")
pytestmark = pytest.mark.skipif(not LITERT.is_available() or converter_python() is None,
                                reason="the litert extra or its converter environment is not installed")
SHAPE = (1, 3, 16, 16)


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return TwoHeads().eval()


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((6, *SHAPE[1:])) + 2 * rng.standard_normal((6, SHAPE[1], 1, 1))).astype(np.float32)


def test_fp32_file_matches_pytorch_on_both_outputs(inputs, tmp_path) -> None:
    model = _model(0)
    result = LITERT.export(model, torch.zeros(SHAPE), tmp_path / "model.fp32.tflite")
    parity = check_parity(model, result.path, inputs, runtime="tflite", precision="fp32", **SCALED_BUDGETS["fp32"])
    assert parity.passed and parity.snr_db > 100, parity.failure_reason()
    assert LITERT.declared_input(result.path) == list(SHAPE) and runtime_for_file(result.path) == "tflite"
    assert result.extra["converter"].startswith("litert-torch")


def test_another_models_file_fails_parity(inputs, tmp_path) -> None:
    path = LITERT.export(_model(1), torch.zeros(SHAPE), tmp_path / "other.tflite").path
    parity = check_parity(_model(0), path, inputs, runtime="tflite", precision="fp32", **SCALED_BUDGETS["fp32"])
    assert not parity.passed and parity.failure_reason().startswith("SNR")


def test_int8_keeps_float_inputs_and_outputs_and_passes_the_int8_budget(inputs, tmp_path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    model = _model(0)
    rng = np.random.default_rng(1)
    calibration = (rng.standard_normal((32, *SHAPE[1:])) + 2 * rng.standard_normal((32, SHAPE[1], 1, 1)))
    result = LITERT.export(model, torch.zeros(SHAPE), tmp_path / "model.int8.tflite", precision="int8",
                           calibration=calibration.astype(np.float32))
    interpreter = Interpreter(model_path=str(result.path))
    boundary = interpreter.get_input_details() + interpreter.get_output_details()
    assert {d["dtype"] for d in boundary} == {np.float32}
    tensor_types = {d["dtype"] for d in interpreter.get_tensor_details()}
    assert np.int8 in tensor_types  # quantized inside
    parity = check_parity(model, result.path, inputs, runtime="tflite", precision="int8", **SCALED_BUDGETS["int8"])
    assert parity.passed, parity.failure_reason()


def test_fp16_is_refused_with_the_reason(tmp_path) -> None:
    with pytest.raises(EdgekdError, match="fp16 weights back into fp32"):
        LITERT.export(_model(0), torch.zeros(SHAPE), tmp_path / "model.tflite", precision="fp16")


def test_int8_without_calibration_inputs_is_refused(tmp_path) -> None:
    with pytest.raises(EdgekdError, match="needs calibration inputs"):
        LITERT.export(_model(0), torch.zeros(SHAPE), tmp_path / "model.int8.tflite", precision="int8")
    assert not (tmp_path / "model.int8.tflite").exists()


def test_a_converter_failure_is_one_line_and_writes_nothing(tmp_path, monkeypatch) -> None:
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'Traceback (most recent call last):' >&2\n"
                      "echo 'RuntimeError: lowering failed' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("EDGEKD_LITERT_PYTHON", str(broken))
    with pytest.raises(EdgekdError, match=r"LiteRT cannot convert TwoHeads \(exit 1\): RuntimeError: lowering failed"):
        LITERT.export(_model(0), torch.zeros(SHAPE), tmp_path / "model.tflite")
    assert list(tmp_path.iterdir()) == [broken]


def test_a_file_that_is_not_a_tflite_is_named(tmp_path) -> None:
    fake = tmp_path / "fake.tflite"
    fake.write_bytes(b"not a model")
    with pytest.raises(EdgekdError, match="fake.tflite: LiteRT cannot load it"):
        LITERT.declared_input(fake)


class ConstantChannel(nn.Module):
    """mono3d's camera backbone in small: a constant row-coordinate channel expanded to the feature map and
    concatenated (litert-torch's layout pass broadcast the NCHW constant to an NHWC shape: a file that would not
    load)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fuse = nn.Conv2d(5, 2, 1)
        self.register_buffer("row_coord", torch.linspace(-1.0, 1.0, 16).view(1, 1, 16, 1))

    def forward(self, x):
        features = self.conv(x)
        rows = self.row_coord.expand(features.shape[0], 1, features.shape[2], features.shape[3])
        return self.fuse(torch.cat([features, rows], dim=1))


@pytest.mark.parametrize("model_class", [ConstantChannel, RowsScatter], ids=["expanded-constant", "rows-scatter"])
def test_mono3d_forms_convert_exactly(model_class, tmp_path) -> None:
    """The two forms of the mono3d student litert-torch 0.10 gets wrong (a constant expand) or LiteRT cannot run
    (a scatter-add): rewritten before conversion, the files load and match PyTorch."""
    torch.manual_seed(0)
    model = model_class().eval()
    shape = (1, 3, 16, 16) if model_class is ConstantChannel else (1, 3, 8, 8)
    path = LITERT.export(model, torch.zeros(shape), tmp_path / "model.tflite").path
    checked = np.random.default_rng(2).standard_normal((3, *shape[1:])).astype(np.float32)
    parity = check_parity(model, path, checked, runtime="tflite", precision="fp32", **SCALED_BUDGETS["fp32"])
    assert parity.passed and parity.snr_db > 100, parity.failure_reason()
