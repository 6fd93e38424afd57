"""Per-layer float fallback: module-path patterns that stay in float, checked against the real model.

A pattern is a shell-style glob over dotted module paths (`head.*`, `stages.3.blocks.*.mlp.fc2`, `stem.0`).
A pattern that matches no module is an error: a typo must never quietly quantize the layer the user
meant to protect. Matched modules become an NNCF IgnoredScope over the operations they run, found by tracing
(edgekd.quant.node_owners): NNCF's node names do not always contain the module path.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Iterable, Sequence

from edgekd.errors import EdgekdError
from edgekd.registry import closest


def match_fallback(model: Any, patterns: Sequence[str], field: str = "quant.fallback") -> dict[str, list[str]]:
    """{pattern: [module paths]} for every pattern; EdgekdError naming the first pattern that matches nothing."""
    paths = [name for name, _ in model.named_modules() if name]
    matches: dict[str, list[str]] = {}
    for index, pattern in enumerate(patterns):
        hits = [path for path in paths if _matches(path, pattern)]
        if not hits:
            near = closest(pattern, paths)
            hint = f"did you mean '{near}'?" if near else f"top-level modules: {', '.join(_top_level(paths))}"
            raise EdgekdError(f"{field}[{index}]: pattern '{pattern}' matches no layer ({hint})")
        matches[pattern] = hits
    return matches


def _top_level(paths: list[str]) -> list[str]:
    return sorted({path.split(".")[0] for path in paths})


def _matches(path: str, pattern: str) -> bool:
    # A pattern naming a container (`head`) covers everything inside it (`head.fc`).
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, pattern + ".*")


def outermost(paths: Iterable[str]) -> list[str]:
    """Drop paths inside another listed path: `head` already covers `head.fc`."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(path.startswith(parent + ".") for parent in kept):
            kept.append(path)
    return kept


def module_of_node(node_name: str, module_paths: set[str]) -> str | None:
    """The deepest module path that owns an NNCF node name (`a/b/conv2d/0` -> `a.b`), if any."""
    parts = node_name.split("/")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in module_paths:
            return candidate
    return None
