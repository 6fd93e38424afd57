"""Find and load device specs: `devices/<id>.yaml`, or any YAML path a user passes.

>>> load_device("rpi5").cpu.cores.value
4
>>> list_devices()
['jetson-agx-orin', 'jetson-nano', ..., 'rpi5']
"""

from __future__ import annotations

import os
import sys
import typing
from pathlib import Path
from typing import Any

from edgekd.devices.spec import DeviceSpec
from edgekd.errors import EdgekdError
from edgekd.paths import read_text
from edgekd.registry import closest, unknown_name_message

ENV_DIR = "EDGEKD_DEVICES_DIR"
_REPO_DEVICES = Path(__file__).resolve().parents[2] / "devices"  # a checkout or an editable install
_INSTALLED_DEVICES = ("share", "edgekd", "devices")  # under sys.prefix: a wheel install (pyproject data-files)


def devices_dir(folder: str | Path | None = None) -> Path:
    """Where device YAMLs live: `folder`, $EDGEKD_DEVICES_DIR, ./devices, the repository's devices/, then the
    copy a wheel installs under <prefix>/share/edgekd/devices."""
    installed = Path(sys.prefix).joinpath(*_INSTALLED_DEVICES)
    for candidate in (folder, os.environ.get(ENV_DIR), Path.cwd() / "devices", _REPO_DEVICES, installed):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return _REPO_DEVICES


def list_devices(folder: str | Path | None = None) -> list[str]:
    """Device ids in the folder; files starting with `_` (the template) are skipped."""
    root = devices_dir(folder)
    return sorted(p.stem for p in root.glob("*.yaml") if not p.name.startswith("_"))


def load_device(name_or_path: str | Path, folder: str | Path | None = None) -> DeviceSpec:
    """A validated DeviceSpec from an id (`rpi5`) or a path to a YAML file."""
    path = _resolve(name_or_path, folder)
    raw = _read_yaml(path)
    try:
        spec = DeviceSpec.model_validate(raw)
    except Exception as error:  # pydantic's ValidationError; kept generic so this module stays import-light
        raise EdgekdError(f"{path}: {_describe(error, raw)}") from None
    if spec.id != path.stem and not path.name.startswith("_"):
        raise EdgekdError(f"{path}: id: '{spec.id}' must match the file name '{path.stem}'")
    return spec


def _resolve(name_or_path: str | Path, folder: str | Path | None) -> Path:
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(text)
        if not path.is_file():
            raise EdgekdError(f"device file not found: {path}")
        return path
    path = devices_dir(folder) / f"{text}.yaml"
    if text.startswith("_") or not path.is_file():
        raise EdgekdError(unknown_name_message("device", text, list_devices(folder)))
    return path


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    text = read_text(path, "device file")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise EdgekdError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    if not isinstance(raw, dict):
        raise EdgekdError(f"{path}: expected a mapping of device fields at the top level")
    return raw


def _describe(error: Any, raw: dict[str, Any]) -> str:
    """The first pydantic error as 'field.path: message', with a did-you-mean for a misspelt key."""
    first = min(error.errors(include_url=False), key=lambda e: {"extra_forbidden": 0, "missing": 2}.get(e["type"], 1))
    loc = tuple(first["loc"])
    path = ".".join(str(part) for part in loc) or "(top level)"
    if first["type"] == "extra_forbidden":
        hint = closest(str(loc[-1]), _fields_at(loc[:-1]))
        return f"{path}: unknown field" + (f" (did you mean '{hint}'?)" if hint else "")
    if first["type"] == "missing":
        return f"{path}: required field is missing"
    message = first["msg"].removeprefix("Value error, ")
    return f"{path}: {message[:1].lower()}{message[1:]} (got {first.get('input')!r})"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the spec model reached by walking `loc` (empty when it leads into a dict or list)."""
    from pydantic import BaseModel

    model: Any = DeviceSpec
    for part in loc:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return []
        annotation = fields[part].annotation
        model = next((a for a in (annotation, *typing.get_args(annotation)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return list(getattr(model, "model_fields", {}))
