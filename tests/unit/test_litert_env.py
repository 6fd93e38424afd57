"""Which Python converts to LiteRT, and the refusal when none is set up (no conversion runs here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgekd.errors import EdgekdError
from edgekd.export import litert_env


def test_a_named_python_wins(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("EDGEKD_LITERT_PYTHON", "/opt/py/bin/python")
    assert litert_env.converter_python() == ("/opt/py/bin/python", "EDGEKD_LITERT_PYTHON")


def test_a_managed_environment_counts_only_once_ready(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("EDGEKD_LITERT_PYTHON", raising=False)
    monkeypatch.setenv("EDGEKD_LITERT_ENV", str(tmp_path / "env"))
    monkeypatch.setattr(litert_env.importlib.util, "find_spec", lambda name: None)
    (tmp_path / "env" / "bin").mkdir(parents=True)
    (tmp_path / "env" / "bin" / "python").write_text("")
    assert litert_env.converter_python() is None  # half made: no ready mark
    with pytest.raises(EdgekdError, match="edgekd setup litert"):
        litert_env.require_converter()
    (tmp_path / "env" / ".edgekd-ready").write_text("litert-torch\n")
    python, where = litert_env.converter_python()
    assert Path(python) == tmp_path / "env" / "bin" / "python" and "managed" in where


def test_the_default_environment_sits_beside_edgekds(monkeypatch) -> None:
    monkeypatch.delenv("EDGEKD_LITERT_ENV", raising=False)
    assert litert_env.managed_env() == Path(sys.prefix) / "edgekd-litert"


def test_a_folder_that_is_not_an_environment_is_never_replaced(tmp_path) -> None:
    precious = tmp_path / "venvs"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(EdgekdError, match="is not a Python environment"):
        litert_env.create(precious, force=True, log=lambda line: None)
    assert (precious / "notes.txt").read_text() == "mine"


def test_a_failed_build_leaves_the_working_environment_in_place(tmp_path, monkeypatch) -> None:
    env = tmp_path / "env"
    env.mkdir()
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (env / ".edgekd-ready").write_text("litert-torch\n")

    def broken_install(folder, log):
        raise EdgekdError(f"installing litert-torch into {folder} failed: no network")

    monkeypatch.setattr(litert_env, "_install", broken_install)
    with pytest.raises(EdgekdError, match="no network"):
        litert_env.create(env, force=True, log=lambda line: None)
    assert (env / ".edgekd-ready").exists() and not (tmp_path / "env.building").exists()
