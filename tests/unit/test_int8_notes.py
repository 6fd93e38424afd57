"""The report's line on whether int8 paid off on each runtime, and the reason it gives when it did not."""

from __future__ import annotations

from edgekd.report.schema import DeploymentEntry
from edgekd.tasks.report_stage import _int8_notes


def entry(runtime: str, speedup: float | None, variant: str = "qat", precision: str = "int8",
          int8_convs: int | None = None) -> DeploymentEntry:
    kernels = None if int8_convs is None else {"int8_convs": int8_convs, "float_convs": 20 - int8_convs,
                                                 "int8_matmuls": 0, "float_matmuls": 0, "quantized_convs": 20,
                                                 "quantized_matmuls": 0}
    return DeploymentEntry(role="student", variant=variant, backend=runtime, runtime=runtime, precision=precision,
                           status="passed", speedup_vs_fp32=speedup, int8_kernels=kernels)


def test_slower_int8_on_onnx_runtime_names_the_float_convs() -> None:
    [note] = _int8_notes([entry("onnxruntime", 1 / 2.92, int8_convs=3)])
    assert note.startswith("onnxruntime: int8 is not faster than fp32 on this host (2.92× the fp32 time).")
    assert "runs a conv in int8 only when a QuantizeLinear directly follows it" in note


def test_slower_int8_with_every_conv_fused_gets_the_generic_reason() -> None:
    [note] = _int8_notes([entry("onnxruntime", 0.9, int8_convs=20)])
    assert "Q/DQ work around each int8 kernel" in note and "QuantizeLinear" not in note


def test_other_runtimes_get_the_generic_reason_and_faster_int8_its_ratio() -> None:
    slow, fast = _int8_notes([entry("openvino", 0.5), entry("openvino", 2.03)])
    assert "Q/DQ work around each int8 kernel" in slow and "QuantizeLinear" not in slow
    assert fast == "openvino: int8 is 2.03× faster than fp32 on this host."


def test_only_timed_qat_int8_files_are_described() -> None:
    assert _int8_notes([entry("openvino", 0.5, variant="ptq"), entry("openvino", 0.5, precision="fp16"),
                        entry("openvino", None)]) == []


def test_a_latency_is_paired_only_with_the_accuracy_of_the_same_execution() -> None:
    from edgekd.profile.local import ProfileResult
    from edgekd.tasks.report_stage import _deployments

    def row(checked: str) -> dict:
        return {"role": "student", "variant": "float", "backend": "openvino", "runtime": "openvino",
                "precision": "fp16", "status": "passed", "path": "export/openvino/student.fp16.xml",
                "parity": {"max_abs_diff": 1e-3, "execution": {"inference_precision": checked}}}

    latency = {"student/openvino/fp16": ProfileResult.model_construct(settings={"inference_precision": "bf16"})}
    [same], notes = _deployments([row("bf16")], latency)
    assert same.latency is latency["student/openvino/fp16"] and same.inference_precision == "bf16" and not notes
    [other], notes = _deployments([row("f32")], latency)  # checked in f32, timed in bf16: never paired
    assert other.latency is None
    assert notes == ["student openvino fp16: timed in bf16 arithmetic but checked in f32; its latency is left out "
                     "rather than paired with another execution's accuracy."]


def test_the_default_execution_of_a_file_is_noted() -> None:
    from edgekd.tasks.report_stage import _default_execution_notes

    row = {"role": "student", "variant": "qat", "runtime": "openvino", "precision": "int8",
           "parity": {"execution": {"inference_precision": "f32"}},
           "extra": {"default_execution": {"inference_precision": "bf16", "passed": False,
                                           "reason": "SNR 9.0 dB < budget 12 dB"}}}
    [note] = _default_execution_notes([row])
    assert "computes in bf16, and that execution fails parity (SNR 9.0 dB < budget 12 dB)" in note
    assert "pins f32" in note
