"""Shared option aliases and the error boundary that maps exceptions to exit codes."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import click
import typer
from rich.markup import escape
from rich.console import Console

from edgekd.errors import INTERNAL_ERROR_EXIT, EdgekdError, describe_os_error, first_line

# Piped into a log, rich would squeeze tables to 80 columns and cut numbers to '1.42e-…'; tables take only the
# width they need, so a wide console costs nothing there. A terminal, or an explicit COLUMNS, keeps its width.
_LOG_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 240
out = Console(width=_LOG_WIDTH)
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
    """The one place that turns failures into exit codes (docs/refusals.md).

    Bad input and expected environment failures (a file that cannot be read or written, a refused connection) are
    one line on stderr and exit 2; a check that ran and failed is exit 1; anything else is a bug in edgekd: one
    line, exit 3, and the traceback in a log file the line names. `--debug` re-raises, so the traceback shows.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.ClickException):
            raise
        except KeyboardInterrupt:
            err.print("interrupted: completed stages and the last checkpoint are kept; rerun to resume")
            raise typer.Exit(130) from None
        except Exception as error:  # noqa: BLE001 - the boundary: every exception gets an exit code here
            if STATE["debug"]:
                raise
            code, line = _classify(error)
            print_error(line)
            raise typer.Exit(code) from None

    return wrapper


def print_error(line: str) -> None:
    """The one `error: ...` line on stderr (markup in the message is shown as typed: `edgekd[yolo]`)."""
    err.print(f"[bold red]error:[/bold red] {escape(line)}", highlight=False, soft_wrap=True)


def _classify(error: Exception) -> tuple[int, str]:
    if isinstance(error, EdgekdError):
        return error.exit_code, str(error)
    if isinstance(error, OSError):  # I/O and network: the user's environment, not a bug
        return 2, describe_os_error(error)
    log = _write_traceback(error)
    return INTERNAL_ERROR_EXIT, (f"internal error, please report it: {type(error).__name__}: {first_line(error)} "
                                 f"(traceback in {log}; --debug prints it)")


def _write_traceback(error: Exception) -> Path:
    """The traceback of an internal error, in a file of its own in the temporary folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    fd, name = tempfile.mkstemp(prefix=f"edgekd-error-{stamp}-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("".join(traceback.format_exception(error)))
    return Path(name)
