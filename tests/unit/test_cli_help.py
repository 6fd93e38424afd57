"""`--help` of every command: flags read as flags, and help text is printed as written."""

from __future__ import annotations

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from edgekd.cli.app import app

runner = CliRunner()


def _command_paths() -> list[list[str]]:
    root = get_command(app)
    paths = [[]]
    for name, command in root.commands.items():
        paths.append([name])
        paths += [[name, sub] for sub in getattr(command, "commands", {})]
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda path: " ".join(path) or "edgekd")
def test_boolean_flags_show_no_value_placeholder(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--help" in result.stdout and "<bool>" not in result.stdout


def test_install_hint_in_help_keeps_its_extra() -> None:
    help_text = runner.invoke(app, ["yolo-compare", "--help"], env={"COLUMNS": "200"}).stdout
    assert "pip install 'edgekd[yolo]'" in help_text
