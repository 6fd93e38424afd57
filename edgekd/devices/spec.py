"""DeviceSpec: the typed form of a `devices/<id>.yaml` file.

Every hardware figure is a `Figure`: a value plus where it comes from. A figure the sources do not give stays
`value: null` with a `note` saying so, so a reader (and the latency model) never mistakes a guess for a datum.

>>> spec = DeviceSpec.model_validate(yaml.safe_load(open("devices/rpi5.yaml")))
>>> spec.cpu.peak_gflops.fp16.value
306.9
"""

from __future__ import annotations

from typing import Generic, Literal, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgekd.export import PRECISIONS, all_runtime_names  # noqa: E402  (the registry defines the names)

RUNTIMES = tuple(all_runtime_names())
UNITS = ("cpu", "gpu", "dla")
Runtime = Literal[RUNTIMES]  # type: ignore[valid-type]
Precision = Literal[PRECISIONS]  # type: ignore[valid-type]
Unit = Literal["cpu", "gpu", "dla"]
T = TypeVar("T")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Figure(_Strict, Generic[T]):
    """One published number (or fact) and its provenance.

    `source` is a tag of the file's `sources` map or a URL. `derived`: computed from cited inputs (the note shows
    the arithmetic). `inferred`: not stated outright by the source. `value: null` needs a note (why it is unknown).
    """

    value: Optional[T] = None
    source: Optional[str] = None
    derived: bool = False
    inferred: bool = False
    note: Optional[str] = None

    @model_validator(mode="after")
    def _provenance(self) -> "Figure[T]":
        if self.value is None and not self.note:
            raise ValueError("a null figure needs a note saying why it is unknown")
        if self.value is not None and not self.source and not (self.inferred and self.note):
            raise ValueError("a figure needs a source (or inferred: true with a note)")
        return self


class Peaks(_Strict):
    """Peak throughput per precision: GFLOP/s for fp32/fp16, dense GOP/s for int8 (sparse headlines halved)."""

    fp32: Figure[float]
    fp16: Figure[float]
    int8: Figure[float]

    def get(self, precision: str) -> Optional[float]:
        return getattr(self, precision).value


class CpuSpec(_Strict):
    core: Figure[str]
    cores: Figure[int]
    max_clock_ghz: Figure[float]
    caches: Optional[Figure[str]] = None
    fp16_arith: Figure[bool]
    int8_dot: Figure[bool]
    peak_gflops: Peaks = Field(description="Whole CPU, all cores at max_clock_ghz.")


class GpuSpec(_Strict):
    name: Figure[str]
    cuda_cores: Optional[Figure[int]] = None
    tensor_cores: Optional[Figure[int]] = None
    max_clock_mhz: Figure[float]
    peak_gflops: Optional[Peaks] = None
    used_by_runtimes: bool = True


class DlaSpec(_Strict):
    count: Figure[int]
    max_clock_mhz: Optional[Figure[float]] = None
    peak_int8_tops_sparse: Optional[Figure[float]] = None


class MemorySpec(_Strict):
    size: Figure[str]
    type: Figure[str]
    bus_width_bits: Figure[int]
    bandwidth_gbs: Figure[float]


class PowerMode(_Strict):
    """One nvpmodel mode (or a Pi clock setting). Null clocks mean "not capped below the spec maximum"."""

    name: str
    source: str
    watts: Optional[float] = None
    cpu_online_cores: Optional[int] = None
    cpu_max_ghz: Optional[float] = None
    gpu_max_mhz: Optional[float] = None
    emc_max_mhz: Optional[float] = None
    note: Optional[str] = None


class DeviceSpec(_Strict):
    """A target board: `id` must equal the file name without `.yaml`."""

    id: str
    name: str
    soc: Figure[str]
    cpu: CpuSpec
    gpu: Optional[GpuSpec] = None
    dla: Optional[DlaSpec] = None
    memory: MemorySpec
    power_modes: list[PowerMode] = []
    default_power_mode: Optional[str] = None
    software: Figure[str]
    runtimes: dict[Runtime, dict[Unit, list[Precision]]] = Field(
        description="runtime -> {unit: precisions}; the first unit listed is the runtime's default on this board."
    )
    notes: list[str] = []
    sources: dict[str, str] = Field(description="citation tag -> URL")

    @model_validator(mode="after")
    def _consistent(self) -> "DeviceSpec":
        unknown = [tag for tag in _figure_sources(self) if tag not in self.sources and not tag.startswith("http")]
        if unknown:
            raise ValueError(f"source tag(s) {sorted(set(unknown))} are not in 'sources'")
        names = [mode.name for mode in self.power_modes]
        if self.default_power_mode is not None and self.default_power_mode not in names:
            raise ValueError(f"default_power_mode '{self.default_power_mode}' is not one of {names}")
        return self

    def power_mode(self, name: Optional[str]) -> Optional[PowerMode]:
        wanted = name or self.default_power_mode
        return next((mode for mode in self.power_modes if mode.name == wanted), None)


def _figure_sources(node: object) -> list[str]:
    """Every citation tag used by a Figure or PowerMode anywhere below `node` (tags may be joined by spaces)."""
    if isinstance(node, (Figure, PowerMode)):
        return (node.source or "").split()
    if isinstance(node, BaseModel):
        return [tag for name in type(node).model_fields for tag in _figure_sources(getattr(node, name))]
    if isinstance(node, (list, tuple)):
        return [tag for item in node for tag in _figure_sources(item)]
    return []
