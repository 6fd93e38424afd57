"""TensorRT lint: small ONNX graphs that each break one rule, and clean graphs that pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekd.errors import EdgekdError  # noqa: E402
from edgekd.export.trt_lint import lint_onnx  # noqa: E402

FLOAT = TensorProto.FLOAT
X_SHAPE = [1, 3, 8, 8]
Y_CONV = helper.make_tensor_value_info("y", FLOAT, [1, 4, 8, 8])  # a declared output shape, for onnx.checker


def tensor(name: str, elem_type: int = FLOAT, shape=X_SHAPE):
    return helper.make_tensor_value_info(name, elem_type, shape)


def init(name: str, values, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def model(nodes, inputs=None, outputs=None, initializers=(), opset: int = 17):
    graph = helper.make_graph(nodes, "g", inputs or [tensor("x")], outputs or [tensor("y", shape=None)],
                              initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def codes(report, severity: str | None = None) -> list[str]:
    return [f.code for f in report.findings if severity is None or f.severity == severity]


def conv_weight(name: str = "w", out_channels: int = 4):
    return init(name, np.random.default_rng(0).standard_normal((out_channels, 3, 3, 3)))


# --- Q/DQ graph builders: x -> Q/DQ -> Conv(Q/DQ weights) ---------------------------------------------------------

def qdq_nodes(data: str, prefix: str, scale: str, zero: str, axis: int | None = None) -> list:
    extra = {} if axis is None else {"axis": axis}
    return [helper.make_node("QuantizeLinear", [data, scale, zero], [f"{prefix}_q"], name=f"{prefix}_quant", **extra),
            helper.make_node("DequantizeLinear", [f"{prefix}_q", scale, zero], [f"{prefix}_dq"],
                             name=f"{prefix}_dequant", **extra)]


def qdq_conv_model(act_zero=None, act_scale=None, weight_scale=None, weight_zero=None, extra_nodes=(),
                   extra_inits=(), weight_source: str = "w", output: str = "y"):
    """A clean explicit-quantization Conv unless an argument says otherwise."""
    initializers = [
        init("x_scale", act_scale if act_scale is not None else 0.02),
        act_zero if act_zero is not None else init("x_zero", 0, np.int8),
        init("w_scale", weight_scale if weight_scale is not None else [0.01, 0.02, 0.03, 0.04]),
        weight_zero if weight_zero is not None else init("w_zero", [0, 0, 0, 0], np.int8),
        *extra_inits,
    ]
    if weight_source == "w":
        initializers.append(conv_weight())
    axis = 0 if np.size(weight_scale if weight_scale is not None else [1, 2]) > 1 else None
    act_axis = 1 if act_scale is not None and np.size(act_scale) > 1 else None
    nodes = [
        *extra_nodes,
        *qdq_nodes("x", "x", "x_scale", "x_zero", act_axis),
        *qdq_nodes(weight_source, "w", "w_scale", "w_zero", axis),
        helper.make_node("Conv", ["x_dq", "w_dq"], [output], name="conv", pads=[1, 1, 1, 1]),
    ]
    return model(nodes, initializers=initializers)


# --- clean graphs -------------------------------------------------------------------------------------------------

def test_clean_float_graph_has_no_findings() -> None:
    clean = model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["c"], ["y"])], initializers=[conv_weight()], outputs=[Y_CONV])
    onnx.checker.check_model(clean)
    report = lint_onnx(clean, target_tensorrt="8.2")
    assert report.findings == [] and report.passed
    assert report.to_dict() == {"target_tensorrt": "8.2", "passed": True,
                                "counts": {"error": 0, "warning": 0, "info": 0}, "findings": []}


def test_clean_int8_qdq_graph_passes() -> None:
    clean = qdq_conv_model()
    clean.graph.output[0].CopyFrom(Y_CONV)
    onnx.checker.check_model(clean)
    report = lint_onnx(clean, target_tensorrt="10.3")
    assert report.passed and report.findings == []


def test_lint_reads_a_path(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(qdq_conv_model(act_zero=init("x_zero", 0, np.uint8)), str(path))
    for given in (path, str(path)):
        assert "qdq-not-int8" in codes(lint_onnx(given))


# --- operators ----------------------------------------------------------------------------------------------------

def test_custom_domain_op_is_an_error_reported_once() -> None:
    nodes = [helper.make_node("GridSamplePlugin", ["x"], ["a"], domain="com.example", name="p1"),
             helper.make_node("GridSamplePlugin", ["a"], ["y"], domain="com.example", name="p2")]
    report = lint_onnx(model(nodes), target_tensorrt="10.3")
    assert codes(report, "error") == ["custom-domain-op"]
    assert "com.example::GridSamplePlugin" in report.findings[0].message and report.findings[0].node == "p1"
    assert not report.passed


@pytest.mark.parametrize("target", ["8.2", "8.6", "10.3"])
def test_always_unsupported_op_is_an_error_on_every_release(target: str) -> None:
    node = helper.make_node("StringNormalizer", ["s"], ["t"], name="norm", case_change_action="LOWER")
    strings = model([node], inputs=[tensor("s", TensorProto.STRING, [4])],
                    outputs=[tensor("t", TensorProto.STRING, [4])])
    report = lint_onnx(strings, target_tensorrt=target)
    assert [(f.severity, f.code, f.node) for f in report.findings] == [("error", "unsupported-op", "norm")]


@pytest.mark.parametrize("op", ["NonZero", "Unique"])
@pytest.mark.parametrize("target, severity", [("8.2", "error"), ("8.4", "error"), ("8.5", "warning"),
                                              ("10.3", "warning")])
def test_op_missing_from_trt84_is_an_error_before_85_and_a_warning_after(op: str, target: str, severity: str) -> None:
    report = lint_onnx(model([helper.make_node(op, ["x"], ["y"], name="n")]), target_tensorrt=target)
    assert [(f.severity, f.code) for f in report.findings] == [(severity, "unsupported-op")]
    assert report.passed is (severity != "error")


def layernorm_model():
    nodes = [helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["y"], name="ln", axis=-1)]
    return model(nodes, initializers=[init("gamma", np.ones(8)), init("beta", np.zeros(8))], opset=17)


@pytest.mark.parametrize("target", ["8.2", "8.5"])
def test_layernorm_before_trt86_is_an_error(target: str) -> None:
    report = lint_onnx(layernorm_model(), target_tensorrt=target)
    assert codes(report) == ["layernorm-opset17"] and "opset 16" in report.findings[0].message


@pytest.mark.parametrize("target", ["8.6", "10.3"])
def test_layernorm_from_trt86_is_fine(target: str) -> None:
    assert lint_onnx(layernorm_model(), target_tensorrt=target).findings == []


# --- shapes and dtypes --------------------------------------------------------------------------------------------

def test_dynamic_batch_is_info_and_other_dynamic_dims_are_warnings() -> None:
    dynamic = model([helper.make_node("Relu", ["x"], ["y"])], inputs=[tensor("x", shape=["batch", 3, "height", None])])
    report = lint_onnx(dynamic)
    found = [(f.severity, f.code) for f in report.findings]
    assert found == [("info", "dynamic-batch"), ("warning", "dynamic-shape"), ("warning", "dynamic-shape")]
    assert "axis 2" in report.findings[1].message and "axis 3" in report.findings[2].message
    assert report.passed


def reshape_model(shape_values):
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])]
    return model(nodes, initializers=[init("shape", shape_values, np.int64)])


def test_int64_initializer_within_int32_is_info() -> None:
    report = lint_onnx(reshape_model([1, -1]))
    assert [(f.severity, f.code) for f in report.findings] == [("info", "int64-weights")] and report.passed


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**40])
def test_int64_initializer_beyond_int32_is_an_error(value: int) -> None:
    report = lint_onnx(reshape_model([1, value]))
    assert codes(report, "error") == ["int64-overflow"] and not report.passed


def test_int64_initializer_at_the_int32_limits_is_fine() -> None:
    assert codes(lint_onnx(reshape_model([2**31 - 1, -(2**31)]))) == ["int64-weights"]


def test_double_graph_input_is_an_error_and_double_weights_a_warning() -> None:
    double_io = model([helper.make_node("Relu", ["x"], ["y"])], inputs=[tensor("x", TensorProto.DOUBLE)])
    assert codes(lint_onnx(double_io), "error") == ["double-io"]
    double_init = model([helper.make_node("Add", ["x", "b"], ["y"])], initializers=[init("b", [1.0], np.float64)])
    report = lint_onnx(double_init)
    assert [(f.severity, f.code) for f in report.findings] == [("warning", "double-tensor")] and report.passed


# --- Q/DQ placement -----------------------------------------------------------------------------------------------

def test_uint8_zero_point_is_refused() -> None:
    report = lint_onnx(qdq_conv_model(act_zero=init("x_zero", 0, np.uint8)))
    errors = [f for f in report.findings if f.severity == "error"]
    assert {f.code for f in errors} == {"qdq-not-int8"} and {f.node for f in errors} == {"x_quant", "x_dequant"}
    assert "uint8" in errors[0].message and not report.passed


def test_nonzero_zero_point_is_refused() -> None:
    report = lint_onnx(qdq_conv_model(act_zero=init("x_zero", 5, np.int8)))
    assert set(codes(report, "error")) == {"qdq-zero-point"}


def test_per_channel_activation_quantization_is_refused() -> None:
    report = lint_onnx(qdq_conv_model(act_scale=[0.01, 0.02, 0.03],
                                      act_zero=init("x_zero", [0, 0, 0], np.int8)))
    errors = [f for f in report.findings if f.severity == "error"]
    assert [(f.code, f.node) for f in errors] == [("qdq-per-channel-activation", "x_quant")]


def test_per_channel_weights_through_a_transpose_are_weights_not_activations() -> None:
    # The weight is stored as (Cin, Cout, kh, kw) and transposed in the graph: still derived from constants only.
    stored = init("w_stored", np.random.default_rng(1).standard_normal((3, 4, 3, 3)))
    transpose = helper.make_node("Transpose", ["w_stored"], ["w_t"], perm=[1, 0, 2, 3])
    report = lint_onnx(qdq_conv_model(extra_nodes=[transpose], extra_inits=[stored], weight_source="w_t"))
    assert report.passed and report.findings == []


def test_per_tensor_weights_are_info() -> None:
    report = lint_onnx(qdq_conv_model(weight_scale=0.05, weight_zero=init("w_zero", 0, np.int8)))
    assert [(f.severity, f.code, f.node) for f in report.findings] == [
        ("info", "qdq-per-tensor-weight", "w_quant"), ("info", "qdq-per-tensor-weight", "w_dequant")]


def test_scale_computed_in_the_graph_is_refused() -> None:
    nodes = [helper.make_node("ReduceMax", ["x"], ["x_max"], keepdims=0),
             helper.make_node("Div", ["x_max", "q_max"], ["x_scale"]),
             helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"], name="q"),
             helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["y"], name="dq")]
    report = lint_onnx(model(nodes, initializers=[init("q_max", 127.0), init("x_zero", 0, np.int8)]))
    assert [(f.code, f.node) for f in report.findings if f.severity == "error"] == [
        ("qdq-dynamic-scale", "q"), ("qdq-dynamic-scale", "dq")]


def test_scales_from_constant_nodes_count_as_constants() -> None:
    # The TorchScript exporter writes Q/DQ scales and zero points as Constant nodes, not initializers.
    constants = [helper.make_node("Constant", [], ["c_scale"], value=init("v1", 0.02)),
                 helper.make_node("Constant", [], ["c_zero"], value=init("v2", 0, np.int8))]
    nodes = [*constants, *qdq_nodes("x", "x", "c_scale", "c_zero"), helper.make_node("Relu", ["x_dq"], ["y"])]
    assert lint_onnx(model(nodes)).findings == []


def test_weighted_op_without_qdq_in_an_int8_graph_is_info() -> None:
    matmul = helper.make_node("MatMul", ["flat", "fc_w"], ["logits"], name="fc")
    flatten = helper.make_node("Flatten", ["y"], ["flat"])
    qdq = qdq_conv_model(extra_inits=[init("fc_w", np.zeros((256, 2)))])
    qdq.graph.node.extend([flatten, matmul])
    report = lint_onnx(qdq)
    assert [(f.severity, f.code, f.node) for f in report.findings] == [("info", "float-layer", "fc")]
    assert report.passed


def test_weighted_op_after_dq_and_a_reshape_is_quantized() -> None:
    qdq = qdq_conv_model(output="c")
    qdq.graph.initializer.extend([init("fc_w", np.zeros((256, 2))), init("flat_shape", [1, 256], np.int64)])
    qdq.graph.node.extend([*qdq_nodes("c", "c", "x_scale", "x_zero"),
                           helper.make_node("Reshape", ["c_dq", "flat_shape"], ["flat"]),
                           helper.make_node("MatMul", ["flat", "fc_w"], ["y"], name="fc")])
    assert codes(lint_onnx(qdq)) == ["int64-weights"]


def test_float_graph_gets_no_float_layer_findings() -> None:
    plain = model([helper.make_node("MatMul", ["x", "m"], ["y"])], initializers=[init("m", np.zeros((8, 8)))])
    assert lint_onnx(plain).findings == []


# --- report -------------------------------------------------------------------------------------------------------

def test_report_counts_and_passed() -> None:
    broken = qdq_conv_model(act_zero=init("x_zero", 0, np.uint8), weight_scale=0.05,
                            weight_zero=init("w_zero", 0, np.int8))
    broken.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    broken.graph.node.append(helper.make_node("NonZero", ["y"], ["nz"], name="nz"))
    data = lint_onnx(broken, target_tensorrt="10.3").to_dict()
    assert data["target_tensorrt"] == "10.3" and data["passed"] is False
    # errors: uint8 on Q and DQ; warnings: NonZero on >= 8.5 and the dynamic height; info: per-tensor weight Q and DQ
    assert data["counts"] == {"error": 2, "warning": 2, "info": 2}
    assert len(data["findings"]) == 6
    assert set(data["findings"][0]) == {"severity", "code", "message", "node"}


@pytest.mark.parametrize("version", ["ten", "10", "", "8.x"])
def test_bad_target_version_is_refused(version: str) -> None:
    with pytest.raises(EdgekdError, match="is not MAJOR.MINOR"):
        lint_onnx(layernorm_model(), target_tensorrt=version)
