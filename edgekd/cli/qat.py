"""`edgekd qat RECIPE`: the pipeline up to quantization-aware fine-tuning, and its summary."""

from __future__ import annotations

from edgekd import api
from edgekd.cli.common import RecipeArg, RunsDirOpt, SetOpt, err, guarded, out
from edgekd.cli.run import ForceOpt
from edgekd.paths import check_output_dir


@guarded
def qat_command(
    recipe: RecipeArg,
    set_: SetOpt = None,
    force: ForceOpt = False,
    runs_dir: RunsDirOpt = api.DEFAULT_RUNS_DIR,
) -> None:
    """int8: PTQ baseline, per-layer sensitivity and QAT (resumes the stages before it that are done)."""
    check_output_dir(runs_dir, "--runs-dir")
    loaded = api.load_recipe(recipe, set_ or [])
    metrics = api.qat(loaded, force=force, runs_dir=runs_dir, console=err)
    if not metrics.get("enabled"):
        out.print("quantization is off for this recipe (quant.enabled: false)")
        return
    out.print(f"{metrics['metric']}: float {metrics['float']:.4f}, PTQ int8 {metrics['ptq']:.4f}, "
              f"QAT int8 {metrics['qat']:.4f}  ({runs_dir / loaded.name / 'qat'})")
    for entry in metrics.get("sensitivity_top", [])[:5]:
        out.print(f"  sensitive: {entry['module']}  {entry['cost']:+.4f}")
