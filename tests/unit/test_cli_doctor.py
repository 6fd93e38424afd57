"""`edgekd doctor` lists runtimes and extras; install hints survive the console's markup."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from edgekd.cli.app import app

runner = CliRunner()


def test_doctor_table_shows_every_install_hint_verbatim() -> None:
    info = json.loads(runner.invoke(app, ["doctor", "--json"]).stdout)
    assert {row["runtime"] for row in info["runtimes"]} >= {"pytorch", "onnxruntime"}
    table = runner.invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    for row in info["runtimes"]:
        assert row["hint"] in table.stdout, row
