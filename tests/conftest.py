"""Shared fixtures: repository paths, the tiny recipe, and a CLI runner that reports real exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_RECIPE = REPO / "tests" / "recipes" / "tiny_gaze.yaml"


def require_yolo_extra() -> None:
    """Skip the calling test module unless the optional `yolo` extra is installed; import it the way edgekd does
    (`require_ultralytics`: offline, and PIL's `Image.open` restored). A bare `import ultralytics` at collection
    would leave Ultralytics' process-wide PIL patch in place for every other test module."""
    pytest.importorskip("ultralytics")
    from edgekd.yolo.offline import require_ultralytics

    require_ultralytics()


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m edgekd ARGS` in a subprocess, as a user would (real exit codes, real stderr)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "edgekd", *args],
        cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def run_tiny_recipe(tmp_path_factory, recipe: Path, timeout: float = 900, overrides: tuple[str, ...] = ()) -> Path:
    """`edgekd run RECIPE` into a fresh runs folder (must exit 0); the recipe's run folder.

    `overrides` are KEY.PATH=VALUE pairs for `--set`."""
    runs = tmp_path_factory.mktemp("runs")
    sets = [arg for pair in overrides for arg in ("--set", pair)]
    result = run_cli("run", str(recipe), "--runs-dir", str(runs), *sets, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return runs / recipe.stem


@pytest.fixture
def tiny_recipe() -> Path:
    return TINY_RECIPE


@pytest.fixture
def write_yaml(tmp_path: Path):
    """Write a recipe text into tmp_path and return its path."""

    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
