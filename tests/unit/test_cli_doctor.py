"""`edgekd doctor` lists runtimes, extras and devices; install hints survive the console's markup."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from edgekd.cli.app import app
from tests.conftest import REPO, run_cli

runner = CliRunner()


def test_doctor_table_shows_every_install_hint_verbatim() -> None:
    info = json.loads(runner.invoke(app, ["doctor", "--json"]).stdout)
    assert {row["runtime"] for row in info["runtimes"]} >= {"pytorch", "onnxruntime"}
    table = runner.invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    for row in info["runtimes"]:
        assert row["hint"] in table.stdout, row


def test_doctor_verb_works_every_time_in_one_interpreter() -> None:
    code = "import edgekd; first = edgekd.doctor(); assert edgekd.doctor() == first; print(sorted(first))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "runtimes" in result.stdout


def test_doctor_outside_the_repository_lists_the_devices_profiling_uses(tmp_path) -> None:
    from edgekd.devices import list_devices

    assert "rpi5" in list_devices()  # what `--device rpi5` resolves from any folder
    result = run_cli("doctor", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rpi5" in json.loads(result.stdout)["devices"]
    assert "rpi5" in run_cli("doctor", cwd=tmp_path).stdout
