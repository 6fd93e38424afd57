"""Shared option aliases and the error boundary that maps exceptions to exit codes."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.markup import escape
from rich.console import Console

from edgekd.errors import EdgekdError

out = Console()
err = Console(stderr=True)
STATE = {"debug": False}

RecipeArg = Annotated[Path, typer.Argument(help="Recipe YAML file.", show_default=False)]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a recipe value: KEY.PATH=VALUE (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
RunsDirOpt = Annotated[Path, typer.Option("--runs-dir", help="Where run folders are written.")]


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """One line and exit 2 for bad input (exit 1 for a failed check); the traceback only with --debug."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EdgekdError as error:
            if STATE["debug"]:
                raise
            err.print(f"[bold red]error:[/bold red] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted: completed stages and the last checkpoint are kept; rerun to resume")
            raise typer.Exit(130) from None

    return wrapper
