"""`edgekd check report.json --baseline base.json`: the CI regression gate.

Exit 0 when nothing regressed, 1 on a regression beyond budget (with one verdict line on stderr), 2 on bad input
(a missing or invalid report, an unknown key in the budgets file). The Markdown, JSON and JUnit files are written
before the exit either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from edgekd import api
from edgekd.cli.common import JsonOpt, guarded, out
from edgekd.errors import CheckFailed

PathOrNone = Optional[Path]


@guarded
def check_command(
    report: Annotated[Path, typer.Argument(help="report.json of this run.", show_default=False)],
    baseline: Annotated[Path, typer.Option("--baseline", "-b", help="report.json to compare against.")],
    max_metric_drop: Annotated[
        float, typer.Option(help="Largest allowed worsening of each metric, in the metric's unit.")
    ] = 0.0,
    max_latency_ratio: Annotated[
        float, typer.Option(help="Largest allowed current/baseline median ratio; fails only when the whole "
                                 "95% bootstrap interval of the ratio is above it.")
    ] = 1.2,
    max_size_ratio: Annotated[
        Optional[float], typer.Option(help="Largest allowed current/baseline file-size ratio (off by default).")
    ] = None,
    max_size_mb: Annotated[
        Optional[float], typer.Option(help="Largest allowed file size, MB (off by default).")
    ] = None,
    budgets: Annotated[
        PathOrNone, typer.Option(help="YAML/JSON file of per-backend, precision or device budget overrides.")
    ] = None,
    markdown: Annotated[PathOrNone, typer.Option(help="Write the verdict as Markdown (a PR comment) here.")] = None,
    json_out: Annotated[PathOrNone, typer.Option(help="Write the comparison as JSON here.")] = None,
    junit: Annotated[PathOrNone, typer.Option(help="Write JUnit XML here: one testcase per compared row.")] = None,
    allow_other_recipe: Annotated[
        bool, typer.Option("--allow-other-recipe", help="Compare with a baseline of another recipe name (a rename).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compare a report with a baseline; exit 1 when a metric, latency or size regressed beyond budget."""
    from edgekd.paths import check_output_file
    from edgekd.report.gate_output import to_json, verdict_line, write_outputs

    for path, option in ((markdown, "--markdown"), (json_out, "--json-out"), (junit, "--junit")):
        check_output_file(path, option)
    comparison = api.check(report, baseline, max_metric_drop=max_metric_drop, max_latency_ratio=max_latency_ratio,
                           max_size_ratio=max_size_ratio, max_size_mb=max_size_mb, budgets=budgets,
                           allow_other_recipe=allow_other_recipe)
    write_outputs(comparison, markdown=markdown, json_out=json_out, junit=junit)
    if as_json:
        typer.echo(to_json(comparison), nl=False)  # plain echo: rich would wrap long lines inside strings
    else:
        out.print(_table(comparison))
        for note in comparison.notes:
            out.print(f"[yellow]note:[/yellow] {escape(note)}")
    if comparison.failed:
        # The verdict on stderr too: a CI log shows it even when stdout is captured as JSON or cut short.
        raise CheckFailed(verdict_line(comparison))


def _table(comparison) -> Table:
    table = Table("model", "quantity", "baseline", "current", "change", "budget", "", "note", title="edgekd check")
    for row in comparison.rows:
        mark = "[green]ok[/green]" if row.ok else "[bold red]FAIL[/bold red]"
        table.add_row(*(escape(text) for text in (row.label, row.quantity, _fmt(row.baseline), _fmt(row.current),
                                                   row.change, row.budget)), mark, escape(row.note))
    return table


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
