"""The ExecuTorch backend: torch.export → XNNPACK, parity through ExecuTorch's runtime, refusals with reasons.
Skipped without the executorch extra."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from backend.two_heads import TwoHeads  # noqa: E402  (tests/ is on sys.path)
from edgekd.errors import EdgekdError  # noqa: E402
from edgekd.export import BACKENDS, runtime_for_file  # noqa: E402
from edgekd.export.parity import SCALED_BUDGETS, check_parity  # noqa: E402

ET = BACKENDS.get("executorch")
pytestmark = pytest.mark.skipif(not ET.is_available(), reason="the executorch extra is not installed")
SHAPE = (1, 3, 16, 16)


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return TwoHeads().eval()


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((6, *SHAPE[1:])) + 2 * rng.standard_normal((6, SHAPE[1], 1, 1))).astype(np.float32)


def test_fp32_program_matches_pytorch_on_both_outputs(inputs, tmp_path) -> None:
    model = _model(0)
    program = ET.export(model, torch.zeros(SHAPE), tmp_path / "model.fp32.pte").path
    result = check_parity(model, program, inputs, runtime="executorch", precision="fp32", **SCALED_BUDGETS["fp32"])
    assert result.passed and result.snr_db > 100, result.failure_reason()
    assert ET.declared_input(program) == list(SHAPE) and runtime_for_file(program) == "executorch"


def test_another_models_program_fails_parity(inputs, tmp_path) -> None:
    program = ET.export(_model(1), torch.zeros(SHAPE), tmp_path / "other.pte").path
    result = check_parity(_model(0), program, inputs, runtime="executorch", precision="fp32",
                          **SCALED_BUDGETS["fp32"])
    assert not result.passed and result.failure_reason().startswith("SNR")


def test_fp16_is_refused_with_the_reason(tmp_path) -> None:
    with pytest.raises(EdgekdError, match="only on ARM"):
        ET.export(_model(0), torch.zeros(SHAPE), tmp_path / "model.pte", precision="fp16")


def test_int8_without_calibration_inputs_is_refused(tmp_path) -> None:
    with pytest.raises(EdgekdError, match="needs calibration inputs"):
        ET.export(_model(0), torch.zeros(SHAPE), tmp_path / "model.int8.pte", precision="int8")


def test_int8_from_an_nncf_model_keeps_its_weights_and_passes_the_int8_budget(tmp_path) -> None:
    """The quantized model's weights carry over (its float twin) and PT2E calibrates anew; the program is checked
    against the quantized model on the int8 budget, as every int8 file is. resnet18: a tiny random net
    quantizes too coarsely for two calibrations to agree."""
    nncf = pytest.importorskip("nncf")
    timm = pytest.importorskip("timm")
    from edgekd.quant.nncf_quant import float_twin

    torch.manual_seed(0)
    shape = (1, 3, 32, 32)
    rng = np.random.default_rng(1)
    calibration = rng.standard_normal((16, *shape[1:])).astype(np.float32)
    quantized = nncf.quantize(timm.create_model("resnet18", pretrained=False).eval(),
                              nncf.Dataset([torch.from_numpy(c[None]) for c in calibration]), subset_size=16)
    twin = float_twin(quantized)
    assert not any("nncf" in name for name, _ in twin.named_modules())
    carried = dict(quantized.named_parameters())  # NNCF's weights: bias-corrected here, fine-tuned after QAT
    assert all(torch.equal(value, carried[name]) for name, value in twin.named_parameters())
    program = ET.export(quantized, torch.zeros(shape), tmp_path / "model.int8.pte", precision="int8",
                        calibration=calibration)
    checked = rng.standard_normal((8, *shape[1:])).astype(np.float32)
    result = check_parity(quantized, program.path, checked, runtime="executorch", precision="int8",
                          **SCALED_BUDGETS["int8"])
    assert result.passed, result.failure_reason()
    assert program.size_bytes < 0.3 * sum(p.numel() * 4 for p in twin.parameters())


def test_a_file_that_is_not_a_program_is_named(tmp_path) -> None:
    fake = tmp_path / "fake.pte"
    fake.write_bytes(b"not a program")
    with pytest.raises(EdgekdError, match="fake.pte: ExecuTorch cannot load it"):
        ET.declared_input(fake)


class PermutedSoftmax(nn.Module):
    """mono3d's depth distribution: a softmax over the last axis of a permuted convolution output (the layout the
    task uses because ONNX Runtime's softmax is fastest on the innermost axis)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = nn.Conv2d(3, 9, 3, padding=1)

    def forward(self, x):
        return self.depth(x).permute(0, 3, 2, 1).softmax(dim=-1)[..., :-1]


def test_a_softmax_over_a_permuted_convolution_output_matches_pytorch(inputs, tmp_path) -> None:
    """XNNPACK in ExecuTorch 1.5 computes this softmax along the wrong axis (max |Δ| 0.09 on outputs of 0.2);
    edgekd moves the softmax before the permute, where it is computed right."""
    torch.manual_seed(0)
    model = PermutedSoftmax().eval()
    program = ET.export(model, torch.zeros(SHAPE), tmp_path / "softmax.pte").path
    result = check_parity(model, program, inputs, runtime="executorch", precision="fp32", **SCALED_BUDGETS["fp32"])
    assert result.passed and result.snr_db > 100, result.failure_reason()
