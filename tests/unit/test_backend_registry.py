"""The backend registry is the one place a runtime is declared: the recipe schema, the CLI, doctor and profiling read it,
and no other module keeps its own list of runtime names."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from edgekd.errors import EdgekdError
from edgekd.export import (
    BACKENDS,
    PRECISIONS,
    PREDICTION_ONLY_RUNTIMES,
    all_runtime_names,
    backend_for_runtime,
    backend_names,
    runner_runtime_for,
    runtime_for_file,
    runtime_names,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[2]
# Modules that may list several runtime names together, and why: the registry itself; the calibration-data
# parser maps words of published benchmark tables to runtimes; the roofline groups runtimes by how they fuse layers,
# including those it can only predict.
ALLOWED = {"edgekd/export/__init__.py", "edgekd/profile/calibration_data.py", "edgekd/profile/roofline.py"}


def test_every_backend_declares_what_the_rest_of_edgekd_reads() -> None:
    names = backend_names()
    assert names[0] == "onnx" and len(set(names)) == len(set(runtime_names())) == len(names)
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name in names:
        backend = BACKENDS.get(name)
        assert backend.name == name and backend.runtime
        assert set(backend.default_precisions) <= set(backend.precisions) <= set(PRECISIONS)
        assert not set(backend.refused) & set(backend.precisions)
        assert backend.file_suffix.startswith(".") and backend.file_suffix in backend.reads_suffixes or \
            not backend.host_cpu
        assert backend.extra_name is None or backend.extra_name in extras, f"{name}: extra not in pyproject"
        assert backend.int8_placement in ("onnxruntime", "explicit")
        assert backend.deploy_default in ("auto", *PRECISIONS)
        assert backend_for_runtime(backend.runtime) is backend


def test_runner_knows_every_runner_name() -> None:
    from edgekd.device_runner import runtimes

    named = {BACKENDS.get(n).remote_runner for n in backend_names()} - {None}
    assert named and named <= set(runtimes.names())


def test_suffixes_map_to_their_runtime() -> None:
    for name in backend_names():
        backend = BACKENDS.get(name)
        assert runtime_for_file(f"m{backend.file_suffix}") == backend.runtime
        assert runner_runtime_for(f"m{backend.file_suffix}") == backend.remote_runner
    with pytest.raises(EdgekdError, match="no runtime edgekd knows runs '.pt' files"):
        runtime_for_file("m.pt")
    assert all_runtime_names() == [*runtime_names(), *PREDICTION_ONLY_RUNTIMES]


def test_recipe_schema_and_device_specs_take_the_names_from_the_registry() -> None:
    from edgekd.devices.spec import RUNTIMES
    from edgekd.recipe.common import ExportConfig, ProfileConfig

    assert RUNTIMES == tuple(all_runtime_names())
    config = ExportConfig()
    assert list(config.backends) == backend_names()
    assert set(config.deploy) == set(runtime_names())
    assert ProfileConfig().runtimes == [BACKENDS.get(n).runtime for n in backend_names()
                                        if BACKENDS.get(n).host_cpu and BACKENDS.get(n).default_precisions]
    for opt_in in ("ncnn", "executorch", "litert"):  # opt-in backends (docs/decisions.md)
        assert opt_in not in ProfileConfig().runtimes and config.backends[opt_in] == []
    with pytest.raises(ValueError, match="tensorrt is timed on the device"):
        ProfileConfig(runtimes=["tensorrt"])


def test_unknown_backend_in_a_recipe_fails_with_a_suggestion(tmp_path) -> None:
    from edgekd.recipe.loader import load_recipe

    with pytest.raises(EdgekdError, match="openvino"):
        load_recipe(REPO / "recipes" / "quickstart.yaml", ["export.backends={openvin: [fp32]}"])


def _runtime_lists(path: Path, names: set[str]) -> list[int]:
    """Lines of tuple/list/set literals naming two or more runtimes."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            found = {e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names}
            if len(found) >= 2:
                lines.append(node.lineno)
    return lines


def test_no_module_keeps_its_own_list_of_runtimes() -> None:
    names = set(all_runtime_names())
    offenders = {}
    for path in sorted((REPO / "edgekd").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel in ALLOWED:
            continue
        lines = _runtime_lists(path, names)
        if lines:
            offenders[rel] = lines
    assert not offenders, f"runtime names listed outside the registry (edgekd.export): {offenders}"


def test_a_precision_a_backend_refuses_fails_at_recipe_load_with_its_reason() -> None:
    from edgekd.recipe.loader import load_recipe

    with pytest.raises(EdgekdError, match="onnx cannot produce fp16: ONNX Runtime's CPU provider has few fp16"):
        load_recipe(REPO / "recipes" / "quickstart.yaml", ["export.backends={onnx: [fp16]}"])
