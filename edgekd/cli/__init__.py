"""The typer CLI: one file per command group, every command a thin wrapper around `edgekd.api`."""
