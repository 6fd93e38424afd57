"""Latency prediction: hand-countable MACs, LOMO reporting, uncalibrated pairs, the CLI and --calibrate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgekd.errors import EdgekdError
from edgekd.profile.calibrate import lomo, lomo_tables
from edgekd.profile.fit import Factors, Sample, fit
from edgekd.profile.graph import graph_nodes
from edgekd.profile.predict import load_calibration, predict
from edgekd.profile.roofline import Roofs, Target
from tests.conftest import REPO, run_cli

CALIBRATION = REPO / "devices" / "calibration.json"


def _tiny_onnx(path: Path, channels: int = 8) -> Path:
    """Conv(3->C, 3x3, pad 1) on 1x3x8x8 -> Relu -> GlobalAveragePool -> Flatten -> Gemm(C->4)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = [numpy_helper.from_array(np.zeros((channels, 3, 3, 3), np.float32), "w"),
               numpy_helper.from_array(np.zeros((4, channels), np.float32), "fc")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_macs_of_a_tiny_graph_match_the_hand_count(tmp_path: Path) -> None:
    nodes = {n.op: n for n in graph_nodes(_tiny_onnx(tmp_path / "tiny.onnx"))}
    assert nodes["Conv"].macs == 8 * 8 * 8 * 3 * 3 * 3  # output H x W x Cout x Cin x kernel area = 13824
    assert nodes["Gemm"].macs == 4 * 8
    assert nodes["Conv"].kind == "conv" and nodes["Gemm"].kind == "matmul"
    assert nodes["Relu"].fusable and not nodes["GlobalAveragePool"].fusable
    assert "Flatten" not in nodes  # a view: no kernel
    assert nodes["Conv"].weight_elems == 8 * 3 * 3 * 3 and nodes["Conv"].io_elems == 3 * 64 + 8 * 64


def _sample(device: str, model: str, macs: int, latency: float) -> Sample:
    tgt = Target(device, "ncnn", "cpu", "fp32", "fp32", 4, None)
    work = [("conv", macs, 1000), ("pwconv", macs // 2, 1000), ("eltwise", 0, 500)]
    return Sample(tgt, Roofs(50.0, 4, 10.0, "test"), 4, work, latency, model, f"{device}-{model}")


def test_lomo_error_is_computed_and_reported() -> None:
    samples = [_sample(d, m, macs, scale * macs / 1e6) for d, scale in (("a", 1.0), ("b", 0.5))
               for m, macs in (("m1", 10**8), ("m2", 3 * 10**8), ("m3", 10**9))]
    samples.append(_sample("c", "m1", 10**8, 5.0))  # the only row of its group: not predictable when held out
    results = lomo(samples)
    assert len(results) == len(samples) and all("error_pct" in r for r in results)
    tables = lomo_tables(results)
    assert tables["unpredictable_rows"] == ["c-m1"]
    assert tables["per_device"]["a"]["n"] == 3 and tables["overall"]["n"] == 6
    assert {"median_abs_pct", "within_10pct", "within_25pct"} <= set(tables["overall"])


def test_the_committed_calibration_reports_lomo_per_device() -> None:
    doc = load_calibration(CALIBRATION)
    assert doc["lomo"]["overall"]["n"] > 0
    assert set(doc["lomo"]["per_device"]) <= {"rpi4", "rpi5", "jetson-nano", "jetson-orin-nano", "jetson-agx-orin",
                                              "jetson-orin-nano-super", "jetson-xavier-nx"}
    assert all(skip["reason"] for skip in doc["rows_skipped"])


def test_an_uncalibrated_pair_is_refused_or_flagged(tmp_path: Path) -> None:
    model = _tiny_onnx(tmp_path / "tiny.onnx")
    with pytest.raises(EdgekdError, match="no calibration data for rpi4/onnxruntime/cpu/fp32"):
        predict(model, "rpi4", "onnxruntime", "fp32", calibration=CALIBRATION)
    result = predict(model, "rpi4", "onnxruntime", "fp32", calibration=CALIBRATION, allow_uncalibrated=True)
    assert result["calibrated"] is False and result["notes"][0].startswith("UNCALIBRATED")


def test_unsupported_precision_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(EdgekdError, match="supports fp32, fp16"):
        predict(_tiny_onnx(tmp_path / "t.onnx"), "jetson-nano", "tensorrt", "int8", calibration=CALIBRATION)


def test_cli_json_has_latency_and_provenance(tmp_path: Path) -> None:
    model = _tiny_onnx(tmp_path / "tiny.onnx")
    done = run_cli("predict", str(model), "--device", "rpi5", "--runtime", "ncnn", "--precision", "fp32", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["latency_ms"] > 0 and result["mode"] == "predicted" and result["calibrated"] is True
    assert result["compute_precision"] == "fp16"  # ncnn's default fp16 arithmetic on the A76
    assert result["calibration"]["group"] == "rpi5/ncnn/cpu/fp16" and "conv" in result["by_kind_ms"]


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    done = run_cli("predict", str(tmp_path / "missing.onnx"), "--device", "rpi5")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not found" in done.stderr
    done = run_cli("predict", str(_tiny_onnx(tmp_path / "t.onnx")), "--device", "rpi5", "--precision", "fp8")
    assert done.returncode == 2 and "unknown precision 'fp8'" in done.stderr


def test_calibrate_from_a_small_csv_changes_the_factors(tmp_path: Path) -> None:
    calibration = tmp_path / "calibration.json"
    shutil.copy(CALIBRATION, calibration)
    for channels in (8, 32):
        _tiny_onnx(tmp_path / f"tiny{channels}.onnx", channels)
    (tmp_path / "measured.csv").write_text(
        "model,runtime,precision,threads,latency_ms\ntiny8.onnx,ncnn,fp32,4,5.0\ntiny32.onnx,ncnn,fp32,4,9.0\n")
    before = json.loads(calibration.read_text())["factors"]["eff"]["rpi5/ncnn/cpu/fp16"]
    done = run_cli("predict", "--calibrate", str(tmp_path / "measured.csv"), "--device", "rpi5",
                   "--calibration-file", str(calibration), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(calibration.read_text())
    assert doc["factors"]["eff"]["rpi5/ncnn/cpu/fp16"] != pytest.approx(before)
    assert doc["groups"]["rpi5/ncnn/cpu/fp16"]["source"] == "user: measured.csv"
    assert doc["factors"]["eff"]["rpi4/ncnn/cpu/fp32"] == pytest.approx(Factors.from_dict(
        json.loads(CALIBRATION.read_text())["factors"]).eff["rpi4/ncnn/cpu/fp32"])  # other devices untouched


def test_fit_recovers_a_known_efficiency() -> None:
    samples = [_sample("a", m, macs, 1.0) for m, macs in (("m1", 10**8), ("m2", 10**9))]
    truth = Factors(eff={"a/ncnn/cpu/fp32": 0.25})
    from edgekd.profile.fit import predict_ms

    measured, _ = predict_ms(truth, samples)
    for sample, value in zip(samples, measured):
        sample.latency_ms = value
    fitted = fit(samples, init=Factors(eff={"a/ncnn/cpu/fp32": 1.0}), only_groups={"a/ncnn/cpu/fp32"})
    assert fitted.eff["a/ncnn/cpu/fp32"] == pytest.approx(0.25, rel=0.05)
