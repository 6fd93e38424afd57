"""Which layers' quantization costs the most metric: switch one layer back to float at a time.

For each layer (the quantizers on its weights and inputs), the model is evaluated with that layer's
quantizers disabled; the metric recovered is what quantizing that layer costs. Layers at the top of the
list are the candidates for `quant.fallback`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from edgekd.quant.nncf_quant import quantizers_by_module


@dataclass
class LayerCost:
    module: str
    quantizers: int
    metric_float_layer: float
    cost: float  # metric lost by quantizing this layer (positive = quantizing it hurts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layer_sensitivity(
    qmodel: Any,
    evaluate: Callable[[Any], float],
    *,
    lower_is_better: bool,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[float, list[LayerCost]]:
    """(metric of the fully quantized model, per-layer costs sorted most costly first).

    Layers are named by real module paths when `qmodel` came from `quantize_ptq` (it carries the traced map).
    """
    baseline = evaluate(qmodel)
    groups = quantizers_by_module(qmodel)
    costs = []
    for index, (module, group) in enumerate(groups.items()):
        for quantizer in group:
            quantizer.disable_quantization()
        try:
            metric = evaluate(qmodel)
        finally:
            for quantizer in group:
                quantizer.enable_quantization()
        cost = baseline - metric if lower_is_better else metric - baseline
        costs.append(LayerCost(module, len(group), metric, cost))
        if progress:
            progress(index + 1, len(groups))
    return baseline, sorted(costs, key=lambda c: -c.cost)
