"""Stage config keys: a rendering process count changes how a stage runs, not what it writes, so it must not
re-run finished work; a change that alters the outputs must."""

from __future__ import annotations

import pytest

from edgekd.recipe.loader import load_recipe
from edgekd.tasks import get_task
from tests.conftest import REPO

RECIPES = {"gaze": "tests/recipes/tiny_gaze.yaml", "layout": "tests/recipes/tiny_layout.yaml",
           "mono3d": "tests/recipes/tiny_mono3d.yaml"}


def _keys(path: str, *overrides: str) -> dict[str, object]:
    recipe = load_recipe(REPO / path, overrides)
    return {stage.name: stage.config(recipe) for stage in get_task(recipe.task).stages()}


@pytest.mark.parametrize("task", sorted(RECIPES))
def test_the_number_of_rendering_processes_leaves_every_stage_key_alone(task: str) -> None:
    assert _keys(RECIPES[task], "data.workers=1") == _keys(RECIPES[task], "data.workers=2")


def test_a_change_to_the_data_changes_the_keys_of_the_stages_that_read_it() -> None:
    one, other = _keys(RECIPES["mono3d"], "data.train=8"), _keys(RECIPES["mono3d"], "data.train=9")
    assert one["data"] != other["data"] and one["teacher"] != other["teacher"]
    assert one["evaluate"] == other["evaluate"]
