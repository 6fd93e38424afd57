"""`import edgekd` stays light: no onnx, openvino, ultralytics (or torch) until a verb runs."""

import subprocess
import sys

HEAVY = ("onnx", "onnxruntime", "openvino", "ultralytics", "tensorrt", "torch")


def test_import_edgekd_is_light() -> None:
    code = "import sys, edgekd; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in HEAVY:
        assert f"'{name}'" not in loaded, name


def test_loading_a_recipe_does_not_import_exporters() -> None:
    code = (
        "import sys; from edgekd.recipe import load_recipe; load_recipe('recipes/quickstart.yaml');"
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("onnx", "onnxruntime", "openvino", "ultralytics"):
        assert f"'{name}'" not in loaded, name


def test_every_verb_stays_callable_after_the_subpackages_are_imported() -> None:
    """Importing a subpackage binds it to the package attribute of its name, which would hide a verb of that name."""
    code = (
        "import edgekd, edgekd.export.backends.onnx, edgekd.report.schema, edgekd.profile.local, edgekd.recipe;"
        "print([verb for verb in edgekd._VERBS if not callable(getattr(edgekd, verb))])"
    )
    hidden = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert hidden == "[]"


def test_no_verb_shares_a_name_with_a_module() -> None:
    import importlib.util

    import edgekd

    assert [verb for verb in edgekd._VERBS if importlib.util.find_spec(f"edgekd.{verb}") is not None] == []
