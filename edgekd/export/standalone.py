"""Export any PyTorch model (a timm name, or your own module) to every backend asked for, with parity.

This is what `edgekd export timm:mobilenetv3_large_100` runs: no recipe, no task metric — parity is the
output difference against PyTorch on seeded random inputs (or your own inputs). int8 needs calibration
inputs (a .npy of network inputs): a model is never quantized on random data behind the user's back.

>>> from edgekd.export.standalone import export_model, build_model_spec
>>> model = build_model_spec("timm:resnet18")
>>> rows = export_model(model, (1, 3, 224, 224), "runs/export/resnet18", {"onnx": ["fp32"], "openvino": ["fp16"]})

The files are written and checked by the same orchestration as a recipe's export stage (edgekd.export.orchestrate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from edgekd.artifacts import atomic_write_json, load_state_into
from edgekd.errors import EdgekdError
from edgekd.export.orchestrate import ExportRow

PARITY_SEED = 0
RANDOM_WEIGHTS_SEED = 0  # a timm model without --weights: seeded, so two runs check the same network
ROLE = "model"


def build_model_spec(spec: str, weights: Optional[Path] = None) -> Any:
    """`timm:NAME` → the timm architecture (random weights, or `weights`: a local state_dict)."""
    kind, sep, name = spec.partition(":")
    if not sep or kind != "timm" or not name:
        raise EdgekdError(f"model '{spec}': give a recipe .yaml or timm:NAME (e.g. timm:mobilenetv3_large_100)")
    import timm

    if name not in timm.list_models():
        from edgekd.registry import closest

        hint = closest(name, timm.list_models())
        raise EdgekdError(f"unknown timm model '{name}'" + (f" (did you mean '{hint}'?)" if hint else ""))
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)  # random weights, but the same ones every run: numbers reproduce
        model = timm.create_model(name, pretrained=False)
    if weights is not None:
        load_state_into(model, weights)  # weights_only=True: a checkpoint cannot run code
    return model.eval()


def export_model(
    model: Any,
    input_shape: Sequence[int],
    out_dir: str | Path,
    backends: dict[str, list[str]],
    *,
    calibration: Optional[np.ndarray] = None,
    parity_inputs: Optional[np.ndarray] = None,
    parity_samples: int = 8,
    budgets: Optional[dict[str, Any]] = None,
    opset: int = 18,
    target_tensorrt: str = "10.3",
    progress=None,
) -> list[ExportRow]:
    """Write every (backend, precision) under `out_dir`, check each against PyTorch, return one row each.

    Files: `onnx/model.onnx`, `onnx/model.int8.onnx` (ONNX Runtime's int8 placement), `openvino/model.fp16.xml`,
    `tensorrt/<precision>/` (the device bundle where TensorRT cannot build here); exports.json lists the rows.
    `budgets` maps a precision to a ParityBudget (edgekd.recipe.common) replacing the default.
    """
    from edgekd.export.orchestrate import ExportSettings, ParitySpec, Source, export_one

    out_dir = Path(out_dir)
    settings = ExportSettings(opset=opset, tensorrt_target=target_tensorrt)
    _check_request(backends, calibration)
    inputs = parity_inputs if parity_inputs is not None else _random_inputs(input_shape, parity_samples)
    spec = ParitySpec(inputs, {**default_budgets(), **_budget_objects(budgets or {})}, agreement=True)
    shape = tuple(input_shape)
    sources = {"float": Source(ROLE, "float", model.eval(), shape)}
    if any("int8" in precisions for precisions in backends.values()):
        # int8 here is post-training quantization on the user's calibration inputs (no training loop to run QAT)
        sources["int8"] = Source(ROLE, "ptq", _quantized(model, calibration, shape[0]), shape,
                                 calibration=calibration, name=ROLE)
    rows = []
    for backend, precisions in backends.items():
        for precision in precisions:
            if progress:
                progress(f"{backend} {precision}")
            source = sources["int8" if precision == "int8" else "float"]
            rows.append(export_one(source, backend, precision, out_dir, spec, settings))
    atomic_write_json(out_dir / "exports.json", [row.to_dict() for row in rows])
    return rows


def default_budgets() -> dict[str, Any]:
    """Parity budgets per precision for a model without a recipe (no task metric): scaled to the outputs — SNR and
    top-1 agreement (edgekd.export.parity.SCALED_BUDGETS) — with the absolute difference reported, not gated, since
    it cannot fail a model whose outputs are tiny."""
    from edgekd.export.parity import SCALED_BUDGETS
    from edgekd.recipe.common import ParityBudget

    return {precision: ParityBudget(max_abs_diff=None, **budgets) for precision, budgets in SCALED_BUDGETS.items()}


def _budget_objects(budgets: dict[str, Any]) -> dict[str, Any]:
    """A number is an absolute |Δ| budget (what `budgets=` took before the scaled ones); a ParityBudget stays."""
    from edgekd.recipe.common import ParityBudget

    return {precision: ParityBudget(max_abs_diff=float(budget)) if isinstance(budget, (int, float)) else budget
            for precision, budget in budgets.items()}


def _check_request(backends: dict[str, list[str]], calibration) -> None:
    from edgekd.export import EXPORTERS

    if not backends:
        raise EdgekdError("nothing to export: give at least one --backend")
    for backend, precisions in backends.items():
        exporter = EXPORTERS.get(backend)  # unknown names fail here with a did-you-mean
        for precision in precisions:
            if precision not in exporter.precisions:
                reason = exporter.refused.get(precision, "not implemented by this backend")
                raise EdgekdError(f"{backend} cannot produce {precision}: {reason}")
            if precision == "int8" and calibration is None:
                raise EdgekdError("int8 needs calibration inputs: --calibration inputs.npy (N, C, H, W float32, "
                                  "normalised as the model expects); random data would give meaningless scales")


def _random_inputs(shape: Sequence[int], samples: int) -> np.ndarray:
    rng = np.random.default_rng(PARITY_SEED)
    return rng.standard_normal((samples, *tuple(shape)[1:])).astype(np.float32)


def _quantized(model, calibration: np.ndarray, batch: int) -> Any:
    import torch

    from edgekd.quant.nncf_quant import quantize_ptq

    data = np.ascontiguousarray(calibration, dtype=np.float32)
    step = max(1, batch)
    batches = [torch.from_numpy(data[i:i + step]) for i in range(0, len(data), step)]
    return quantize_ptq(model, batches)
