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


def test_relative_input_paths_are_relative_to_the_file_that_sets_them(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "base" / "eyes").mkdir(parents=True)
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "teacher.pt").write_bytes(b"")
    (tmp_path / "base" / "gaze.yaml").write_text("task: gaze\ndata: {source: folder, root: eyes}\n")
    (tmp_path / "exp" / "run.yaml").write_text("_base: ../base/gaze.yaml\nteacher: {checkpoint: teacher.pt}\n")
    monkeypatch.chdir(tmp_path / "base" / "eyes")  # any working folder: the recipe's own folder decides
    recipe = load_recipe(Path("../../exp/run.yaml"))
    assert recipe.data.root.resolve() == (tmp_path / "base" / "eyes").resolve()
    assert recipe.teacher.checkpoint.resolve() == (tmp_path / "exp" / "teacher.pt").resolve()


def test_a_set_path_is_relative_to_the_working_folder(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "teacher.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(TINY_RECIPE, ["teacher.checkpoint=teacher.pt"])
    assert recipe.teacher.checkpoint.resolve() == (tmp_path / "teacher.pt").resolve()


@pytest.mark.parametrize(("text", "fragments"), [
    ("teacher: {checkpoint: absent.pt}", ["teacher.checkpoint", "file not found", "absent.pt"]),
    ("teacher: {checkpoint: .}", ["teacher.checkpoint", "not a file"]),
    ("data: {source: folder, root: no_such_folder}", ["data.root", "folder not found", "no_such_folder"]),
], ids=["missing-checkpoint", "checkpoint-is-a-folder", "missing-data-root"])
def test_a_missing_input_path_fails_at_load(write_yaml, text: str, fragments: list[str]) -> None:
    with pytest.raises(EdgekdError) as error:
        load_recipe(write_yaml(f"task: gaze\n{text}\n"))
    assert all(fragment in str(error.value) for fragment in fragments), str(error.value)


@pytest.mark.parametrize(("task", "location"), [
    ("layout", "teacher.checkpoint"), ("layout", "data.val_json"), ("mono3d", "assistant.checkpoint"),
    ("ibvs", "perception.checkpoint"),
])
def test_every_task_checks_its_input_files(write_yaml, task: str, location: str) -> None:
    with pytest.raises(EdgekdError, match=rf"{location}: file not found"):
        load_recipe(write_yaml(f"task: {task}\n"), [f"{location}=absent.file"])


@pytest.mark.parametrize(("override", "fragments"), [
    ("distill.train.epochs=1e23", ["distill.train.epochs", "less than or equal to 10000"]),
    ("distill.train.epochs=1.0e+23", ["distill.train.epochs", "less than or equal to 10000"]),
    ("teacher.train.batch_size=1000000", ["teacher.train.batch_size", "65536"]),
    ("distill.train.lr=1e4", ["distill.train.lr", "less than or equal to 10"]),
    ("data.train_per_subject=1e12", ["data.train_per_subject", "100000000"]),
    ("profile.runs=10000000000", ["profile.runs", "100000000"]),
])
def test_absurd_values_fail_with_the_field_and_the_limit(override: str, fragments: list[str]) -> None:
    with pytest.raises(EdgekdError) as error:
        load_recipe(TINY_RECIPE, [override])
    assert all(fragment in str(error.value) for fragment in fragments), str(error.value)
