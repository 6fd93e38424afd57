"""Turn a pydantic ValidationError into one line: field path, bad value, closest valid name."""

from __future__ import annotations

import re
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from edgekd.registry import closest

_VALUE_ERROR_PREFIX = "Value error, "
_INT_PARSING = ("int_parsing", "int_parsing_size", "int_from_float")


def format_validation_error(err: ValidationError, raw: dict[str, Any]) -> str:
    """The first error of `err`, phrased for a person editing the YAML file."""
    first = min(err.errors(include_url=False), key=_priority)
    loc = _strip_union_tag(tuple(first["loc"]), raw)
    path = _dotted(loc) or "(top level)"
    return f"{path}: {_describe(first, loc, raw)}"


def _priority(error: dict[str, Any]) -> int:
    # A misspelt key also shows up as the real key "missing"; the misspelling is the useful report.
    return {"extra_forbidden": 0, "missing": 2}.get(error["type"], 1)


def _strip_union_tag(loc: tuple[Any, ...], raw: dict[str, Any]) -> tuple[Any, ...]:
    # A discriminated union puts the tag ('gaze') first in the location; users never wrote it.
    if loc and loc[0] == raw.get("task") and loc[0] not in raw:
        return loc[1:]
    return loc


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(error: dict[str, Any], loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        return _unknown_field(loc, raw)
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        return _unknown_choice("task", ctx.get("tag"), _quoted(ctx.get("expected_tags", "")))
    if kind == "union_tag_not_found":
        return f"missing 'task' (one of {ctx.get('expected_tags')})"
    if kind == "literal_error":
        return _unknown_choice("value", value, _quoted(ctx.get("expected", "")))
    if kind in _INT_PARSING and _beyond(value, limit := _upper_bound(loc, raw)):
        return f"input should be less than or equal to {limit} (got {value!r})"
    message = error["msg"].removeprefix(_VALUE_ERROR_PREFIX)
    if kind == "value_error" and "unknown" in message:
        return message
    return f"{message[:1].lower()}{message[1:]} (got {value!r})"


def _unknown_field(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    fields = _fields_at(raw, loc[:-1])
    hint = closest(str(loc[-1]), fields) if fields else None
    suffix = f" (did you mean '{hint}'?)" if hint else (f" (valid: {', '.join(fields)})" if fields else "")
    return f"unknown field '{loc[-1]}'{suffix}"


def _unknown_choice(what: str, value: Any, choices: list[str]) -> str:
    hint = closest(str(value), choices)
    suggestion = f"did you mean '{hint}'?" if hint else f"valid: {', '.join(choices)}"
    return f"unknown {what} {value!r} ({suggestion})"


def _quoted(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", str(text))


def _fields_at(raw: dict[str, Any], loc: tuple[Any, ...]) -> list[str]:
    model = _model_at(raw, loc)
    return list(model.model_fields) if model else []


def _upper_bound(loc: tuple[Any, ...], raw: dict[str, Any]) -> Any:
    """The field's `le` limit, if it has one."""
    model = _model_at(raw, loc[:-1])
    field = model.model_fields.get(loc[-1]) if model and loc else None
    limits = [item.le for item in (field.metadata if field else ()) if getattr(item, "le", None) is not None]
    return limits[0] if limits else None


def _beyond(value: Any, limit: Any) -> bool:
    # `epochs: 1e23` reaches an int field as the string '1e23' (YAML 1.1 floats need a dot) or as a float too big
    # to convert; either way the bound is the useful report, not the failed integer parse.
    try:
        return limit is not None and float(value) > limit
    except (TypeError, ValueError):
        return False


def _model_at(raw: dict[str, Any], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    from edgekd.recipe.schema import RECIPE_MODELS

    model: Any = RECIPE_MODELS.get(raw.get("task"))
    for part in loc:
        model = _child_type(model, part)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _child_type(annotation: Any, part: Any) -> Any:
    if isinstance(part, int):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _first_model(args[0]) if args else None
    model = _first_model(annotation)
    if model is None or part not in model.model_fields:
        return None
    return model.model_fields[part].annotation


def _first_model(annotation: Any) -> Any:
    """The pydantic model inside Optional[...] / list[...] / a bare model, else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation
