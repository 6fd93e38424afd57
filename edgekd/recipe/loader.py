"""Load a recipe: safe YAML, `_base` inheritance, `a.b=c` overrides, one-line errors.

Recipes are data, never code: `yaml.safe_load` only, and `_base` may only name other YAML files. A relative
input path (edgekd.recipe.inputs) is relative to the file that sets it, as a `_base` is.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edgekd.errors import EdgekdError
from edgekd.paths import read_text
from edgekd.recipe.errors import format_validation_error
from edgekd.recipe.inputs import resolve_inputs
from edgekd.recipe.schema import INPUT_FIELDS, RECIPE_ADAPTER

BASE_KEY = "_base"


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """Read, merge and validate a recipe; raise EdgekdError with one line on any problem.

    >>> recipe = load_recipe("recipes/quickstart.yaml", ["distill.train.epochs=1"])
    """
    path = Path(path)
    raw = _load_with_bases(path, chain=())
    raw.setdefault("name", path.stem)
    for key, value in parse_overrides(overrides):
        _set_dotted(raw, key, value)
    resolve_inputs(raw, INPUT_FIELDS, Path.cwd())  # what --set gave, typed in a shell: relative to the working folder
    try:
        return RECIPE_ADAPTER.validate_python(raw)
    except ValidationError as err:
        raise EdgekdError(f"{path}: {format_validation_error(err, raw)}") from None


def load_raw(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise EdgekdError(f"{path}: recipe file not found")
    text = read_text(path, "recipe")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise EdgekdError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EdgekdError(f"{path}: a recipe must be a mapping of keys, got {type(data).__name__}")
    return data


def _load_with_bases(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(p.name for p in (*chain, resolved))
        raise EdgekdError(f"{path}: _base inheritance cycle: {cycle}")
    data = load_raw(path)
    resolve_inputs(data, INPUT_FIELDS, path.parent)
    bases = data.pop(BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise EdgekdError(f"{path}: _base must be a file name or a list of file names")
    merged: dict[str, Any] = {}
    for base in bases:
        base_path = path.parent / base
        if not base_path.is_file():
            raise EdgekdError(f"{path}: _base '{base}' not found (looked for {base_path})")
        merged = deep_merge(merged, _load_with_bases(base_path, (*chain, resolved)))
    return deep_merge(merged, data)


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in `top` replaces what `base` had."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> list[tuple[str, Any]]:
    """`a.b=c` strings to (dotted key, YAML-parsed value) pairs."""
    parsed = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise EdgekdError(f"--set '{item}': expected KEY.PATH=VALUE, e.g. distill.train.epochs=3")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            raise EdgekdError(f"--set '{item}': the value is not valid YAML") from None
        parsed.append((key.strip(), value))
    return parsed


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise EdgekdError(f"--set '{dotted}': '{where}' is a value, not a section")
        node = child
    node[parts[-1]] = value
