"""Gate budgets: the global ones from the command line, overridden per backend, precision or device by a file.

A budgets file (YAML or JSON) is a list of rules; each rule names what it matches and the budgets it sets:

```yaml
rules:
  - match: {backend: onnx, precision: int8}   # every int8 ONNX file may lose a little more accuracy
    max_metric_drop: 0.3
  - match: {device: rpi5}                      # latency measured on the Pi is noisier
    max_latency_ratio: 1.3
  - match: {role: student}                     # the student must stay small
    max_size_mb: 2
    max_size_ratio: 1.05
```

Match keys: role, variant, backend, runtime, precision, device (`host` for this machine). A row matches a rule
when it has every named key with that value; `match` left out matches every row. Rules apply in file order,
so a later rule overrides an earlier one for the budgets it sets. Size budgets gate file sizes only when set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgekd.errors import EdgekdError
from edgekd.paths import read_text
from edgekd.registry import closest

MB = 1_000_000  # max_size_mb counts decimal megabytes, like the sizes people quote for model files


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Match(_Strict):
    role: Optional[str] = None
    variant: Optional[str] = None
    backend: Optional[str] = None
    runtime: Optional[str] = None
    precision: Optional[str] = None
    device: Optional[str] = None


class Rule(_Strict):
    match: Match = Field(default_factory=Match)
    max_metric_drop: Optional[float] = Field(default=None, ge=0)
    max_latency_ratio: Optional[float] = Field(default=None, gt=0)
    max_size_ratio: Optional[float] = Field(default=None, gt=0)
    max_size_mb: Optional[float] = Field(default=None, gt=0)


class BudgetsFile(_Strict):
    rules: list[Rule] = Field(default_factory=list)


@dataclass(frozen=True)
class Subject:
    """What a comparison row is about; rules match on these fields (None never matches)."""

    role: str
    variant: str | None = None
    backend: str | None = None
    runtime: str | None = None
    precision: str | None = None
    device: str | None = None

    @property
    def label(self) -> str:
        """`student` for a model, `student (qat/onnx/int8)` for one of its deployed files."""
        if self.backend is None:
            return self.role
        return f"{self.role} ({'/'.join(p for p in (self.variant, self.backend, self.precision) if p)})"

    def as_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class Budget:
    max_metric_drop: float
    max_latency_ratio: float
    max_size_ratio: float | None = None
    max_size_mb: float | None = None


def resolve(default: Budget, rules: tuple[Rule, ...], subject: Subject) -> Budget:
    """The budget one row is held to: the global one, overridden by each matching rule in file order."""
    budget = default
    for rule in rules:
        if _matches(rule.match, subject):
            budget = replace(budget, **rule.model_dump(exclude={"match"}, exclude_none=True))
    return budget


def _matches(match: Match, subject: Subject) -> bool:
    wanted = match.model_dump(exclude_none=True)
    return all(getattr(subject, key) == value for key, value in wanted.items())


def check_budget(budget: Budget) -> None:
    if not budget.max_metric_drop >= 0:
        raise EdgekdError(f"max_metric_drop must be >= 0, got {budget.max_metric_drop}")
    if not budget.max_latency_ratio > 0:
        raise EdgekdError(f"max_latency_ratio must be > 0, got {budget.max_latency_ratio}")
    for name in ("max_size_ratio", "max_size_mb"):
        value = getattr(budget, name)
        if value is not None and not value > 0:
            raise EdgekdError(f"{name} must be > 0, got {value}")


def load_budgets(path: str | Path) -> tuple[Rule, ...]:
    """The rules of a budgets file; any problem is one EdgekdError line naming the file and the field.

    >>> rules = load_budgets("budgets.yaml")
    """
    path = Path(path)
    raw = _read(path)
    try:
        parsed = BudgetsFile.model_validate(raw)
    except ValidationError as exc:
        raise EdgekdError(f"{path}: {_describe(exc.errors(include_url=False)[0])}") from exc
    return tuple(parsed.rules)


def _read(path: Path) -> Any:
    import yaml  # only when a budgets file is given: `import edgekd` stays light

    text = read_text(path, "budgets file")
    is_json = path.suffix == ".json"
    try:
        data = json.loads(text) if is_json else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        # YAML errors span several lines; the CLI promises one.
        raise EdgekdError(f"{path}: not valid {'JSON' if is_json else 'YAML'}: {' '.join(str(exc).split())}") from exc
    return {} if data is None else data


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    if error["type"] != "extra_forbidden":
        return f"{_dotted(loc)}: {error['msg']} (got {error.get('input')!r})"
    valid = list(_model_at(loc[:-1]).model_fields)
    hint = closest(str(loc[-1]), valid)
    suggestion = f"did you mean '{hint}'?" if hint else f"valid: {', '.join(valid)}"
    return f"{_dotted(loc[:-1])}: unknown key '{loc[-1]}' ({suggestion})"


def _dotted(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top level)"


def _model_at(loc: tuple) -> type[BaseModel]:
    # The file is three levels deep: top level → rules[i] → match.
    if not loc:
        return BudgetsFile
    return Match if loc[-1] == "match" else Rule
