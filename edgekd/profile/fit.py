"""The latency model's parameters, its forward pass over a batch of graphs, and the least-squares fit.

Per (device, runtime, unit, compute precision) "group": one compute efficiency `eff`. Shared by a runtime on a unit
("family") across devices: op-kind ratios (depthwise, pointwise, matmul vs dense conv) and a per-kernel overhead
`t0`. Shared by all: memory efficiency per unit and the CPU thread-scaling exponent. Rows are few, so everything
shared is pulled toward a weak prior and the fit minimises squared log error (reference §4.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from edgekd.profile.roofline import FIT_KINDS, Roofs, Target

KIND_INDEX = {"conv": 0, "dwconv": 1, "pwconv": 2, "matmul": 3, "eltwise": 4}
_FITTED = [KIND_INDEX[k] for k in FIT_KINDS]
# Prior centre and width (log space). Regularisation for a fit with few rows, not results: a group with rows
# is driven by its rows. eff is per group and nearly free; shared factors need data to move far.
PRIOR = {"eff": (math.log(0.3), 3.0), "ratio": (0.0, 1.0), "t0_us": (math.log(10.0), 2.0),
         "mem": (math.log(0.5), 0.5), "alpha": (0.8, 0.3)}


@dataclass
class Sample:
    """One latency row ready for the model: its target, roofs and (kind, MACs, bytes) per kernel."""

    target: Target
    roofs: Roofs
    threads: int
    work: list[tuple[str, int, int]]
    latency_ms: float = float("nan")
    model: str = ""
    row_id: str = ""


@dataclass
class Factors:
    """Fitted values, in natural units, as stored in devices/calibration.json."""

    eff: dict[str, float] = field(default_factory=dict)  # group -> compute efficiency
    ratio: dict[str, dict[str, float]] = field(default_factory=dict)  # family -> kind -> ratio to dense conv
    t0_us: dict[str, float] = field(default_factory=dict)  # family -> per-kernel overhead
    mem_eff: dict[str, float] = field(default_factory=lambda: {"cpu": 0.5, "gpu": 0.5})
    alpha: float = PRIOR["alpha"][0]

    def to_dict(self) -> dict[str, Any]:
        return {"eff": self.eff, "ratio": self.ratio, "t0_us": self.t0_us, "mem_eff": self.mem_eff, "alpha": self.alpha}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Factors":
        return cls(**data)


class _Params:
    """Log-space torch tensors for the groups and families present in `samples`, started from `init`."""

    def __init__(self, samples: list[Sample], init: Factors) -> None:
        import torch

        self.groups = sorted({s.target.group for s in samples})
        self.families = sorted({s.target.family for s in samples})
        e0, r0, t0 = PRIOR["eff"][0], PRIOR["ratio"][0], PRIOR["t0_us"][0]
        self.log_eff = torch.tensor([_log(init.eff.get(g), e0) for g in self.groups], dtype=torch.float64)
        self.log_ratio = torch.tensor(
            [[_log(init.ratio.get(f, {}).get(k), r0) for k in FIT_KINDS] for f in self.families], dtype=torch.float64)
        self.log_t0 = torch.tensor([_log(init.t0_us.get(f), t0) for f in self.families], dtype=torch.float64)
        self.log_mem = torch.tensor([_log(init.mem_eff.get(u), PRIOR["mem"][0]) for u in ("cpu", "gpu")],
                                    dtype=torch.float64)
        self.alpha = torch.tensor(init.alpha, dtype=torch.float64)

    def tensors(self) -> list[Any]:
        return [self.log_eff, self.log_ratio, self.log_t0, self.log_mem, self.alpha]

    def factors(self) -> Factors:
        exp = math.exp
        return Factors(
            eff={g: exp(v) for g, v in zip(self.groups, self.log_eff.tolist())},
            ratio={f: {k: exp(v) for k, v in zip(FIT_KINDS, row)} for f, row in zip(self.families, self.log_ratio.tolist())},
            t0_us={f: exp(v) for f, v in zip(self.families, self.log_t0.tolist())},
            mem_eff={u: exp(v) for u, v in zip(("cpu", "gpu"), self.log_mem.tolist())},
            alpha=float(self.alpha),
        )

    def prior_penalty(self) -> Any:
        def sq(x: Any, key: str) -> Any:
            centre, width = PRIOR[key]
            return (((x - centre) / width) ** 2).sum()

        return sq(self.log_eff, "eff") + sq(self.log_ratio, "ratio") + sq(self.log_t0, "t0_us") + \
            sq(self.log_mem, "mem") + sq(self.alpha, "alpha")


def _log(value: Optional[float], default: float) -> float:
    return math.log(value) if value else default


def node_times_ms(params: _Params, samples: list[Sample]) -> tuple[Any, Any]:
    """Per-kernel time [rows, kernels] in ms and the kind index of each kernel (padding: mask 0)."""
    import torch

    batch = _batch(params, samples)
    kind = batch["kind"]
    columns = [params.log_ratio[:, _FITTED.index(i)] if i in _FITTED else torch.zeros(len(params.families),
               dtype=torch.float64) for i in range(len(KIND_INDEX))]  # reference kinds: log ratio 0
    ratio = torch.stack(columns, dim=1)
    log_rate = params.log_eff[batch["group"]][:, None] + ratio[batch["family"][:, None], kind]
    speedup = torch.where(batch["cpu"], (batch["threads"] / batch["cores"]) ** params.alpha, torch.ones_like(batch["threads"]))
    compute = 2 * batch["macs"] / (torch.exp(log_rate) * (batch["peak"] * speedup)[:, None] * 1e9)
    mem_rate = torch.exp(params.log_mem[(~batch["cpu"]).long()]) * batch["bw"] * 1e9
    memory = torch.where(batch["bw"][:, None] > 0, batch["bytes"] / mem_rate.clamp(min=1e-9)[:, None],
                         torch.zeros_like(compute))
    overhead = torch.exp(params.log_t0[batch["family"]])[:, None] * 1e-6
    return batch["mask"] * (torch.maximum(compute, memory) + overhead) * 1e3, kind


def _batch(params: _Params, samples: list[Sample]) -> dict[str, Any]:
    import torch

    width = max(len(s.work) for s in samples)
    f64 = dict(dtype=torch.float64)

    def pad(values: list[list[float]], fill: float = 0.0, **kw: Any) -> Any:
        return torch.tensor([v + [fill] * (width - len(v)) for v in values], **kw)

    return {
        "macs": pad([[float(w[1]) for w in s.work] for s in samples], **f64),
        "bytes": pad([[float(w[2]) for w in s.work] for s in samples], **f64),
        "kind": pad([[KIND_INDEX[w[0]] for w in s.work] for s in samples], fill=4, dtype=torch.long),
        "mask": pad([[1.0] * len(s.work) for s in samples], **f64),
        "group": torch.tensor([params.groups.index(s.target.group) for s in samples]),
        "family": torch.tensor([params.families.index(s.target.family) for s in samples]),
        "cpu": torch.tensor([s.target.unit == "cpu" for s in samples]),
        "threads": torch.tensor([float(s.threads) for s in samples], **f64),
        "cores": torch.tensor([float(s.roofs.cores) for s in samples], **f64),
        "peak": torch.tensor([s.roofs.peak_gflops for s in samples], **f64),
        "bw": torch.tensor([s.roofs.bandwidth_gbs or 0.0 for s in samples], **f64),
    }


def fit(samples: list[Sample], init: Optional[Factors] = None, only_groups: Optional[set[str]] = None,
        steps: int = 300) -> Factors:
    """Least squares in log latency plus the prior. `only_groups`: refit just those groups' efficiency
    (a user's --calibrate), keeping every shared factor of `init`."""
    import torch

    params = _Params(samples, init or Factors())
    free = params.tensors() if only_groups is None else [params.log_eff]
    for tensor in free:
        tensor.requires_grad_(True)
    keep = None if only_groups is None else torch.tensor([g in only_groups for g in params.groups])
    target = torch.log(torch.tensor([s.latency_ms for s in samples], dtype=torch.float64))
    optimiser = torch.optim.LBFGS(free, lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Any:
        optimiser.zero_grad()
        times, _ = node_times_ms(params, samples)
        loss = ((torch.log(times.sum(dim=1)) - target) ** 2).sum() + params.prior_penalty()
        loss.backward()
        if keep is not None:
            params.log_eff.grad[~keep] = 0
        return loss

    optimiser.step(closure)
    for tensor in free:
        tensor.requires_grad_(False)
    return _merge(init, params.factors()) if init else params.factors()


def _merge(base: Factors, new: Factors) -> Factors:
    return Factors(eff={**base.eff, **new.eff}, ratio={**base.ratio, **new.ratio}, t0_us={**base.t0_us, **new.t0_us},
                   mem_eff=new.mem_eff, alpha=new.alpha)


def predict_ms(factors: Factors, samples: list[Sample]) -> tuple[list[float], list[dict[str, float]]]:
    """Total latency per sample and its split by op kind (+ 'overhead'), in ms."""
    import torch

    params = _Params(samples, factors)
    with torch.no_grad():
        times, kind = node_times_ms(params, samples)
    totals = times.sum(dim=1).tolist()
    by_kind = [{name: float(times[i][kind[i] == idx].sum()) for name, idx in KIND_INDEX.items()}
               for i in range(len(samples))]
    return totals, by_kind
