"""The Python API: each CLI command is a thin wrapper around one function here.

>>> from edgekd import api
>>> recipe = api.load_recipe("recipes/quickstart.yaml", ["distill.train.epochs=1"])
>>> result = api.run(recipe)            # data -> teacher -> distill -> ... -> report
>>> result.report_path
PosixPath('runs/quickstart/report.json')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from rich.console import Console

from edgekd.recipe import load_recipe as _load_recipe

DEFAULT_RUNS_DIR = Path("runs")


@dataclass
class RunResult:
    run_dir: Path
    outcomes: list[Any]

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.json"


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Any:
    """Load and validate a recipe file; raises EdgekdError with a one-line message when it is bad.

    Beyond the schema, the task's preflight checks what needs models built (layer names exist), so a
    typo fails here in seconds instead of after the teacher has trained.
    """
    from edgekd.errors import EdgekdError
    from edgekd.tasks import get_task

    recipe = _load_recipe(path, list(overrides))
    try:
        get_task(recipe.task).preflight(recipe)
    except EdgekdError as error:
        raise EdgekdError(f"{path}: {error}") from None
    return recipe


def build_pipeline(recipe: Any, runs_dir: str | Path = DEFAULT_RUNS_DIR, console: Optional[Console] = None):
    from edgekd.pipeline import Pipeline
    from edgekd.tasks import get_task

    task = get_task(recipe.task)
    return Pipeline(recipe, task.stages(), Path(runs_dir), console)


def run(
    recipe: Any,
    *,
    stages: Optional[Sequence[str]] = None,
    force: bool = False,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    console: Optional[Console] = None,
) -> RunResult:
    """Run a recipe's pipeline; stages whose manifest matches are skipped unless `force`."""
    from edgekd import distributed
    from edgekd.compute import resolve

    if distributed.world_size() > 1:  # torchrun: the process group's backend follows where the models train
        distributed.init_if_needed(resolve(getattr(recipe, "device", "cpu")).device_type)
    pipeline = build_pipeline(recipe, runs_dir, console)
    pipeline.select(list(stages) if stages else None)  # fail on a bad stage name before any work
    outcomes = pipeline.run(list(stages) if stages else None, force=force)
    return RunResult(pipeline.run_dir, outcomes)


def run_until(recipe: Any, stage: str, *, force: bool = False, runs_dir: str | Path = DEFAULT_RUNS_DIR,
              console: Optional[Console] = None) -> RunResult:
    """Run the stages before `stage` (skipping what is done), then `stage` itself (`force` re-runs it)."""
    names = list(build_pipeline(recipe, runs_dir, console).stages)
    if stage not in names:
        from edgekd.errors import EdgekdError
        from edgekd.registry import unknown_name_message

        raise EdgekdError(unknown_name_message("stage", stage, names))
    run(recipe, stages=names[: names.index(stage)], runs_dir=runs_dir, console=console)
    return run(recipe, stages=[stage], force=force, runs_dir=runs_dir, console=console)


def qat(recipe: Any, *, force: bool = False, runs_dir: str | Path = DEFAULT_RUNS_DIR,
        console: Optional[Console] = None) -> dict[str, Any]:
    """Up to the `qat` stage; returns its metrics (float / PTQ / QAT metric, sensitivity, fallback)."""
    import json

    result = run_until(recipe, "qat", force=force, runs_dir=runs_dir, console=console)
    return json.loads((result.run_dir / "qat" / "metrics.json").read_text())


def export_recipe(recipe: Any, *, force: bool = False, runs_dir: str | Path = DEFAULT_RUNS_DIR,
                  console: Optional[Console] = None) -> list[dict[str, Any]]:
    """Up to the `export` stage; returns one row per exported file (backend, precision, parity, status)."""
    import json

    result = run_until(recipe, "export", force=force, runs_dir=runs_dir, console=console)
    return json.loads((result.run_dir / "export" / "artifacts.json").read_text())


def export_model(model: Any, input_shape: Sequence[int], out_dir: str | Path, backends: dict[str, list[str]],
                 **options: Any) -> list[Any]:
    """Export a PyTorch module (or "timm:NAME") to each backend and precision, with parity; no recipe needed."""
    from edgekd.export.standalone import build_model_spec, export_model as _export_model

    module = build_model_spec(model) if isinstance(model, str) else model
    return _export_model(module, input_shape, out_dir, backends, **options)


def check(
    report: str | Path,
    baseline: str | Path,
    *,
    max_metric_drop: float = 0.0,
    max_latency_ratio: float = 1.2,
    max_size_ratio: float | None = None,
    max_size_mb: float | None = None,
    budgets: str | Path | None = None,
    allow_other_recipe: bool = False,
):
    """Compare a report with a baseline report; `.failed` is True on a regression beyond budget.

    Reports of two recipe names are refused unless `allow_other_recipe` (a renamed recipe).

    Latency is compared noise-aware (see `edgekd.report.compare`); `budgets` is a YAML/JSON file of per-backend,
    precision or device overrides of the global budgets (see `edgekd.report.budgets`).

    >>> check("runs/quickstart/report.json", "baselines/quickstart.json", max_metric_drop=0.1).failed
    """
    from edgekd.report.budgets import load_budgets
    from edgekd.report.compare import compare_reports
    from edgekd.report.schema import load_report

    return compare_reports(
        load_report(report),
        load_report(baseline),
        max_metric_drop=max_metric_drop,
        max_latency_ratio=max_latency_ratio,
        max_size_ratio=max_size_ratio,
        max_size_mb=max_size_mb,
        rules=load_budgets(budgets) if budgets is not None else (),
        allow_other_recipe=allow_other_recipe,
    )


def doctor() -> dict[str, Any]:
    """Which runtimes, optional extras and device specs this installation can use."""
    from edgekd._doctor import collect

    return collect()
