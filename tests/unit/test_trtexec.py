"""trtexec: the on-device command line, and parsing what trtexec prints (TensorRT 10.x/8.6, 8.2 and 7.x formats).

The fixtures in tests/data/trtexec copy trtexec's printed line formats; the numbers are made up (see README.md there).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from edgekd.errors import EdgekdError
from edgekd.export.trtexec import legacy_workspace_flag, parse_trtexec_output, shell_line, trtexec_command

DATA = Path(__file__).resolve().parents[1] / "data" / "trtexec"


def fixture(name: str) -> str:
    return (DATA / name).read_text()


def without(text: str, fragment: str) -> str:
    return "\n".join(line for line in text.splitlines() if fragment not in line)


def stats(timing) -> tuple:
    return (timing.min_ms, timing.max_ms, timing.mean_ms, timing.median_ms, timing.percentiles_ms)


# --- parsing: TensorRT >= 8.6 summary (10.3 on Orin) --------------------------------------------------------------

def test_summary_format_every_number_in_its_field() -> None:
    report = parse_trtexec_output(fixture("trtexec_10.3_orin_fp16.txt"))
    assert report.format == "summary"
    assert report.throughput_qps == 2187.41
    assert stats(report.latency) == (0.44043, 1.02686, 0.46912, 0.46118, {"90": 0.48926, "95": 0.50537, "99": 0.62109})
    assert stats(report.enqueue) == (0.33154, 0.98486, 0.40137, 0.39404, {"90": 0.43311, "95": 0.45483, "99": 0.57886})
    assert stats(report.gpu_compute) == (0.39502, 0.93408, 0.42761, 0.42041,
                                         {"90": 0.44629, "95": 0.46045, "99": 0.56689})
    assert report.walltime_s == 3.00126 and report.total_gpu_compute_s == 2.80727


def test_summary_format_h2d_and_d2h_lines_do_not_leak_into_other_fields() -> None:
    report = parse_trtexec_output(fixture("trtexec_10.3_orin_fp16.txt"))
    # TensorRT >= 8.4 prints no End-to-End line: the field stays empty instead of borrowing H2D/D2H numbers.
    assert stats(report.end_to_end) == (None, None, None, None, {})
    assert 0.0336914 not in stats(report.latency) and 0.00292969 not in stats(report.gpu_compute)


def test_environment_from_the_device_block_and_banner() -> None:
    report = parse_trtexec_output(fixture("trtexec_10.3_orin_fp16.txt"))
    assert report.tensorrt_version == "10.3.0"
    assert report.device == "Orin"  # "Selected Device", not the "Device: 0" index of the options block
    assert report.compute_capability == "8.7"
    assert report.passed is True


def test_warnings_are_captured_without_their_bullets() -> None:
    report = parse_trtexec_output(fixture("trtexec_10.3_orin_fp16.txt"))
    assert report.warnings == [
        "Throughput may be bound by Enqueue Time rather than GPU Compute and the GPU may be under-utilized."]


@pytest.mark.parametrize("code, version", [("100300", "10.3.0"), ("8601", "8.6.1"), ("8201", "8.2.1")])
def test_version_comes_from_the_banner_code_when_the_version_line_is_missing(code: str, version: str) -> None:
    text = without(fixture("trtexec_10.3_orin_fp16.txt"), "TensorRT version:").replace("v100300", f"v{code}")
    assert parse_trtexec_output(text).tensorrt_version == version


def test_version_line_wins_over_the_banner() -> None:
    text = fixture("trtexec_10.3_orin_fp16.txt").replace("[TensorRT v100300]", "[TensorRT v8601]")
    assert parse_trtexec_output(text).tensorrt_version == "10.3.0"


def test_options_block_device_index_is_not_a_device_name() -> None:
    text = without(fixture("trtexec_10.3_orin_fp16.txt"), "Selected Device")
    assert "Device: 0" in text
    assert parse_trtexec_output(text).device is None


def test_failed_run_is_reported_as_not_passed() -> None:
    text = fixture("trtexec_10.3_orin_fp16.txt").replace("&&&& PASSED", "&&&& FAILED")
    assert parse_trtexec_output(text).passed is False
    assert parse_trtexec_output(without(text, "&&&& FAILED")).passed is None


def test_verbose_metric_explanations_do_not_overwrite_the_summary() -> None:
    # --verbose prints "Latency: the summation of ...", "Throughput: the observed ..." right after the summary.
    text = fixture("trtexec_10.3_orin_fp16.txt")
    marker = "Explanations of the performance metrics are printed in the verbose logs.\n"
    verbose = text.replace(marker, marker + fixture("trtexec_verbose_explanations.txt"))
    assert "Latency: the summation" in verbose
    assert parse_trtexec_output(verbose) == parse_trtexec_output(text)


# --- parsing: TensorRT 8.2 summary (one percentile, End-to-End line) ----------------------------------------------

def test_trt82_summary_single_percentile_and_end_to_end() -> None:
    report = parse_trtexec_output(fixture("trtexec_8.2_nano_fp16.txt"))
    assert report.format == "summary" and report.throughput_qps == 136.014
    assert stats(report.latency) == (7.18262, 9.87451, 7.33481, 7.29688, {"99": 8.71045})
    assert stats(report.end_to_end) == (7.19531, 9.89258, 7.34952, 7.31104, {"99": 8.72656})
    assert stats(report.enqueue) == (1.19531, 2.48413, 1.29154, 1.27686, {"99": 1.88525})
    assert stats(report.gpu_compute) == (6.86914, 9.50586, 7.00832, 6.97363, {"99": 8.37891})
    assert report.walltime_s == 3.02913 and report.total_gpu_compute_s == 2.88743


def test_trt82_environment_and_no_warnings() -> None:
    report = parse_trtexec_output(fixture("trtexec_8.2_nano_fp16.txt"))
    assert (report.tensorrt_version, report.device, report.compute_capability) == ("8.2.1", "NVIDIA Tegra X1", "5.3")
    assert report.passed is True and report.warnings == []


# --- parsing: TensorRT 7.x legacy blocks --------------------------------------------------------------------------

def test_legacy_format_every_number_in_its_field() -> None:
    report = parse_trtexec_output(fixture("trtexec_7.1_xavier_nx_fp16.txt"))
    assert report.format == "legacy"
    assert stats(report.latency) == (1.97754, 3.41699, 2.06812, 2.05859, {"99": 2.31348})
    # "(end to end ...)" on the Host Latency lines is the end-to-end metric
    assert stats(report.end_to_end) == (2.01611, 4.12305, 3.97539, 3.98438, {})
    assert stats(report.enqueue) == (0.612305, 1.10449, None, 0.651367, {})  # 7.x prints no enqueue mean
    assert stats(report.gpu_compute) == (1.89062, 3.3125, 1.97659, 1.96777, {"99": 2.21094})
    assert report.walltime_s == 3.00418
    assert report.total_gpu_compute_s == 2.86997
    assert report.throughput_qps == 0.0  # what 7.x printed for explicit-batch networks, kept as printed


def test_legacy_format_environment_is_not_guessed() -> None:
    report = parse_trtexec_output(fixture("trtexec_7.1_xavier_nx_fp16.txt"))
    # 7.x prints no version banner code, no "TensorRT version:" and no device block; only "Device: 0".
    assert report.tensorrt_version is None and report.device is None and report.compute_capability is None
    assert report.passed is True and report.warnings == []


def test_legacy_percentile_key_keeps_a_fractional_percent() -> None:
    text = fixture("trtexec_7.1_xavier_nx_fp16.txt").replace("at 99%", "at 99.9%")
    report = parse_trtexec_output(text)
    assert report.latency.percentiles_ms == {"99.9": 2.31348}
    assert report.gpu_compute.percentiles_ms == {"99.9": 2.21094}


# --- parsing: no summary ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "",
    "[11/14/2025-10:21:07] [E] Error[4]: [network.cpp::validate::3100] Error Code 4: Internal Error\n"
    "&&&& FAILED TensorRT.trtexec [TensorRT v100300] # trtexec --onnx=student.onnx\n",
])
def test_output_without_a_summary_raises(text: str) -> None:
    with pytest.raises(EdgekdError, match="no trtexec performance summary"):
        parse_trtexec_output(text)


def test_build_log_cut_before_the_summary_raises() -> None:
    text = fixture("trtexec_10.3_orin_fp16.txt").split("=== Performance summary ===")[0]
    with pytest.raises(EdgekdError, match="performance summary"):
        parse_trtexec_output(text)


# --- trtexec_command ----------------------------------------------------------------------------------------------

def command(**overrides) -> list[str]:
    options = {"precision": "fp16", "input_shape": (1, 3, 224, 224)}
    return trtexec_command("student.onnx", "student.fp16.engine", **{**options, **overrides})


def flags(argv: list[str]) -> dict[str, str]:
    return dict(arg.split("=", 1) if "=" in arg else (arg, "") for arg in argv[1:])


def test_command_core_arguments() -> None:
    argv = command()
    assert argv[0] == "trtexec"
    found = flags(argv)
    assert found["--onnx"] == "student.onnx" and found["--saveEngine"] == "student.fp16.engine"
    assert found["--shapes"] == "input:1x3x224x224"
    assert found["--memPoolSize"] == "workspace:1024M"
    assert found["--percentile"] == "90,95,99"
    assert "--minShapes" not in found and "--useDLACore" not in found and "--timingCacheFile" not in found


@pytest.mark.parametrize("precision, present, absent", [
    ("fp32", [], ["--fp16", "--int8"]),
    ("fp16", ["--fp16"], ["--int8"]),
    ("int8", ["--int8", "--fp16"], []),  # Q/DQ int8; layers outside Q/DQ may run fp16
])
def test_precision_flags(precision: str, present: list[str], absent: list[str]) -> None:
    argv = command(precision=precision)
    assert all(flag in argv for flag in present) and not any(flag in argv for flag in absent)


def test_dynamic_batch_min_opt_max_shapes() -> None:
    found = flags(command(input_name="images", input_shape=(4, 3, 96, 160), dynamic_batch=True, max_batch=16))
    assert found["--minShapes"] == "images:1x3x96x160"
    assert found["--optShapes"] == "images:4x3x96x160"
    assert found["--maxShapes"] == "images:16x3x96x160"
    assert found["--shapes"] == "images:4x3x96x160"


def test_dynamic_batch_max_is_never_below_the_optimum() -> None:
    found = flags(command(input_shape=(32, 3, 64, 64), dynamic_batch=True, max_batch=8))
    assert found["--maxShapes"] == "input:32x3x64x64"


def test_dla_core_allows_gpu_fallback() -> None:
    argv = command(dla_core=1)
    assert "--useDLACore=1" in argv and "--allowGPUFallback" in argv


def test_workspace_timing_cache_and_times_json() -> None:
    found = flags(command(workspace_mb=256, timing_cache="timing.cache", timing_json="t.json", trtexec="/opt/trtexec"))
    assert found["--memPoolSize"] == "workspace:256M"
    assert found["--timingCacheFile"] == "timing.cache" and found["--exportTimes"] == "t.json"
    assert command(trtexec="/opt/trtexec")[0] == "/opt/trtexec"


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(EdgekdError, match="'bf16' is not one of fp32, fp16, int8"):
        command(precision="bf16")


@pytest.mark.parametrize("name", ["", "in:put", "a,b"])
def test_input_name_trtexec_cannot_express_is_refused(name: str) -> None:
    with pytest.raises(EdgekdError, match="cannot be passed to trtexec --shapes"):
        command(input_name=name)


def test_legacy_workspace_flag_for_trt82() -> None:
    argv = command(workspace_mb=512, timing_cache="timing.cache")
    legacy = legacy_workspace_flag(argv)
    assert "--workspace=512" in legacy and "--percentile=99" in legacy
    assert not any(arg.startswith("--memPoolSize") for arg in legacy)
    # everything else is kept, in order
    unchanged = [a for a in argv if not a.startswith(("--memPoolSize", "--percentile"))]
    assert [a for a in legacy if not a.startswith(("--workspace", "--percentile"))] == unchanged


# --- shell_line ---------------------------------------------------------------------------------------------------

def test_shell_line_keeps_awkward_paths_as_one_argument() -> None:
    argv = trtexec_command("my models/student; rm -rf ~.onnx", "out dir/it's.engine", precision="int8")
    line = shell_line(argv)
    assert shlex.split(line) == argv
    assert "--onnx=my models/student; rm -rf ~.onnx" in shlex.split(line)
