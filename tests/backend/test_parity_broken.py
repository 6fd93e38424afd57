"""Scaled parity budgets on real files: honest exports pass, deliberately broken ones fail, on every runtime.

A tiny CNN classifier is exported to ONNX (ONNX Runtime, fp32) and converted to OpenVINO IR (fp32, fp16); the
same ONNX is broken twice (the classifier's weights zeroed; a conv's output channels rotated) and converted
the same way, and to ncnn (fp32, fp16) where the ncnn extra is installed. Each model comes twice: with logits of order 1, and with the last layer scaled down so that its
logits are of order 1e-6 — the case an absolute budget lets through, which the tests show beside the scaled one.
Skipped without onnxruntime or openvino.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from onnx import numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

from edgekd.export import EXPORTERS  # noqa: E402
from edgekd.export.parity import SCALED_BUDGETS, check_parity  # noqa: E402

SHAPE = (1, 3, 32, 32)
CLASSES = 10
TINY_SCALE = 1e-6
# The absolute budgets `edgekd export` gated before the scaled ones (fp32 1e-3, OpenVINO fp16 2e-2).
ABSOLUTE_BUDGETS = {"fp32": 1e-3, "fp16": 2e-2}
_NCNN = pytest.mark.skipif(not EXPORTERS.get("ncnn").is_available(), reason="the ncnn extra is not installed")
RUNTIMES = [("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "fp16"),
            pytest.param("ncnn", "fp32", marks=_NCNN), pytest.param("ncnn", "fp16", marks=_NCNN)]
BREAKS = ["zero_classifier", "rotate_conv_channels"]


class TinyClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x):
        return self.head(self.features(x))


def _model(scale: float) -> nn.Module:
    torch.manual_seed(0)
    model = TinyClassifier()
    with torch.no_grad():
        model.head.weight.mul_(scale)
        model.head.bias.zero_()  # as timm initialises a classifier: the logits are the features' doing
    return model.eval()


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {"unit": _model(1.0), "tiny": _model(TINY_SCALE)}


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    # Noise plus a colour per image: white noise alone pools to the same features for every image, so a random
    # net would give every input the same class and top-1 agreement could not tell a broken file apart.
    rng = np.random.default_rng(3)
    images = rng.standard_normal((16, *SHAPE[1:])) + 2.0 * rng.standard_normal((16, SHAPE[1], 1, 1))
    return images.astype(np.float32)


@pytest.fixture(scope="module")
def files(models, tmp_path_factory) -> dict[tuple[str, str, str], Path]:
    """(model, variant, precision) → the file: the honest and broken ONNX, and their OpenVINO IRs."""
    folder = tmp_path_factory.mktemp("parity_broken")
    out: dict[tuple[str, str, str], Path] = {}
    for name, model in models.items():
        # opset 17: the TorchScript exporter, quicker than dynamo; the exporter is not under test here
        honest = EXPORTERS.get("onnx").export(model, torch.zeros(SHAPE), folder / f"{name}.onnx", opset=17).path
        onnx_files = {"honest": honest, **{how: _broken(honest, how, folder / f"{name}.{how}.onnx") for how in BREAKS}}
        for variant, path in onnx_files.items():
            out[(name, variant, "onnx")] = path
            for precision in ("fp32", "fp16"):
                xml = folder / f"{name}.{variant}.{precision}.xml"
                out[(name, variant, precision)] = EXPORTERS.get("openvino").export(
                    None, None, xml, precision=precision, source_onnx=path).path
                if EXPORTERS.get("ncnn").is_available():
                    param = folder / f"{name}.{variant}.{precision}.ncnn.param"  # not <stem>.bin: the IR's weights
                    out[(name, variant, f"ncnn-{precision}")] = EXPORTERS.get("ncnn").export(
                        None, torch.zeros(SHAPE), param, precision=precision, source_onnx=path).path
    return out


def _broken(src: Path, how: str, dst: Path) -> Path:
    """A copy of `src` with one weight edited the way a bad conversion or a mixed-up checkpoint would."""
    proto = onnx.load(str(src))
    initializers = {init.name: init for init in proto.graph.initializer}
    if how == "zero_classifier":
        node = [n for n in proto.graph.node if n.op_type in ("Gemm", "MatMul") and n.input[1] in initializers][-1]
        weight = numpy_helper.to_array(initializers[node.input[1]])
        edited = np.zeros_like(weight)
    else:  # every output channel of the last conv takes its neighbour's filter; its bias stays in place
        node = [n for n in proto.graph.node if n.op_type == "Conv"][-1]
        weight = numpy_helper.to_array(initializers[node.input[1]])
        edited = np.roll(weight, 1, axis=0)
    assert not np.array_equal(edited, weight)
    initializers[node.input[1]].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(edited), node.input[1]))
    onnx.save(proto, str(dst))
    return dst


def _check(models, files, inputs, model: str, variant: str, runtime: str, precision: str, **budgets):
    key = {"onnxruntime": "onnx", "ncnn": f"ncnn-{precision}"}.get(runtime, precision)
    return check_parity(models[model], files[(model, variant, key)], inputs, runtime=runtime, precision=precision,
                        **budgets)


def test_the_tiny_model_has_tiny_logits(models, inputs) -> None:
    with torch.no_grad():
        tiny = models["tiny"](torch.from_numpy(inputs)).numpy()
    assert 1e-8 < np.abs(tiny).max() < 1e-5
    assert len(set(np.argmax(tiny, axis=1).tolist())) >= 2  # not one class for every input: agreement means something


@pytest.mark.parametrize("model", ["unit", "tiny"])
@pytest.mark.parametrize("runtime, precision", RUNTIMES)
def test_honest_files_pass_the_default_scaled_budgets(models, files, inputs, model, runtime, precision) -> None:
    result = _check(models, files, inputs, model, "honest", runtime, precision, **SCALED_BUDGETS[precision])
    if (runtime, precision, model) == ("ncnn", "fp16", "tiny"):
        # ncnn's fp16 file stores the weights in fp16: the tiny classifier's, of order 1e-7, are below fp16's
        # normal range and its logits come out as zero. The file is useless, and the scaled check says so.
        assert not result.passed and result.failure_reason().startswith("SNR 0.0 dB"), result.failure_reason()
        return
    assert result.passed, result.failure_reason()
    assert result.top1_agreement == 1.0 and result.budget_max_abs_diff is None


@pytest.mark.parametrize("how", BREAKS)
@pytest.mark.parametrize("model", ["unit", "tiny"])
@pytest.mark.parametrize("runtime, precision", RUNTIMES)
def test_broken_files_fail_the_default_scaled_budgets(models, files, inputs, model, runtime, precision, how) -> None:
    result = _check(models, files, inputs, model, how, runtime, precision, **SCALED_BUDGETS[precision])
    assert not result.passed
    assert result.failure_reason().startswith("SNR "), result.failure_reason()


@pytest.mark.parametrize("how", BREAKS)
@pytest.mark.parametrize("runtime, precision", RUNTIMES)
def test_tiny_logits_pass_the_absolute_budget_but_fail_the_scaled_one(models, files, inputs, runtime, precision,
                                                                      how) -> None:
    absolute = _check(models, files, inputs, "tiny", how, runtime, precision, max_abs_diff=ABSOLUTE_BUDGETS[precision])
    assert absolute.passed and absolute.max_abs_diff < 1e-4  # the check before the scaled budgets: a broken file passes
    both = _check(models, files, inputs, "tiny", how, runtime, precision, max_abs_diff=ABSOLUTE_BUDGETS[precision],
                  **SCALED_BUDGETS[precision])
    assert not both.passed and "|Δ|" not in both.failure_reason() and "SNR" in both.failure_reason()


def test_the_scaled_statistics_do_not_depend_on_the_logits_scale(models, files, inputs) -> None:
    unit, tiny = (_check(models, files, inputs, m, "rotate_conv_channels", "onnxruntime", "fp32", min_snr_db=0)
                  for m in ("unit", "tiny"))
    assert tiny.snr_db == pytest.approx(unit.snr_db, abs=0.01) and tiny.top1_agreement == unit.top1_agreement
    assert tiny.max_abs_diff < 1e-5 * unit.max_abs_diff
