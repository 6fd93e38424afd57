"""Roofs of one (device, runtime, unit, precision, threads, power mode) and the per-node work they apply to.

A node costs `max(2*MACs / (eff * ratio[kind] * P), bytes / (mem_eff * B)) + t0`: P and B come from the device
YAML, eff/ratio/mem_eff/t0 from the calibration fit (edgekd.profile.fit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from edgekd.devices.spec import DeviceSpec
from edgekd.errors import EdgekdError
from edgekd.profile.graph import Node

BYTES = {"fp32": 4, "fp16": 2, "int8": 1}
# Runtimes that merge Conv + BN + activation (+ residual Add) into one kernel (reference §4.1); eager PyTorch does not.
FUSING_RUNTIMES = {"tensorrt", "ncnn", "openvino", "onnxruntime", "tflite"}
# Pointwise conv (a plain GEMM) is the reference kind, ratio 1; dense kxk conv gets its own ratio because
# runtimes run 3x3 convs with Winograd (fewer multiplies than counted); eltwise has no MACs.
FIT_KINDS = ("conv", "dwconv", "matmul")


@dataclass(frozen=True)
class Target:
    """What a prediction is for, with the unit and precision the runtime will actually compute in."""

    device: str
    runtime: str
    unit: str
    precision: str  # requested
    compute_precision: str  # effective (ncnn's fp16 arithmetic, fp16 on a CPU without it)
    threads: Optional[int]
    power_mode: Optional[str]

    @property
    def group(self) -> str:
        return f"{self.device}/{self.runtime}/{self.unit}/{self.compute_precision}"

    @property
    def family(self) -> str:
        return f"{self.runtime}/{self.unit}"


@dataclass(frozen=True)
class Roofs:
    peak_gflops: float  # all cores of the mode (CPU) or the GPU at the mode's clock
    cores: int  # cores the peak is for (1 for a GPU)
    bandwidth_gbs: Optional[float]
    roof: str  # where the peak comes from


def target(spec: DeviceSpec, runtime: str, precision: str, unit: Optional[str] = None,
           threads: Optional[int] = None, power_mode: Optional[str] = None) -> Target:
    """Check the request against the device's runtime table; refuse what it does not support, with the reason."""
    units = spec.runtimes.get(runtime)  # type: ignore[call-overload]
    if units is None:
        raise EdgekdError(f"runtime '{runtime}' is not available on {spec.id} (has: {', '.join(spec.runtimes)})")
    unit = unit or next(iter(units))
    if unit not in units:
        raise EdgekdError(f"{runtime} on {spec.id} runs on {', '.join(units)}, not '{unit}'")
    if precision not in units[unit]:
        raise EdgekdError(f"{runtime} on {spec.id} ({unit}) supports {', '.join(units[unit])}, not {precision}")
    if unit == "dla":
        raise EdgekdError("the DLA has no roofline model yet (no published per-DLA peaks); predict on 'gpu'")
    if power_mode is not None and spec.power_mode(power_mode) is None:
        raise EdgekdError(f"unknown power mode '{power_mode}' for {spec.id} (has: {[m.name for m in spec.power_modes]})")
    return Target(spec.id, runtime, unit, precision, _compute_precision(spec, runtime, unit, precision), threads, power_mode)


def _compute_precision(spec: DeviceSpec, runtime: str, unit: str, precision: str) -> str:
    fp16_cpu = bool(spec.cpu.fp16_arith.value)
    if runtime == "ncnn" and precision == "fp32" and (unit == "gpu" or fp16_cpu):
        return "fp16"  # ncnn's default Option turns on fp16 arithmetic where the hardware has it [NC]
    if unit == "cpu" and precision == "fp16" and not fp16_cpu:
        return "fp32"  # no FP16 arithmetic: the CPU computes fp16 models in fp32
    return precision


def roofs(spec: DeviceSpec, tgt: Target) -> Roofs:
    mode = spec.power_mode(tgt.power_mode)
    bandwidth = spec.memory.bandwidth_gbs.value
    if bandwidth is not None and mode is not None and mode.emc_max_mhz:
        top = max(m.emc_max_mhz or 0 for m in spec.power_modes)
        bandwidth *= mode.emc_max_mhz / top
    if tgt.unit == "cpu":
        peak, roof = _cpu_peak(spec, tgt.compute_precision)
        cores = spec.cpu.cores.value or 1
        online = mode.cpu_online_cores if mode and mode.cpu_online_cores else cores
        clock = mode.cpu_max_ghz if mode and mode.cpu_max_ghz else spec.cpu.max_clock_ghz.value
        scale = clock / spec.cpu.max_clock_ghz.value * online / cores
        return Roofs(peak * scale, online, bandwidth, roof)
    peak, roof = _gpu_peak(spec, tgt.compute_precision)
    clock = mode.gpu_max_mhz if mode and mode.gpu_max_mhz else spec.gpu.max_clock_mhz.value
    return Roofs(peak * clock / spec.gpu.max_clock_mhz.value, 1, bandwidth, roof)


def _cpu_peak(spec: DeviceSpec, precision: str) -> tuple[float, str]:
    peaks = spec.cpu.peak_gflops
    if peaks.get(precision):
        return peaks.get(precision), f"published CPU {precision} peak"
    if peaks.fp32.value:
        return peaks.fp32.value, f"CPU fp32 peak ({precision} peak not in sources)"
    # No published peak: a nominal roof of 1 FLOP/cycle/core. The fitted efficiency then carries FLOP/cycle
    # x efficiency, so it is only comparable between rows of the same device.
    return spec.cpu.cores.value * spec.cpu.max_clock_ghz.value, "nominal CPU cores x GHz (no published peak)"


def _gpu_peak(spec: DeviceSpec, precision: str) -> tuple[float, str]:
    gpu = spec.gpu
    if gpu is None or not gpu.used_by_runtimes:
        raise EdgekdError(f"{spec.id} has no GPU that edgekd runtimes use")
    peaks = gpu.peak_gflops
    if peaks and peaks.get(precision):
        return peaks.get(precision), f"published GPU {precision} peak"
    if peaks and peaks.fp32.value:
        return peaks.fp32.value, f"GPU fp32 peak ({precision} peak not in sources)"
    cores = gpu.cuda_cores.value if gpu.cuda_cores else None
    if not cores:
        raise EdgekdError(f"{spec.id}: no GPU peak and no CUDA core count in the device file")
    return 2 * cores * gpu.max_clock_mhz.value / 1000, "nominal GPU cores x 2 x GHz"


def node_work(nodes: list[Node], tgt: Target) -> list[tuple[str, int, int]]:
    """(kind, MACs, bytes) per kernel the runtime runs: fused activations vanish into their producer."""
    fuses = tgt.runtime in FUSING_RUNTIMES
    size = BYTES[tgt.compute_precision]
    return [(n.kind, n.macs, (n.weight_elems + n.io_elems) * size) for n in nodes if not (fuses and n.fusable)]
