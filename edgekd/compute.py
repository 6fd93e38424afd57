"""Where a network trains and in which arithmetic: a recipe's `device` (auto | cpu | cuda | cuda:N | mps) and
`precision` (fp32 | bf16 | fp16), resolved against this machine before any stage runs.

A request the machine cannot honour is one EdgekdError (exit 2): CUDA on a machine without it, a GPU index it
does not have, fp16 autocast on the CPU, bf16 on a GPU older than Ampere. `probe()` reads the machine; tests
pass their own `Hardware` so every refusal is checked here without a GPU.

>>> compute = resolve("auto", None)          # the first CUDA GPU when present, else the CPU
>>> with compute.autocast():
...     loss = objective(batch)["loss"]
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, TypeVar

from edgekd.errors import EdgekdError

DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?|mps)$"
TRAIN_PRECISIONS = ("fp32", "bf16", "fp16")
_BF16_MIN_CAPABILITY = (8, 0)  # Ampere: bf16 tensor cores; older GPUs emulate it slowly or not at all


@dataclass(frozen=True)
class CudaDevice:
    index: int
    name: str
    memory_gib: float
    capability: tuple[int, int]

    @property
    def bf16(self) -> bool:
        return self.capability >= _BF16_MIN_CAPABILITY

    def label(self) -> str:
        major, minor = self.capability
        return f"cuda:{self.index} ({self.name}, compute capability {major}.{minor})"


@dataclass(frozen=True)
class Hardware:
    """What this machine offers for training."""

    cuda: tuple[CudaDevice, ...] = ()
    mps: bool = False
    torch_cuda_build: Optional[str] = None  # the CUDA version torch was built with; None for a CPU-only build
    local_rank: Optional[int] = None  # set by torchrun


@dataclass(frozen=True)
class Compute:
    """The resolved device and training arithmetic of one stage."""

    device: str  # "cpu", "cuda:0", "mps"
    precision: str  # fp32 | bf16 | fp16
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def device_type(self) -> str:
        return self.device.split(":", 1)[0]

    def torch_device(self) -> Any:
        import torch

        return torch.device(self.device)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """torch.autocast for bf16/fp16: matmuls and convolutions run in the low precision; nothing for fp32.
        On the CPU torch's autocast keeps softmax and log-softmax in the input's precision (on CUDA it moves them
        to fp32), so a loss that needs fp32 (KD's softmax/KL, focal terms, IoU) casts its inputs itself."""
        if self.precision == "fp32":
            yield
            return
        import torch

        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(device_type=self.device_type, dtype=dtype):
            yield

    def grad_scaler(self) -> Any:
        """A GradScaler that scales only for fp16 (bf16 has fp32's exponent range and needs none)."""
        import torch

        return torch.amp.GradScaler(self.device_type, enabled=self.precision == "fp16")

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "precision": self.precision}


CPU_FP32 = Compute("cpu", "fp32")
F = TypeVar("F", bound=Callable[..., Any])


def fp32_loss(function: F) -> F:
    """Run a loss in fp32 under mixed-precision training: autocast off, and every floating tensor argument (also
    inside lists, tuples and dicts) cast to fp32. For losses with softmax/KL, focal terms, IoU, normalisation or
    index_put/scatter of mixed dtypes: autocast would run parts of them in bf16/fp16, and some ops (binary
    cross-entropy) refuse to run under CUDA autocast at all. A no-op cast for fp32 inputs."""

    @functools.wraps(function)
    def in_fp32(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.autocast(_device_type(args, kwargs), enabled=False):
            return function(*_as_fp32(args), **_as_fp32(kwargs))

    return in_fp32  # type: ignore[return-value]


def map_tensors(value: Any, function: Callable[[Any], Any]) -> Any:
    """`function` applied to every tensor in `value`, whatever lists, tuples (named too) and dicts hold them;
    anything else passes through. How batches move to a device and losses get fp32 inputs."""
    import torch

    if isinstance(value, torch.Tensor):
        return function(value)
    if isinstance(value, (list, tuple)):
        items = [map_tensors(item, function) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, dict):
        return {key: map_tensors(item, function) for key, item in value.items()}
    return value


def _as_fp32(value: Any) -> Any:
    return map_tensors(value, lambda tensor: tensor.float() if tensor.is_floating_point() else tensor)


def _device_type(args: Any, kwargs: Any) -> str:
    import torch

    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.device.type
    return "cuda" if torch.is_autocast_enabled("cuda") else "cpu"


def probe() -> Hardware:
    """This machine's CUDA GPUs and MPS, read through torch."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append(CudaDevice(index, props.name, round(props.total_memory / 2**30, 1),
                                   (props.major, props.minor)))
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    rank = os.environ.get("LOCAL_RANK")
    return Hardware(tuple(gpus), mps, torch.version.cuda, int(rank) if rank and rank.isdigit() else None)


def resolve(device: str = "auto", precision: Optional[str] = None, hardware: Optional[Hardware] = None,
            *, where: str = "device", precision_where: str = "precision") -> Compute:
    """The device and precision to train with, or one EdgekdError saying why this machine cannot; `where` and
    `precision_where` name the recipe keys in that message."""
    if not re.fullmatch(DEVICE_PATTERN, device):
        raise EdgekdError(f"{where}: {device!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    if precision is not None and precision not in TRAIN_PRECISIONS:
        raise EdgekdError(f"{precision_where}: {precision!r}; use one of {', '.join(TRAIN_PRECISIONS)}")
    hardware = hardware if hardware is not None else probe()
    name = _device(device, hardware, where)
    return Compute(name, _precision(name, precision, hardware, precision_where))


def _device(device: str, hardware: Hardware, where: str) -> str:
    if device == "auto":
        if hardware.cuda:
            return _cuda(hardware.local_rank or 0, hardware, where, device)
        return "cpu"
    if device == "cuda":  # under torchrun every process takes its own GPU
        return _cuda(hardware.local_rank or 0, hardware, where, device)
    if device.startswith("cuda:"):
        return _cuda(int(device.split(":", 1)[1]), hardware, where, device)
    if device == "mps" and not hardware.mps:
        raise EdgekdError(f"{where}: mps, but this machine has no Apple GPU that torch can use")
    return device


def _cuda(index: int, hardware: Hardware, where: str, asked: str) -> str:
    if not hardware.cuda:
        build = (f"torch was built for CUDA {hardware.torch_cuda_build}" if hardware.torch_cuda_build
                 else "this torch is a CPU-only build")
        raise EdgekdError(f"{where}: {asked}, but this machine has no CUDA GPU that torch can use ({build}); "
                          "use cpu or auto")
    if index >= len(hardware.cuda):
        have = ", ".join(f"cuda:{gpu.index}" for gpu in hardware.cuda)
        count = len(hardware.cuda)
        raise EdgekdError(f"{where}: cuda:{index}, but this machine has {count} CUDA GPU{'s' * (count > 1)} ({have})")
    return f"cuda:{index}"


def _precision(device: str, precision: Optional[str], hardware: Hardware, where: str) -> str:
    kind = device.split(":", 1)[0]
    if precision is None:  # the default: bf16 where the GPU has it, fp16 on older GPUs, fp32 elsewhere
        if kind != "cuda":
            return "fp32"
        return "bf16" if _gpu(device, hardware).bf16 else "fp16"
    if precision == "fp16" and kind == "cpu":
        raise EdgekdError(f"{where}: fp16 is for GPUs; on the CPU use bf16 (fp32's range, so no loss scaling) "
                          "or fp32")
    if precision == "bf16" and kind == "cuda" and not _gpu(device, hardware).bf16:
        raise EdgekdError(f"{where}: bf16 on {_gpu(device, hardware).label()}: bf16 needs compute capability "
                          "8.0 (Ampere) or newer; use fp16 or fp32")
    return precision


def _gpu(device: str, hardware: Hardware) -> CudaDevice:
    return hardware.cuda[int(device.split(":", 1)[1])]


def cuda_summary(hardware: Optional[Hardware] = None) -> list[dict[str, Any]]:
    """For `doctor`: each CUDA GPU with its memory, compute capability and whether it trains in bf16."""
    hardware = hardware if hardware is not None else probe()
    return [{"device": f"cuda:{gpu.index}", "name": gpu.name, "memory_gib": gpu.memory_gib,
             "capability": f"{gpu.capability[0]}.{gpu.capability[1]}", "bf16": gpu.bf16} for gpu in hardware.cuda]


def cpu_bf16(cpuinfo: Optional[str] = None) -> str:
    """How this CPU computes bf16: in hardware (AMX, AVX512-BF16, Arm BF16) or emulated in fp32 by torch."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", errors="replace") as handle:
                cpuinfo = handle.read()
        except OSError:
            cpuinfo = ""
    flags = set(cpuinfo.split())
    found = [name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("bf16", "Arm BF16"))
             if flag in flags]
    return f"native ({', '.join(found)})" if found else "emulated (no bf16 instructions)"
