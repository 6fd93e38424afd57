"""The on-device TensorRT route: the exact `trtexec` command to build and time an engine on the target,
and a parser for what trtexec prints.

Engines are tied to the GPU and the TensorRT version that built them, so for a Jetson the engine is built
on the Jetson: copy the ONNX there, run the command, bring back the output text and parse it here.

trtexec has printed its performance summary in two formats:
- TensorRT >= 8.0: one line per metric, e.g.
  `Latency: min = 1.2 ms, max = 1.9 ms, mean = 1.3 ms, median = 1.3 ms, percentile(90%) = 1.4 ms, ...`
  with `Throughput: N qps`, `GPU Compute Time: ...`, `Total Host Walltime: N s`.
- TensorRT 7.x: a heading (`Host Latency`, `GPU Compute`, `Enqueue Time`) followed by lines
  `min: 1.2 ms (end to end 2.3 ms)`, ..., `percentile: 1.4 ms at 99% (end to end 2.6 ms at 99%)`,
  `throughput: N qps`, `walltime: N s`, and `total compute time: N s` under `GPU Compute`.
Both are parsed into the same `TrtexecReport`; anything not found stays None rather than being guessed.
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath
from typing import Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field

from edgekd.errors import EdgekdError

PRECISION_FLAGS = {
    "fp32": [],
    "fp16": ["--fp16"],
    # A Q/DQ graph is explicitly quantized: --int8 enables int8 kernels where the Q/DQ pairs say so and
    # --fp16 lets the layers outside them run in fp16 instead of fp32.
    "int8": ["--int8", "--fp16"],
}
_LINE_PREFIX = re.compile(r"^\s*(?:\[[^\]]*\]\s*)*")  # "[11/30/2026-12:00:00] [I] " timestamps and levels
_NUMBER = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


class TimingStats(BaseModel):
    """One trtexec metric in milliseconds; percentiles keyed by their percent (90, 95, 99)."""

    model_config = ConfigDict(extra="forbid")

    min_ms: Optional[float] = None
    max_ms: Optional[float] = None
    mean_ms: Optional[float] = None
    median_ms: Optional[float] = None
    percentiles_ms: dict[str, float] = Field(default_factory=dict)


class TrtexecReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str  # "summary" (TensorRT >= 8.0) or "legacy" (7.x)
    throughput_qps: Optional[float] = None
    latency: TimingStats = TimingStats()  # host latency: H2D + GPU compute + D2H
    gpu_compute: TimingStats = TimingStats()
    enqueue: TimingStats = TimingStats()
    end_to_end: TimingStats = TimingStats()
    walltime_s: Optional[float] = None
    total_gpu_compute_s: Optional[float] = None
    tensorrt_version: Optional[str] = None
    device: Optional[str] = None
    compute_capability: Optional[str] = None
    passed: Optional[bool] = None
    warnings: list[str] = Field(default_factory=list)


def trtexec_command(
    onnx: str,
    engine: str,
    *,
    precision: str,
    input_name: str = "input",
    input_shape: Sequence[int] = (1, 3, 224, 224),
    dynamic_batch: bool = False,
    max_batch: int = 8,
    workspace_mb: int = 1024,
    timing_cache: Optional[str] = None,
    dla_core: Optional[int] = None,
    timing_json: Optional[str] = None,
    trtexec: str = "trtexec",
) -> list[str]:
    """argv for building and timing an engine on the device (join with `shell_line` for a script).

    Paths are device paths. `--memPoolSize` needs TensorRT >= 8.4, which every supported JetPack except
    Jetson Nano's 4.6 (TensorRT 8.2) has; `legacy_workspace_flag` rewrites it for that one.
    """
    if precision not in PRECISION_FLAGS:
        raise EdgekdError(f"trtexec precision '{precision}' is not one of {', '.join(PRECISION_FLAGS)}")
    if not input_name or any(c in input_name for c in ":,"):
        raise EdgekdError(f"input name {input_name!r} cannot be passed to trtexec --shapes")
    shape = "x".join(str(int(d)) for d in input_shape)
    argv = [trtexec, f"--onnx={onnx}", f"--saveEngine={engine}", *PRECISION_FLAGS[precision]]
    if dynamic_batch:
        rest = "x".join(str(int(d)) for d in input_shape[1:])
        argv += [f"--minShapes={input_name}:1x{rest}", f"--optShapes={input_name}:{shape}",
                 f"--maxShapes={input_name}:{max(max_batch, int(input_shape[0]))}x{rest}"]
    argv += [f"--shapes={input_name}:{shape}", f"--memPoolSize=workspace:{int(workspace_mb)}M"]
    if timing_cache:
        argv.append(f"--timingCacheFile={timing_cache}")
    if dla_core is not None:
        # Layers DLA cannot run fall back to the GPU instead of failing the build.
        argv += [f"--useDLACore={int(dla_core)}", "--allowGPUFallback"]
    argv += ["--percentile=90,95,99", "--useSpinWait", "--separateProfileRun"]
    if timing_json:
        argv.append(f"--exportTimes={timing_json}")
    return argv


def legacy_workspace_flag(argv: list[str]) -> list[str]:
    """TensorRT 8.2 (JetPack 4.6, Jetson Nano) knows `--workspace=N` (MiB), not `--memPoolSize`; nor a
    percentile list."""
    fixed = []
    for arg in argv:
        if arg.startswith("--memPoolSize=workspace:"):
            fixed.append("--workspace=" + arg.split(":", 1)[1].rstrip("M"))
        elif arg.startswith("--percentile="):
            fixed.append("--percentile=99")
        else:
            fixed.append(arg)
    return fixed


def shell_line(argv: Sequence[str]) -> str:
    """One shell-safe line: every argument quoted, so a path with spaces or `;` stays one argument."""
    return shlex.join(argv)


def engine_path_for(onnx_path: str, precision: str) -> str:
    path = PurePosixPath(onnx_path)
    return str(path.with_name(f"{path.stem}.{precision}.engine"))


def parse_trtexec_output(text: str) -> TrtexecReport:
    """Parse trtexec's console output (either format); EdgekdError when it has no performance summary."""
    lines = [_LINE_PREFIX.sub("", line).rstrip() for line in text.splitlines()]
    report = _parse_summary(lines) if any(line.startswith("=== Performance summary ===") for line in lines) \
        else _parse_legacy(lines)
    if report is None:
        raise EdgekdError("no trtexec performance summary found in the output (did the engine build fail?)")
    _parse_environment(lines, report)
    return report


def _parse_summary(lines: list[str]) -> TrtexecReport:
    report = TrtexecReport(format="summary")
    fields = {"Latency": "latency", "GPU Compute Time": "gpu_compute", "Enqueue Time": "enqueue",
              "End-to-End Host Latency": "end_to_end"}
    for line in _summary_section(lines):
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        if key in fields:
            setattr(report, fields[key], _summary_stats(value))
        elif key == "Throughput":
            report.throughput_qps = _first_number(value)
        elif key == "Total Host Walltime":
            report.walltime_s = _first_number(value)
        elif key == "Total GPU Compute Time":
            report.total_gpu_compute_s = _first_number(value)
    report.warnings = _warnings(lines)
    return report


def _summary_section(lines: list[str]) -> list[str]:
    """The lines from `=== Performance summary ===` to the next `===` heading: with --verbose, trtexec then
    prints `=== Explanations of the performance metrics ===`, whose lines ("Latency: the summation of ...")
    start with the same keys and must not overwrite the numbers."""
    start = next(i for i, line in enumerate(lines) if line.startswith("=== Performance summary ==="))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("===")), len(lines))
    return lines[start + 1:end]


def _summary_stats(value: str) -> TimingStats:
    stats = TimingStats()
    for name, number in re.findall(rf"(min|max|mean|median|percentile\(\d+(?:\.\d+)?%\)) = {_NUMBER} ms", value):
        if name.startswith("percentile"):
            stats.percentiles_ms[_percent_key(name[len("percentile("):-2])] = float(number)
        else:
            setattr(stats, f"{name}_ms", float(number))
    return stats


_LEGACY_HEADINGS = {"Host Latency": "latency", "GPU Compute": "gpu_compute", "Enqueue Time": "enqueue"}


def _parse_legacy(lines: list[str]) -> Optional[TrtexecReport]:
    report = TrtexecReport(format="legacy")
    current: Optional[str] = None
    found = False
    for line in lines:
        stripped = line.strip()
        if stripped in _LEGACY_HEADINGS:
            current = _LEGACY_HEADINGS[stripped]
            continue
        if current is None:
            continue
        found |= _legacy_line(report, current, stripped)
    report.warnings = _warnings(lines)
    return report if found else None


def _legacy_line(report: TrtexecReport, field: str, line: str) -> bool:
    stats: TimingStats = getattr(report, field)
    match = re.match(rf"(min|max|mean|median): {_NUMBER} ms(?: \(end to end {_NUMBER} ms\))?", line)
    if match:
        setattr(stats, f"{match.group(1)}_ms", float(match.group(2)))
        if match.group(3) and field == "latency":
            setattr(report.end_to_end, f"{match.group(1)}_ms", float(match.group(3)))
        return True
    match = re.match(rf"percentile: {_NUMBER} ms at (\d+(?:\.\d+)?)%", line)
    if match:
        stats.percentiles_ms[_percent_key(match.group(2))] = float(match.group(1))
        return True
    match = re.match(rf"(throughput|walltime): {_NUMBER}", line)
    if match and field == "latency":
        if match.group(1) == "throughput":
            report.throughput_qps = float(match.group(2))
        else:
            report.walltime_s = float(match.group(2))
        return True
    match = re.match(rf"total compute time: {_NUMBER} s", line)
    if match and field == "gpu_compute":
        report.total_gpu_compute_s = float(match.group(1))
        return True
    return False


def _parse_environment(lines: list[str], report: TrtexecReport) -> None:
    for line in lines:
        if line.startswith("TensorRT version: "):
            report.tensorrt_version = line.split(": ", 1)[1].strip()
        elif line.startswith("Selected Device: ") or line.startswith("Device: "):
            name = line.split(": ", 1)[1].strip()
            if name and not name.isdigit():  # "Device: 0" in the options block is an index, not a name
                report.device = name
        elif line.startswith("Compute Capability: "):
            report.compute_capability = line.split(": ", 1)[1].strip()
        elif line.startswith("&&&& PASSED"):
            report.passed = True
        elif line.startswith("&&&& FAILED"):
            report.passed = False
    if report.tensorrt_version is None:
        match = next((re.search(r"\[TensorRT v(\d+)\]", line) for line in lines if "[TensorRT v" in line), None)
        if match:
            report.tensorrt_version = _version_from_code(match.group(1))


def _version_from_code(code: str) -> str:
    """trtexec's banner encodes 8.6.1 as 8601 (major*1000 + minor*100 + patch) and 10.2.0 as 100200
    (major*10000 + minor*100 + patch): the patch is the last two digits in both."""
    if len(code) >= 6:
        return f"{int(code[:-4])}.{int(code[-4:-2])}.{int(code[-2:])}"
    if len(code) == 4:
        return f"{code[0]}.{code[1]}.{int(code[2:])}"
    return code


def _warnings(lines: list[str]) -> list[str]:
    return [line.lstrip("* ").strip() for line in lines if line.lstrip().startswith("* ")]


def _percent_key(text: str) -> str:
    value = float(text)
    return str(int(value)) if value.is_integer() else str(value)


def _first_number(text: str) -> Optional[float]:
    match = re.search(_NUMBER, text)
    return float(match.group(1)) if match else None
