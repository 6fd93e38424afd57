"""BatchNorm folding before int8: which pairs fold, that outputs do not move, and what ONNX Runtime makes of it.

The folding tests need torch only; the last one quantizes with NNCF and reads ONNX Runtime's optimised graph:
folded, each int8 conv runs fused with its activation; unfolded, a float BatchNormalization sits in between.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edgekd.quant.bn_fold import apply_folds, conv_bn_pairs, fold_batchnorm  # noqa: E402

SHAPE = (2, 3, 16, 16)


def _randomise_norms(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


class ConvBnNet(nn.Module):
    """A Sequential conv → BN → ReLU, and a timm ConvNormAct (its BatchNormAct2d carries the activation)."""

    def __init__(self) -> None:
        super().__init__()
        from timm.layers import ConvNormAct

        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block = ConvNormAct(8, 8, 3, act_layer=nn.Hardswish)

    def forward(self, x):
        return self.block(self.stem(x)).mean(dim=(2, 3))


class ResidualRead(nn.Module):
    """The conv's output feeds the BN *and* the sum: folding would change the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.norm(y) + y


class SharedNorm(nn.Module):
    """One BN after two convs: it cannot take both convs' scale."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.norm = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x):
        return self.norm(self.a(x)) + self.norm(self.b(x))


@pytest.fixture(scope="module")
def example():
    torch.manual_seed(1)
    return torch.randn(SHAPE)


def test_folds_plain_and_timm_norms_without_moving_outputs(example) -> None:
    pytest.importorskip("timm")
    torch.manual_seed(0)
    model = _randomise_norms(ConvBnNet())
    folded, pairs = fold_batchnorm(model, example)
    assert pairs == [("stem.0", "stem.1"), ("block.conv", "block.bn")]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert isinstance(folded.block.bn[1], nn.Hardswish)  # the activation BatchNormAct2d applied is kept
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    with torch.no_grad():
        torch.testing.assert_close(folded(example), model(example), rtol=1e-4, atol=1e-5)
    # the same pairs rebuild the same model from a fresh copy, as loading a saved quantized model does
    rebuilt = apply_folds(_randomise_norms(ConvBnNet()).requires_grad_(False), pairs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in rebuilt.modules())


def test_a_conv_output_read_elsewhere_keeps_its_norm(example) -> None:
    model = _randomise_norms(ResidualRead())
    assert conv_bn_pairs(model, example) == [("conv", "norm")]  # the trace alone cannot see the second reader
    folded, pairs = fold_batchnorm(model, example)  # the output check does
    assert pairs == [] and isinstance(folded.norm, nn.BatchNorm2d)


def test_a_norm_run_twice_is_not_folded(example) -> None:
    assert conv_bn_pairs(_randomise_norms(SharedNorm()), example) == []


def test_onnx_runtime_fuses_the_folded_int8_convs_with_their_activation(tmp_path, example) -> None:
    pytest.importorskip("nncf")
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from edgekd.export import EXPORTERS
    from edgekd.quant.nncf_quant import FOLDS_ATTR, load_quantized, quantize_ptq, save_quantized

    class TwoLayers(nn.Module):  # not a bare Sequential: NNCF adds its hook storage as a child module
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())

        def forward(self, x):
            return self.layers(x)

    torch.manual_seed(0)
    model = _randomise_norms(TwoLayers())
    calibration = [torch.randn(SHAPE) for _ in range(2)]

    def optimised_ops(quantized, name: str) -> list[str]:
        path = EXPORTERS.get("onnx").export(quantized, example[:1], tmp_path / f"{name}.onnx", precision="int8",
                                            opset=17, int8_placement="explicit").path
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / f"{name}.opt.onnx")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]

    folded = quantize_ptq(model, calibration)
    assert getattr(folded, FOLDS_ATTR) == [("layers.0", "layers.1"), ("layers.3", "layers.4")]
    folded_ops = optimised_ops(folded, "folded")
    assert folded_ops.count("FusedConv") == 2 and "BatchNormalization" not in folded_ops  # conv + ReLU, one kernel
    unfolded_ops = optimised_ops(quantize_ptq(model, calibration, fold_bn=False), "unfolded")
    assert unfolded_ops.count("BatchNormalization") == 2 and "FusedConv" not in unfolded_ops

    save_quantized(folded, tmp_path / "q.pt")  # the folds travel with the saved model
    reloaded = load_quantized(model, tmp_path / "q.pt")
    assert getattr(reloaded, FOLDS_ATTR) == [("layers.0", "layers.1"), ("layers.3", "layers.4")]
    with torch.no_grad():
        torch.testing.assert_close(reloaded(example), folded(example))
