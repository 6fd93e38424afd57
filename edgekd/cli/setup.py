"""`edgekd setup BACKEND`: prepare what a backend needs beyond its pip extra (LiteRT: its converter's environment)."""

from __future__ import annotations

from typing import Annotated

import typer

from edgekd.cli.common import err, guarded
from edgekd.export import BACKENDS, backend_names


@guarded
def setup_command(
    backend: Annotated[str, typer.Argument(help=f"{' | '.join(backend_names())}", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Make it anew even when it is ready.")] = False,
) -> None:
    """Prepare a backend's tools (litert: a separate Python environment for the litert-torch converter)."""
    BACKENDS.get(backend).setup(log=lambda line: err.print(line, highlight=False, markup=False), force=force)
