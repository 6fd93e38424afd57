"""`edgekd run RECIPE`: the whole pipeline, resumable stage by stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markdown import Markdown

from edgekd import api
from edgekd.cli.common import RecipeArg, RunsDirOpt, SetOpt, err, guarded, out
from edgekd.errors import EdgekdError
from edgekd.paths import check_output_dir

StagesOpt = Annotated[
    Optional[list[str]],
    typer.Option("--stages", help="Only these stages (comma-separated or repeated), e.g. --stages export,profile."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Re-run the selected stages even if they are up to date.")]


def split_stages(values: Optional[list[str]]) -> Optional[list[str]]:
    """The stage names of `--stages` (comma-separated or repeated); None when the option is absent.

    An option given but naming no stage (`--stages ""`, `--stages ,`) is refused: running every stage instead
    is not what the user asked for.
    """
    if values is None:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise EdgekdError("--stages names no stage (comma-separated names, e.g. --stages export,profile)")
    return names


@guarded
def run_command(
    recipe: RecipeArg,
    set_: SetOpt = None,
    stages: StagesOpt = None,
    force: ForceOpt = False,
    runs_dir: RunsDirOpt = api.DEFAULT_RUNS_DIR,
) -> None:
    """Run a recipe: data, teacher, distill, fine-tune, export, profile, report."""
    selected = split_stages(stages)  # before the recipe loads: a bad option costs nothing
    check_output_dir(runs_dir, "--runs-dir")
    loaded = api.load_recipe(recipe, set_ or [])
    result = api.run(loaded, stages=selected, force=force, runs_dir=runs_dir, console=err)
    _print_report(result.run_dir)


def _print_report(run_dir: Path) -> None:
    from edgekd import distributed

    markdown = run_dir / "report.md"
    if distributed.is_main() and markdown.is_file():
        print_report(out, markdown.read_text(encoding="utf-8"))
        out.print(f"report: {run_dir / 'report.json'}")


def print_report(console: Console, markdown: str) -> None:
    """The report rendered for a terminal; its Markdown as written for a log file or a pipe."""
    if console.is_terminal:
        console.print(Markdown(markdown))
    else:
        # Rendered tables are fitted to the console, 80 columns when it is not a terminal, and cut numbers
        # to `1.42e-…`; the Markdown itself loses nothing and is still a table to read or paste.
        console.out(markdown, highlight=False)
