"""`edgekd` — the command-line entry point."""

from __future__ import annotations

from typing import Annotated

import typer

from edgekd import __version__
from edgekd.cli import check, deploy, doctor, export, predict, profile, qat, recipe, run, setup, yolo
from edgekd.cli.common import STATE

# Plain (click) help and usage errors: typer's rich help puts `<bool>` after every flag as if it took a value,
# and reads `[...]` in help text as markup ("pip install 'edgekd[yolo]'" showed as "pip install 'edgekd'").
app = typer.Typer(
    name="edgekd",
    rich_markup_mode=None,
    help="Distill, quantize, export and profile vision models for Raspberry Pi and Jetson.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgekd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    STATE["debug"] = debug


app.command("run")(run.run_command)
app.add_typer(recipe.app, name="recipe")
app.command("qat")(qat.qat_command)
app.command("export")(export.export_command)
app.command("check")(check.check_command)
app.command("doctor")(doctor.doctor_command)
app.command("predict")(predict.predict_command)
app.command("profile")(profile.profile_command)
app.command("deploy")(deploy.deploy_command)
app.command("yolo-compare")(yolo.yolo_compare_command)
app.command("setup")(setup.setup_command)


def main() -> None:
    app()
