"""`edgekd recipe validate|show|schema`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml

from edgekd import api
from edgekd.artifacts import atomic_write_json
from edgekd.cli.common import STATE, JsonOpt, RecipeArg, SetOpt, guarded, out, print_error
from edgekd.errors import EdgekdError

app = typer.Typer(help="Validate, show and describe recipes.", no_args_is_help=True)


@app.command("validate")
@guarded
def validate(
    recipes: Annotated[list[Path], typer.Argument(help="Recipe files.", show_default=False)],
    set_: SetOpt = None,
) -> None:
    """Check recipes without running anything, e.g. `edgekd recipe validate recipes/*/*.yaml`: every file is
    checked and gets one line; exit 2 if any is bad."""
    bad = 0
    for path in recipes:
        try:
            loaded = api.load_recipe(path, set_ or [])
        except EdgekdError as error:
            if STATE["debug"]:
                raise
            # The same one line `guarded` prints, but the next file is still checked: a CI job validating every
            # recipe reports them all in one run.
            print_error(str(error))
            bad += 1
            continue
        out.print(f"[green]ok[/green] {path} (task {loaded.task}, name {loaded.name})")
    if bad:
        raise typer.Exit(EdgekdError.exit_code)


@app.command("show")
@guarded
def show(recipe: RecipeArg, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Print the fully resolved recipe (bases merged, overrides and defaults applied)."""
    loaded = api.load_recipe(recipe, set_ or [])
    data = loaded.model_dump(mode="json")
    text = json.dumps(data, indent=2) if as_json else yaml.safe_dump(data, sort_keys=False)
    out.print(text, highlight=False, markup=False, soft_wrap=True)


@app.command("schema")
@guarded
def schema(
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file.")] = None,
) -> None:
    """Print the JSON Schema of recipes, for editor completion and checks."""
    from edgekd.recipe import recipe_json_schema

    data = recipe_json_schema()
    if output:
        atomic_write_json(output, data)
        out.print(f"wrote {output}")
    else:
        out.print(json.dumps(data, indent=2), highlight=False, markup=False, soft_wrap=True)
