"""The ncnn backend: pnnx from the ONNX file, fp32 and fp16 pairs, outputs in the graph's order, parity through
ncnn's binding. Skipped without the ncnn extra."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from backend.two_heads import RowsScatter, TwoHeads  # noqa: E402  (tests/ is on sys.path)
from edgekd.errors import EdgekdError  # noqa: E402
from edgekd.export import BACKENDS, runtime_for_file  # noqa: E402
from edgekd.export.parity import SCALED_BUDGETS, check_parity  # noqa: E402

NCNN = BACKENDS.get("ncnn")
pytestmark = pytest.mark.skipif(not NCNN.is_available(), reason="the ncnn extra is not installed")
SHAPE = (1, 3, 16, 16)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return TwoHeads().eval()


@pytest.fixture(scope="module")
def pairs(model, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ncnn")
    return {precision: NCNN.export(model, torch.zeros(SHAPE), folder / f"model.{precision}.param", precision=precision,
                                   opset=17, output_names=("classes", "boxes")).path
            for precision in ("fp32", "fp16")}


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((6, *SHAPE[1:])).astype(np.float32)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_both_outputs_match_pytorch_within_the_scaled_budgets(model, pairs, inputs, precision) -> None:
    result = check_parity(model, pairs[precision], inputs, runtime="ncnn", precision=precision,
                          **SCALED_BUDGETS[precision])
    assert result.passed, result.failure_reason()
    assert result.execution["inference_precision"] == ("f32" if precision == "fp32" else
                                                       "ncnn default (fp16 storage/arithmetic where the CPU has it)")


def test_fp16_stores_half_the_weights_and_the_input_shape_is_in_the_param(pairs) -> None:
    fp32, fp16 = (pairs[p].with_suffix(".bin").stat().st_size for p in ("fp32", "fp16"))
    assert 0.45 < fp16 / fp32 < 0.6
    assert "0=16 1=16 2=3" in pairs["fp32"].read_text().splitlines()[2]
    assert NCNN.declared_input(pairs["fp32"]) == [1, 3, 16, 16]
    assert runtime_for_file(pairs["fp32"]) == "ncnn"


def test_swapped_weights_fail_parity(model, pairs, inputs, tmp_path) -> None:
    """A pair whose .bin is another model's (same layers, other values) must fail, not load and pass."""
    torch.manual_seed(1)
    other = NCNN.export(TwoHeads().eval(), torch.zeros(SHAPE), tmp_path / "other.param", opset=17).path
    broken = tmp_path / "broken.param"
    broken.write_text(pairs["fp32"].read_text())
    broken.with_suffix(".bin").write_bytes(other.with_suffix(".bin").read_bytes())
    result = check_parity(model, broken, inputs, runtime="ncnn", precision="fp32", **SCALED_BUDGETS["fp32"])
    assert not result.passed and result.failure_reason().startswith("SNR")


def test_int8_is_refused_with_the_reason(model, tmp_path) -> None:
    with pytest.raises(EdgekdError, match="ncnn2table and ncnn2int8"):
        NCNN.export(model, torch.zeros(SHAPE), tmp_path / "model.int8.param", precision="int8")


def test_a_file_that_is_not_an_ncnn_param_is_named(tmp_path) -> None:
    fake = tmp_path / "fake.param"
    fake.write_text("hello\n")
    with pytest.raises(EdgekdError, match="fake.param: not an ncnn .param file"):
        NCNN.declared_input(fake)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt V2's GRN: divides by a mean over one axis, the reduction pnnx writes with no axes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.conv(x).permute(0, 2, 3, 1)  # N, H, W, C as in ConvNeXt V2
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.head((x * nx).mean(dim=(1, 2)))


def test_a_single_axis_mean_keeps_its_axis(tmp_path) -> None:
    """Without edgekd's repair the mean is a pass-through in ncnn, nx is 1 everywhere and parity fails."""
    torch.manual_seed(0)
    model = GlobalResponseNorm().eval()
    pair = NCNN.export(model, torch.zeros(SHAPE), tmp_path / "grn.param", opset=18).path  # axes as an input
    means = [line for line in pair.read_text().splitlines() if line.startswith("Reduction") and "-23303=0" in line]
    assert not means, means
    inputs = np.random.default_rng(0).standard_normal((4, *SHAPE[1:])).astype(np.float32)
    result = check_parity(model, pair, inputs, runtime="ncnn", precision="fp32", **SCALED_BUDGETS["fp32"])
    assert result.passed and result.snr_db > 100, result.failure_reason()


def test_an_operator_ncnn_lacks_is_refused_at_export_naming_it() -> None:
    """pnnx keeps an operator ncnn has no layer for (mono3d's ScatterND) under its own name; ncnn would fail only
    when the device loads the file."""
    from edgekd.export.backends.ncnn import _check_supported

    param = "7767517\n3 3\nInput in0 0 1 in0\nScatterND scatter_0 1 1 in0 1\nConvolution conv_1 1 1 1 out0 0=4\n"
    with pytest.raises(EdgekdError, match="ncnn has no layer for ScatterND"):
        _check_supported(param, Path("lift.onnx"))
    _check_supported(param.replace("ScatterND", "Crop"), Path("fine.onnx"))


def test_a_rows_scatter_becomes_a_matrix_product_and_passes_parity(inputs, tmp_path) -> None:
    """ncnn has no ScatterND layer: the exact rewrite to MatMul makes the mono3d lift's form convertible."""
    import onnx

    from edgekd.export.ncnn_onnx import scatter_add_as_matmul
    from edgekd.export.backends.onnx import OnnxExporter

    torch.manual_seed(0)
    model = RowsScatter().eval()
    source = OnnxExporter().export(model, torch.zeros(1, 3, 8, 8), tmp_path / "rows.onnx").path
    assert "ScatterND" in {n.op_type for n in onnx.load(str(source)).graph.node}
    rewritten = tmp_path / "rewritten.onnx"
    rewritten.write_bytes(source.read_bytes())
    assert scatter_add_as_matmul(rewritten) == 1
    assert "ScatterND" not in {n.op_type for n in onnx.load(str(rewritten)).graph.node}
    pair = NCNN.export(model, torch.zeros(1, 3, 8, 8), tmp_path / "rows.param", source_onnx=source).path
    small = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    result = check_parity(model, pair, small, runtime="ncnn", precision="fp32", **SCALED_BUDGETS["fp32"])
    assert result.passed and result.snr_db > 100, result.failure_reason()


def test_a_scatter_with_computed_indices_is_left_alone(tmp_path) -> None:
    from onnx import TensorProto, helper, save

    from edgekd.export.ncnn_onnx import scatter_add_as_matmul

    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["zeros"]),
             helper.make_node("Cast", ["where"], ["index"], to=TensorProto.INT64),
             helper.make_node("ScatterND", ["zeros", "index", "updates"], ["y"], reduction="add")]
    graph = helper.make_graph(nodes, "computed", [
        helper.make_tensor_value_info("shape", TensorProto.INT64, [2]),
        helper.make_tensor_value_info("where", TensorProto.FLOAT, [5, 1]),
        helper.make_tensor_value_info("updates", TensorProto.FLOAT, [5, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = tmp_path / "computed.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    before = path.read_bytes()
    assert scatter_add_as_matmul(path) == 0 and path.read_bytes() == before


@pytest.mark.parametrize(("indices", "rewritten"), [(np.arange(6).reshape(1, 6, 1, 1), 1),
                                                     (np.array([[1, 0, 2, 3, 4, 5]]), 0)])
def test_a_gather_of_every_element_in_order_becomes_a_reshape(indices, rewritten, tmp_path) -> None:
    """The dynamo exporter's flatten of a pooled tensor (`as_strided`: a Gather of 0..n-1); any other order stays
    a Gather (and is refused: ncnn has no Gather layer)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper, save

    from edgekd.export.ncnn_onnx import identity_gathers_as_reshape

    nodes = [helper.make_node("Gather", ["x", "index"], ["y"], axis=0)]
    graph = helper.make_graph(nodes, "flatten", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(indices.astype(np.int64), "index")])
    path = tmp_path / "gather.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    x = np.arange(6, dtype=np.float32) * 1.5
    before = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    assert identity_gathers_as_reshape(path) == rewritten
    after = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    assert np.array_equal(before, after)


class ChannelsLastGrnMlp(nn.Module):
    """ConvNeXt V2's MLP as timm runs it: Linear → GELU → GRN → Linear on an (N, H, W, C) tensor."""

    def __init__(self) -> None:
        super().__init__()
        from timm.layers.grn import GlobalResponseNorm

        self.fc1, self.act, self.grn, self.fc2 = nn.Linear(8, 32), nn.GELU(), GlobalResponseNorm(32), nn.Linear(32, 8)
        with torch.no_grad():  # trained-like: GRN on, channels of different scales
            self.grn.weight.normal_(0, 0.2)
            self.fc1.weight.mul_(torch.linspace(0.1, 5, 32).view(32, 1))

    def forward(self, x):
        return self.fc2(self.grn(self.act(self.fc1(x.permute(0, 2, 3, 1))))).permute(0, 3, 1, 2)


def test_convnext_v2_grn_mlp_converts_exactly(tmp_path) -> None:
    """pnnx wrote the Linear as Gemm between Reshapes that keep the batch in a 4-D blob, and GRN's channel mean then
    got the batch-less axis (H instead of C): 15.9 dB. edgekd converts such a Linear as a 1×1 convolution."""
    torch.manual_seed(0)
    model = ChannelsLastGrnMlp().eval()
    x = torch.randn(1, 8, 6, 6)
    onnx_file = BACKENDS.get("onnx").export(model, x, tmp_path / "m.onnx")
    result = NCNN.export(model, x, tmp_path / "m.ncnn.param", precision="fp32", source_onnx=onnx_file.path)
    got = NCNN.open_session(result.path, threads=1, precision="fp32").run(x.numpy())[0]
    want = model(x).detach().numpy()
    assert 10 * np.log10((want ** 2).sum() / ((got - want) ** 2).sum()) > 90


def test_only_a_linear_on_a_rank_4_tensor_becomes_a_convolution(tmp_path) -> None:
    import onnx

    from edgekd.export.ncnn_onnx import channels_last_linear_as_conv

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.on_map, self.on_tokens = nn.Linear(8, 8), nn.Linear(36, 4)

        def forward(self, x):  # (N, C, H, W): one Linear on channels-last maps, one on a flattened (N, C, H*W)
            y = self.on_map(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            return self.on_tokens(y.flatten(2)), y @ y.transpose(2, 3)  # the last MatMul has no constant weight

    torch.manual_seed(0)
    model, x = Mixed().eval(), torch.randn(1, 8, 6, 6)
    path = BACKENDS.get("onnx").export(model, x, tmp_path / "m.onnx", output_names=("a", "b")).path
    assert channels_last_linear_as_conv(path) == 1
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops.count("Conv") == 1 and ops.count("MatMul") == 2
    import onnxruntime as ort

    got = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})
    for have, want in zip(got, model(x)):  # the rewrite is exact
        np.testing.assert_allclose(have, want.detach().numpy(), rtol=1e-5, atol=1e-5)
