"""Adding a backend is its own files: one module in edgekd/export/backends/ and, for the device runner, one in
edgekd/device_runner/runtimes/. A copy of edgekd gets a backend for torch.export programs that way, and nothing
else in the copy changes: the registry lists it, a recipe accepts it, the export orchestration writes and checks
its file, and the device runner times that file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

BACKEND = '''
"""A torch.export program backend (.pt2), here to show what a new backend has to write."""

from __future__ import annotations

from pathlib import Path

from edgekd.artifacts import sha256_file
from edgekd.export.base import Exporter, ExportResult
from edgekd.profile.sessions import Session, run_in_fixed_batches


class TorchScriptSession(Session):
    runtime = "torchscript"

    def __init__(self, path: Path) -> None:
        import torch

        super().__init__(path)
        self.module = torch.export.load(str(path)).module()

    @property
    def input_shape(self):
        return [None, None, None, None]

    def run(self, array):
        import torch

        def one_batch(chunk):  # the program was exported at batch 1
            with torch.no_grad():
                return [self.module(torch.from_numpy(chunk)).numpy()]

        return run_in_fixed_batches(array, 1, one_batch)


class TorchScriptExporter(Exporter):
    name = "torchscript"
    listing_order = 70
    runtime = "torchscript"
    precisions = ("fp32",)
    default_precisions = ()
    file_suffix = ".pt2"
    reads_suffixes = (".pt2",)
    requires = ("torch",)
    remote_runner = "torchscript"
    host_cpu = True

    def open_session(self, path, *, threads, precision, static_shape=None, arithmetic="timed"):
        return TorchScriptSession(Path(path))

    def _export(self, model, example_input, out_path, **options):
        import torch

        out_path.parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(torch.export.export(model.eval(), (example_input,)), str(out_path))
        return ExportResult(self.name, "fp32", out_path, sha256_file(out_path), out_path.stat().st_size, None)
'''

DEVICE_RUNTIME = '''
"""torch.export programs on the device."""

from __future__ import annotations

from ..common import import_runtime, random_input, resolve_shape

PACKAGES = ("torch",)


class Model:
    name = "torchscript"

    def __init__(self, path, threads, shape, precision):
        torch = import_runtime("torch")
        torch.set_num_threads(threads)
        self.module = torch.export.load(path).module()
        self.shape = resolve_shape([None, None, None, None], shape)
        self.feed = torch.from_numpy(random_input(self.shape))
        self.precision = precision
        self.settings = {"threads": threads, "version": torch.__version__}

    def run(self):
        return [self.module(self.feed).detach().numpy()]
'''

CHECK = '''
import json, sys
from pathlib import Path

import torch

import edgekd
from edgekd.export import backend_for_file, backend_names, runtime_names
from edgekd.export.orchestrate import ExportSettings, ParitySpec, Source, export_one
from edgekd.recipe.common import ParityBudget
from edgekd.recipe.loader import load_recipe

out = Path(sys.argv[1])
edgekd_root = str(Path(edgekd.__file__).resolve())
recipe = load_recipe(Path(sys.argv[2]), ["export.backends={onnx: [fp32], torchscript: [fp32]}"])
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                            torch.nn.Flatten()).eval()
inputs = torch.randn(4, 3, 16, 16).numpy()
spec = ParitySpec(inputs=inputs, budgets={"fp32": ParityBudget(max_abs_diff=1e-5)})
row = export_one(Source("student", "float", model, (1, 3, 16, 16)), "torchscript", "fp32", out, spec,
                 ExportSettings())
assert edgekd_root.startswith(sys.argv[3]), edgekd_root
print(json.dumps({"names": backend_names(), "runtimes": runtime_names(),
                  "recipe": recipe.export.backends["torchscript"], "row": row.to_dict(),
                  "by_suffix": backend_for_file("m.pt2").name}))
'''


@pytest.fixture(scope="module")
def copy_with_a_new_backend(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("edgekd-copy")
    shutil.copytree(REPO / "edgekd", root / "edgekd", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "edgekd" / "export" / "backends" / "torchscript.py").write_text(textwrap.dedent(BACKEND))
    (root / "edgekd" / "device_runner" / "runtimes" / "torchscript.py").write_text(textwrap.dedent(DEVICE_RUNTIME))
    return root


def _run(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Python with the copy first on its path (the working directory too: from the checkout, `-c` would import the
    checkout's edgekd)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd or root,
                          timeout=300)


def test_a_backend_file_is_registered_accepted_exported_and_checked(copy_with_a_new_backend, tmp_path) -> None:
    done = _run(copy_with_a_new_backend, "-c", CHECK, str(tmp_path / "out"), str(REPO / "recipes/quickstart.yaml"),
                str(copy_with_a_new_backend.resolve()))
    assert done.returncode == 0, done.stderr[-2000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["names"][-1] == "torchscript" and facts["names"][0] == "onnx"
    assert "torchscript" in facts["runtimes"] and facts["by_suffix"] == "torchscript"
    assert facts["recipe"] == ["fp32"]
    row = facts["row"]
    assert row["status"] == "passed", row["reason"]
    assert row["parity"]["max_abs_diff"] <= 1e-5 and Path(row["path"]).name == "student.fp32.pt2"


def test_the_device_runner_times_the_new_runtime(copy_with_a_new_backend, tmp_path) -> None:
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    torch.export.save(torch.export.export(model, (torch.zeros(1, 3, 16, 16),)), str(tmp_path / "m.pt2"))
    from edgekd.artifacts import sha256_file

    runner = copy_with_a_new_backend / "edgekd" / "device_runner"
    done = _run(copy_with_a_new_backend, str(runner), "profile", "m.pt2", "--runtime", "torchscript",
                "--expect", f"m.pt2={sha256_file(tmp_path / 'm.pt2')}", "--input-shape", "1,3,16,16",
                "--threads", "1", "--warmup", "1", "--runs", "3", cwd=tmp_path)
    payload = json.loads(done.stdout.strip().splitlines()[-1].split(" ", 1)[1])
    assert payload["ok"], payload
    assert len(payload["samples_ms"]) == 3 and payload["input_shape"] == [1, 3, 16, 16]
    assert "torch" in payload["environment"]["packages"]


def test_a_backend_module_without_one_exporter_is_refused(tmp_path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(REPO / "edgekd", root / "edgekd", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "edgekd" / "export" / "backends" / "empty.py").write_text('"""No exporter here."""\n')
    done = _run(root, "-c", "import edgekd.export")
    assert done.returncode != 0
    assert "edgekd.export.backends.empty must define exactly one Exporter subclass, found 0" in done.stderr
