"""ONNX export + parity against PyTorch on a tiny conv net (skipped without onnxruntime)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edgekd.errors import CheckFailed, EdgekdError  # noqa: E402
from edgekd.export import EXPORTERS  # noqa: E402
from edgekd.export.parity import assert_parity, check_parity  # noqa: E402

SHAPE = (1, 3, 32, 32)


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


def mean_abs_error(outputs: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean(np.abs(outputs - targets)))


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    net = TinyNet()
    net.features[1].running_mean.uniform_(-0.5, 0.5)  # non-trivial BN statistics, folded at export
    net.features[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return EXPORTERS.get("onnx").export(model, torch.zeros(SHAPE), path, opset=18)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((70, *SHAPE[1:])).astype(np.float32), rng.standard_normal((70, 2)).astype(np.float32)


def test_export_writes_a_valid_single_file(exported) -> None:
    assert exported.path.is_file() and exported.size_bytes == exported.path.stat().st_size
    assert not list(exported.path.parent.glob("*.data")) and not list(exported.path.parent.glob("*.tmp"))
    proto = onnx.load(str(exported.path))
    onnx.checker.check_model(proto, full_check=True)
    assert exported.opset >= 17
    assert any(o.domain in ("", "ai.onnx") and o.version == exported.opset for o in proto.opset_import)
    assert exported.extra["exporter"] in ("dynamo", "torchscript") and exported.extra["simplified"] is True
    assert {p.key: p.value for p in proto.metadata_props}["edgekd.precision"] == "fp32"
    assert exported.to_dict()["path"] == str(exported.path)


def test_parity_within_budget(model, exported, data) -> None:
    inputs, targets = data
    # batch_size 32 over 70 samples also exercises the dynamic batch and a short last batch
    result = check_parity(model, exported.path, inputs, targets=targets, metric_fn=mean_abs_error,
                          max_abs_diff=1e-4, max_metric_delta=1e-5, batch_size=32)
    assert result.passed, result.failure_reason()
    assert result.max_abs_diff < 1e-4 and result.samples == 70
    assert abs(result.metric_delta) < 1e-6
    assert result.failure_reason() == ""
    assert_parity(result, "tiny")  # does not raise


def test_broken_parity_raises_check_failed(exported, data) -> None:
    torch.manual_seed(2)
    perturbed = TinyNet().eval()  # other weights: outputs clearly differ from the exported file
    inputs, targets = data
    result = check_parity(perturbed, exported.path, inputs, targets=targets, metric_fn=mean_abs_error,
                          max_abs_diff=0.0, max_metric_delta=1e-6)
    assert not result.passed
    with pytest.raises(CheckFailed, match=r"tiny: parity out of budget — max \|Δ\| .* > budget 0") as info:
        assert_parity(result, "tiny")
    assert "\n" not in str(info.value)


class Spiky(nn.Module):
    """`inner` with its first output moved by `shift` on the samples whose first pixel exceeds 1.5 (≈7%)."""

    def __init__(self, inner: nn.Module, shift: float) -> None:
        super().__init__()
        self.inner, self.shift = inner, shift

    def forward(self, x):
        out = self.inner(x)
        spike = torch.where(x[:, 0, 0, 0] > 1.5, self.shift, 0.0)  # not a product: 0 × NaN would be NaN everywhere
        return torch.cat([out[:, :1] + spike[:, None], out[:, 1:]], dim=1)


def test_error_stat_gates_the_median_or_p99_instead_of_the_max(model, exported, data) -> None:
    inputs = data[0]
    spiky = Spiky(model, 10.0).eval()
    spiked = int((inputs[:, 0, 0, 0] > 1.5).sum())
    assert 2 <= spiked <= 10  # a few percent of the 140 output elements: above the 99th percentile, not the median

    def gated(stat: str):
        return check_parity(spiky, exported.path, inputs, max_abs_diff=1e-3, max_metric_delta=None, error_stat=stat)

    worst, p99, median = gated("max"), gated("p99"), gated("median")
    assert not worst.passed and not p99.passed and median.passed, median.failure_reason()
    assert worst.max_abs_diff == pytest.approx(10.0, abs=1e-3) == median.max_abs_diff  # the max is always reported
    assert median.abs_diff_stat < 1e-4 and median.error_stat == "median"
    assert p99.failure_reason().startswith("p99 |Δ|")


def test_a_nan_fails_whatever_statistic_is_gated(model, exported, data) -> None:
    result = check_parity(Spiky(model, float("nan")).eval(), exported.path, data[0], max_abs_diff=1e-3,
                          max_metric_delta=None, error_stat="median")
    # a few NaN elements, where the median of finite differences would pass
    assert not result.passed and result.failure_reason() == "median |Δ| nan > budget 0.001"
    with pytest.raises(EdgekdError, match="error_stat must be one of max, p99, median"):
        check_parity(model, exported.path, data[0], max_abs_diff=1e-3, max_metric_delta=None, error_stat="mean")


def test_int8_of_a_float_model_and_fp16_are_refused_with_a_reason(model, tmp_path) -> None:
    with pytest.raises(EdgekdError, match="int8 ONNX needs a quantized model"):
        EXPORTERS.get("onnx").export(model, torch.zeros(SHAPE), tmp_path / "x.onnx", precision="int8")
    with pytest.raises(EdgekdError, match="cannot produce precision 'fp16': ONNX Runtime's CPU provider"):
        EXPORTERS.get("onnx").export(model, torch.zeros(SHAPE), tmp_path / "x.onnx", precision="fp16")
    assert not (tmp_path / "x.onnx").exists()


def test_bad_opset_and_suffix_are_refused(model, tmp_path) -> None:
    with pytest.raises(EdgekdError, match="opset 13"):
        EXPORTERS.get("onnx").export(model, torch.zeros(SHAPE), tmp_path / "x.onnx", opset=13)
    with pytest.raises(EdgekdError, match="'.onnx' files"):
        EXPORTERS.get("onnx").export(model, torch.zeros(SHAPE), tmp_path / "x.bin")


def test_opset_17_is_honoured_without_simplify(model, tmp_path, data) -> None:
    result = EXPORTERS.get("onnx").export(model, torch.zeros(SHAPE), tmp_path / "m17.onnx", opset=17, simplify=False)
    assert result.opset == 17 and result.extra["simplified"] is False
    parity = check_parity(model, result.path, data[0], max_abs_diff=1e-4, max_metric_delta=None)
    assert parity.passed and parity.metric_delta is None


class Branchy(nn.Module):
    """Data-dependent control flow: torch.export refuses it, the TorchScript tracer freezes one branch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        return y * 2 if y.sum() > 0 else y * 3


def test_dynamo_failure_falls_back_and_is_recorded(tmp_path) -> None:
    result = EXPORTERS.get("onnx").export(Branchy().eval(), torch.ones(SHAPE), tmp_path / "b.onnx", opset=18)
    assert result.extra["exporter"] == "torchscript"
    assert len(result.extra["failed_attempts"]) == 2 and all(a.startswith("dynamo") for a in result.extra["failed_attempts"])
    assert any(w.startswith("TracerWarning") for w in result.extra["warnings"])
