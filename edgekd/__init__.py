"""edgekd: distill, quantize, export and profile vision models for the edge — with the numbers to prove it.

The public verbs live in `edgekd.api` and are re-exported here lazily, so `import edgekd` stays light
(no torch, onnx, openvino or ultralytics until a verb runs).

>>> import edgekd
>>> recipe = edgekd.load_recipe("recipes/quickstart.yaml")
>>> result = edgekd.run(recipe)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
# A verb may not share a name with a subpackage: importing `edgekd.export` binds the package to that attribute,
# which would hide a verb of the same name (hence `export_recipe`).
_VERBS = ("load_recipe", "run", "qat", "export_recipe", "export_model", "check", "doctor")
__all__ = ["__version__", *_VERBS]


def __getattr__(name: str) -> Any:
    if name in _VERBS:
        from edgekd import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgekd' has no attribute {name!r}")
