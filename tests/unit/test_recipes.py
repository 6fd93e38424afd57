"""Every recipe in recipes/ loads; overrides, inheritance and the JSON schema behave."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.errors import EdgekdError
from edgekd.recipe import load_recipe, recipe_json_schema
from edgekd.recipe.loader import deep_merge, parse_overrides
from edgekd.recipe.schema import TASK_NAMES
from tests.conftest import REPO, TINY_RECIPE

RECIPE_FILES = sorted(p for p in (REPO / "recipes").rglob("*.yaml") if "_base" not in p.parts)


@pytest.mark.parametrize("path", RECIPE_FILES + sorted((REPO / "tests" / "recipes").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_recipe_loads(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.task in TASK_NAMES
    assert recipe.name


def test_recipes_folder_has_the_issue_recipes() -> None:
    names = {p.relative_to(REPO / "recipes").as_posix() for p in RECIPE_FILES}
    assert {"quickstart.yaml", "gaze/dft_gaze.yaml", "ibvs/nser.yaml"} <= names


def test_base_values_are_inherited_and_overridden() -> None:
    recipe = load_recipe(TINY_RECIPE)
    assert recipe.distill.mask_ratio == 0.6  # from _base/gaze.yaml
    assert recipe.data.image_size == 32  # the tiny recipe's own value wins


def test_set_overrides_parse_yaml_values() -> None:
    recipe = load_recipe(TINY_RECIPE, ["distill.train.epochs=7", "distill.mask_ratio=0.75", "name=other"])
    assert recipe.distill.train.epochs == 7
    assert recipe.distill.mask_ratio == 0.75
    assert recipe.name == "other"


def test_name_defaults_to_file_stem(write_yaml) -> None:
    path = write_yaml("task: gaze\n", name="my_run.yaml")
    assert load_recipe(path).name == "my_run"


def test_deep_merge_replaces_lists_and_merges_mappings() -> None:
    merged = deep_merge({"a": {"b": 1, "c": [1, 2]}}, {"a": {"c": [3]}})
    assert merged == {"a": {"b": 1, "c": [3]}}


def test_parse_overrides_types() -> None:
    assert parse_overrides(["a.b=3", "c=true", "d=[1, 2]", "e=text"]) == [
        ("a.b", 3), ("c", True), ("d", [1, 2]), ("e", "text"),
    ]


def test_bad_override_is_refused() -> None:
    with pytest.raises(EdgekdError, match="expected KEY.PATH=VALUE"):
        parse_overrides(["distill.train.epochs"])


def test_json_schema_describes_the_recipe() -> None:
    schema = recipe_json_schema()
    text = str(schema)
    assert schema["title"] == "edgekd recipe"
    assert "mask_ratio" in text and "additionalProperties" in text
