"""The Recipe type: a union of every task's recipe model, picked by the `task` field."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from edgekd.recipe.inputs import input_fields
from edgekd.tasks.gaze.config import GazeRecipe
from edgekd.tasks.ibvs.config import IbvsRecipe
from edgekd.tasks.layout.config import LayoutRecipe
from edgekd.tasks.mono3d.config import Mono3dRecipe

# One entry per task; the `task` key selects the model, so errors name the task's own fields.
Recipe = Annotated[Union[GazeRecipe, IbvsRecipe, LayoutRecipe, Mono3dRecipe], Field(discriminator="task")]
RECIPE_ADAPTER: TypeAdapter[Any] = TypeAdapter(Recipe)
RECIPE_MODELS = {"gaze": GazeRecipe, "ibvs": IbvsRecipe, "layout": LayoutRecipe, "mono3d": Mono3dRecipe}
TASK_NAMES = tuple(RECIPE_MODELS)
# Every task's input path fields: a recipe file's relative paths are resolved before its task is known (a _base
# may set the path, the file inheriting from it the task); no two tasks use one location for different things.
INPUT_FIELDS = frozenset(location for model in RECIPE_MODELS.values() for location in input_fields(model))


def recipe_json_schema() -> dict[str, Any]:
    """JSON Schema for editors (point yaml-language-server at it)."""
    schema = RECIPE_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "edgekd recipe"
    return schema
