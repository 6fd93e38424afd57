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
