"""`edgekd check report.json --baseline base.json`: the CI regression gate (exit 1 on a regression)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edgekd import api
from edgekd.cli.common import JsonOpt, guarded, out


@guarded
def check_command(
    report: Annotated[Path, typer.Argument(help="report.json of this run.", show_default=False)],
    baseline: Annotated[Path, typer.Option("--baseline", "-b", help="report.json to compare against.")],
    max_metric_drop: Annotated[
        float, typer.Option(help="Largest allowed worsening of each metric, in the metric's unit.")
    ] = 0.0,
    max_latency_ratio: Annotated[float, typer.Option(help="Largest allowed current/baseline p50 ratio.")] = 1.2,
    as_json: JsonOpt = False,
) -> None:
    """Compare a report with a baseline; exit 1 when a metric or latency regressed beyond budget."""
    comparison = api.check(report, baseline, max_metric_drop=max_metric_drop, max_latency_ratio=max_latency_ratio)
    if as_json:
        out.print(json.dumps(comparison.to_dict(), indent=2), highlight=False, markup=False)
    else:
        out.print(_table(comparison))
        for note in comparison.notes:
            out.print(f"[yellow]note:[/yellow] {escape(note)}")
    if comparison.failed:
        raise typer.Exit(1)


def _table(comparison) -> Table:
    table = Table("model", "quantity", "baseline", "current", "change", "budget", "", "note", title="edgekd check")
    for row in comparison.rows:
        mark = "[green]ok[/green]" if row.ok else "[bold red]FAIL[/bold red]"
        table.add_row(
            row.role, row.quantity, _fmt(row.baseline), _fmt(row.current), row.change, row.budget, mark, row.note
        )
    return table


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
