"""Recipe fields that name a file or folder the user provides: checked to exist when the recipe loads.

A relative path is relative to the recipe file that writes it, as `_base` is (an `--set` value: to the working
folder), so a recipe and its data or checkpoint can move together. Only inputs are typed this way: what a stage
writes lives under the run folder and is never named in a recipe.

>>> checkpoint: Optional[InputFile] = None
"""

from __future__ import annotations

import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal

from pydantic import AfterValidator, BaseModel


@dataclass(frozen=True)
class UserInput:
    """Marks a path field as an input the user provides, and checks that it exists."""

    kind: Literal["file", "folder"]

    def check(self, path: Path) -> Path:
        found = path.is_file() if self.kind == "file" else path.is_dir()
        if not found:
            raise ValueError(f"{self.kind} not found" if not path.exists() else f"not a {self.kind}")
        return path


_FILE, _FOLDER = UserInput("file"), UserInput("folder")
InputFile = Annotated[Path, _FILE, AfterValidator(_FILE.check)]
InputFolder = Annotated[Path, _FOLDER, AfterValidator(_FOLDER.check)]


def input_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The locations of the input path fields in `model` and in its sections, e.g. ('teacher', 'checkpoint')."""
    for name, field in model.model_fields.items():
        location = (*prefix, name)
        if any(_marks_input(item) for item in (field.annotation, *field.metadata)):
            yield location
        section = _section(field.annotation)
        if section is not None:
            yield from input_fields(section, location)


def resolve_inputs(data: dict[str, Any], locations: frozenset[tuple[str, ...]], folder: Path) -> None:
    """Rewrite the relative input paths that one recipe file sets as paths under `folder`, that file's folder."""
    for location in locations:
        node: Any = data
        for key in location[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(location[-1]), str):
            # normpath: 'exp/../base/eyes' and 'base/eyes' are one folder, and one config key
            node[location[-1]] = os.path.normpath(folder.absolute() / Path(node[location[-1]]).expanduser())


def _marks_input(annotation: Any) -> bool:
    # Optional[InputFile] hides the marker one level down, inside the Annotated.
    return isinstance(annotation, UserInput) or any(_marks_input(arg) for arg in typing.get_args(annotation))


def _section(annotation: Any) -> type[BaseModel] | None:
    optional = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    candidates = (annotation, *typing.get_args(annotation)) if optional else (annotation,)
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
