"""Exporters' capability tables and refusals, OpenVINO IR parity, and int8 (NNCF PTQ) through ONNX and OpenVINO.

Skipped without onnxruntime, openvino or nncf. One NNCF quantization per module: the first in a process compiles
NNCF's small CPU extension.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytest.importorskip("nncf")
onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from onnx import numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

from edgekd.errors import EdgekdError  # noqa: E402
from edgekd.export import EXPORTERS  # noqa: E402
from edgekd.export.parity import check_parity  # noqa: E402
from edgekd.export.trt_lint import lint_onnx  # noqa: E402
from edgekd.quant.nncf_quant import quantize_ptq, quantizers_by_module  # noqa: E402

SHAPE = (1, 3, 32, 32)
CAPABILITY_KEYS = {"backend", "runtime", "precisions", "refused", "file_suffix", "available", "missing"}


class TwoConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return TwoConvNet().eval()


@pytest.fixture(scope="module")
def calibration() -> list:
    torch.manual_seed(1)
    return [torch.randn(4, *SHAPE[1:]) for _ in range(2)]


@pytest.fixture(scope="module")
def quantized(model, calibration):
    return quantize_ptq(model, calibration)


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(2).standard_normal((10, *SHAPE[1:])).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exporters")


@pytest.fixture(scope="module")
def fp32_onnx(model, folder) -> Path:
    # opset 17 takes the TorchScript exporter: faster than dynamo, and the exporter choice is not under test here
    return EXPORTERS.get("onnx").export(model, torch.zeros(SHAPE), folder / "fp32.onnx", opset=17).path


@pytest.fixture(scope="module")
def int8_onnx(quantized, folder) -> Path:
    # TensorRT's explicit placement: the file OpenVINO and TensorRT start from (tests/backend/test_int8_placement.py
    # covers ONNX Runtime's)
    return EXPORTERS.get("onnx").export(quantized, torch.zeros(SHAPE), folder / "int8.onnx", precision="int8",
                                        opset=17, int8_placement="explicit").path


def parity(torch_model, path: Path, inputs, runtime: str, precision: str, budget: float):
    return check_parity(torch_model, path, inputs, runtime=runtime, precision=precision, max_abs_diff=budget,
                        max_metric_delta=None)


# --- capability tables --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, precisions, suffix", [
    ("onnx", ["fp32", "int8"], ".onnx"),
    ("openvino", ["fp32", "fp16", "int8"], ".xml"),
    ("tensorrt", ["fp32", "fp16", "int8"], ".engine"),
])
def test_capabilities_table(name: str, precisions: list[str], suffix: str) -> None:
    capabilities = EXPORTERS.get(name).capabilities()
    assert set(capabilities) == CAPABILITY_KEYS
    assert capabilities["backend"] == name and capabilities["precisions"] == precisions
    assert capabilities["file_suffix"] == suffix
    assert capabilities["available"] == (capabilities["missing"] == "")


def test_onnx_and_openvino_are_available_here() -> None:
    assert EXPORTERS.get("onnx").capabilities()["available"] is True
    assert EXPORTERS.get("openvino").capabilities()["available"] is True


# --- refusals -----------------------------------------------------------------------------------------------------

def test_onnx_refuses_fp16_with_its_reason(model, folder) -> None:
    reason = EXPORTERS.get("onnx").capabilities()["refused"]["fp16"]
    path = folder / "refused_fp16.onnx"
    with pytest.raises(EdgekdError) as error:
        EXPORTERS.get("onnx").export(model, torch.zeros(SHAPE), path, precision="fp16")
    assert "cannot produce precision 'fp16'" in str(error.value) and reason in str(error.value)
    assert not path.exists()


def test_onnx_int8_from_a_float_model_is_refused(model, folder) -> None:
    path = folder / "float_as_int8.onnx"
    with pytest.raises(EdgekdError, match="int8 ONNX needs a quantized model"):
        EXPORTERS.get("onnx").export(model, torch.zeros(SHAPE), path, precision="int8")
    assert not path.exists()


def test_quantized_model_exported_as_fp32_is_refused(quantized, folder) -> None:
    with pytest.raises(EdgekdError, match="carries int8 fake-quant: export it as int8, not fp32"):
        EXPORTERS.get("onnx").export(quantized, torch.zeros(SHAPE), folder / "qat_as_fp32.onnx", precision="fp32")


def test_openvino_int8_from_a_float_onnx_is_refused(fp32_onnx, folder) -> None:
    out = folder / "refused_int8.xml"
    with pytest.raises(EdgekdError, match="no QuantizeLinear/DequantizeLinear nodes"):
        EXPORTERS.get("openvino").export(None, None, out, precision="int8", source_onnx=fp32_onnx)
    assert not out.exists() and not out.with_suffix(".bin").exists()


def test_openvino_fp32_from_a_qdq_onnx_is_refused(int8_onnx, folder) -> None:
    with pytest.raises(EdgekdError, match="is a Q/DQ \\(int8\\) graph"):
        EXPORTERS.get("openvino").export(None, None, folder / "refused_fp32.xml", precision="fp32",
                                         source_onnx=int8_onnx)


@pytest.mark.parametrize("name, wrong", [("openvino", "model.onnx"), ("onnx", "model.xml"), ("openvino", "model")])
def test_wrong_file_suffix_is_refused(model, folder, name: str, wrong: str) -> None:
    with pytest.raises(EdgekdError, match="writes '\\.(xml|onnx)' files"):
        EXPORTERS.get(name).export(model, torch.zeros(SHAPE), folder / wrong)
    assert not (folder / wrong).exists()


# --- OpenVINO fp32 / fp16 -----------------------------------------------------------------------------------------

def test_openvino_fp32_ir_from_the_torch_model(model, folder, inputs) -> None:
    result = EXPORTERS.get("openvino").export(model, torch.zeros(SHAPE), folder / "ov" / "fp32.xml", opset=17)
    assert result.path.is_file() and result.path.with_suffix(".bin").is_file()
    assert result.precision == "fp32" and result.extra["compress_to_fp16"] is False
    assert result.size_bytes == result.path.stat().st_size + result.path.with_suffix(".bin").stat().st_size
    check = parity(model, result.path, inputs, "openvino", "fp32", 1e-4)
    assert check.passed, check.failure_reason()


def test_openvino_fp16_ir_from_an_existing_onnx(model, fp32_onnx, folder, inputs) -> None:
    result = EXPORTERS.get("openvino").export(model, None, folder / "ov" / "fp16.xml", precision="fp16",
                                              source_onnx=fp32_onnx)
    assert result.path.is_file() and result.path.with_suffix(".bin").is_file()
    assert result.extra["compress_to_fp16"] is True and result.extra["source_onnx"] == "fp32.onnx"
    # fp16 weights, in the arithmetic the plugin picks on this host (what the profiler times), hence the fp16 budget
    check = parity(model, result.path, inputs, "openvino", "fp16", 2e-2)
    assert check.execution["inference_precision"] in ("f32", "bf16", "f16") and check.arithmetic == "timed"
    assert check.passed, check.failure_reason()


def test_fp16_ir_pinned_session_computes_in_f32(model, fp32_onnx, folder) -> None:
    from edgekd.profile.sessions import open_session

    path = folder / "ov" / "fp16_pinned.xml"
    EXPORTERS.get("openvino").export(model, None, path, precision="fp16", source_onnx=fp32_onnx)
    pinned = open_session(path, "openvino", precision="fp16", arithmetic="f32")
    assert pinned.settings()["inference_precision"] == "f32"
    # profiling and parity ("timed") leave the choice to the plugin (bf16 or f16 on CPUs that have them), and record it
    native = open_session(path, "openvino", precision="fp16")
    assert native.settings()["inference_precision"] in ("f32", "bf16", "f16")


# --- int8 through NNCF PTQ ----------------------------------------------------------------------------------------

def zero_points(proto) -> list[np.ndarray]:
    """The zero-point values of every QuantizeLinear (initializers or Constant nodes)."""
    values = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return [values[node.input[2]] for node in proto.graph.node if node.op_type == "QuantizeLinear"]


def test_int8_onnx_is_a_tensorrt_ready_qdq_graph(int8_onnx) -> None:
    proto = onnx.load(str(int8_onnx))
    assert {p.key: p.value for p in proto.metadata_props}["edgekd.precision"] == "int8"
    zeros = zero_points(proto)
    assert len(zeros) >= 3  # the convs' and the linear layer's inputs at least
    assert all(z.dtype == np.int8 and not np.any(z) for z in zeros)  # signed, symmetric
    report = lint_onnx(int8_onnx, target_tensorrt="10.3")
    assert report.passed, [f.message for f in report.findings if f.severity == "error"]


def test_int8_onnx_parity(quantized, int8_onnx, inputs) -> None:
    check = parity(quantized, int8_onnx, inputs, "onnxruntime", "int8", 0.1)
    assert check.passed, check.failure_reason()


def test_openvino_int8_from_the_qdq_onnx(quantized, int8_onnx, folder, inputs) -> None:
    result = EXPORTERS.get("openvino").export(quantized, None, folder / "ov" / "int8.xml", precision="int8",
                                              source_onnx=int8_onnx)
    assert result.precision == "int8" and result.path.with_suffix(".bin").is_file()
    check = parity(quantized, result.path, inputs, "openvino", "int8", 0.1)
    assert check.passed, check.failure_reason()


def test_fallback_module_keeps_float(model, calibration, quantized) -> None:
    everywhere = quantizers_by_module(quantized)
    assert {"features.0", "features.2", "head.2"} <= set(everywhere)  # both convs' and the linear's weights
    kept_float = quantizers_by_module(quantize_ptq(model, calibration, fallback_modules=["features.2"]))
    assert "features.2" not in kept_float
    assert {"features.0", "head.2"} <= set(kept_float)  # the other layers are still quantized
    assert sum(map(len, kept_float.values())) < sum(map(len, everywhere.values()))


# --- the export stage's rows ----------------------------------------------------------------------------------------

def test_a_backend_that_cannot_take_the_model_fails_its_row_and_not_the_others(model, inputs, tmp_path,
                                                                               monkeypatch) -> None:
    """One runtime's refusal is that file's failed row, with the reason; the other backends still export."""
    from edgekd.export.orchestrate import ExportSettings, ParitySpec, Source, export_one
    from edgekd.recipe.common import ParityBudget

    source = Source("student", "float", model, SHAPE)
    spec = ParitySpec(inputs=inputs, budgets={"fp32": ParityBudget(max_abs_diff=1e-3)})
    openvino = EXPORTERS.get("openvino")

    def refuse(*args, **kwargs):
        raise EdgekdError("openvino has no kernel for this model")

    monkeypatch.setattr(openvino, "export", refuse)
    failed = export_one(source, "openvino", "fp32", tmp_path, spec, ExportSettings(opset=17))
    assert (failed.status, failed.reason, failed.gated) == ("failed", "openvino has no kernel for this model", True)
    monkeypatch.undo()
    assert export_one(source, "onnx", "fp32", tmp_path, spec, ExportSettings(opset=17)).status == "passed"
