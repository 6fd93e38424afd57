"""What edgekd refuses (docs/refusals.md): bad input to every command is one line on stderr, exit 2, no traceback,
and nothing written.

Each case runs the real CLI in a fresh working folder; the inputs it names live in a shared, read-only-by-contract
folder. After the command, neither folder may hold a new or changed file: a refusal happens before any work.
Recipe-file refusals (unknown keys, wrong types, did-you-mean) are in test_bad_input.py.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekd.cli.app import app
from tests.conftest import REPO

TINY = (REPO / "tests" / "recipes" / "tiny_gaze.yaml").as_posix()
runner = CliRunner()


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # '{i}' is the inputs folder, '{w}' the working folder
    fragments: tuple[str, ...]  # the one error line must contain each


def case(id: str, *argv: str, says: tuple[str, ...] | str) -> Case:
    return Case(id, argv, (says,) if isinstance(says, str) else says)


CASES = [
    # --- run / qat / recipe: the recipe file itself --------------------------------------------------------------
    case("run-recipe-binary", "run", "{i}/binary.yaml", says=("binary.yaml", "not UTF-8")),
    case("run-recipe-utf16", "run", "{i}/utf16.yaml", says=("utf16.yaml", "not UTF-8")),
    case("run-recipe-is-folder", "run", "{i}", says=("recipe",)),
    case("run-recipe-empty-file", "run", "{i}/empty.yaml", says=("empty.yaml",)),
    case("run-runs-dir-is-file", "run", TINY, "--runs-dir", "{i}/plain.txt", says=("--runs-dir", "plain.txt")),
    case("run-runs-dir-under-file", "run", TINY, "--runs-dir", "{i}/plain.txt/runs", says=("--runs-dir", "plain.txt")),
    case("qat-runs-dir-is-file", "qat", TINY, "--runs-dir", "{i}/plain.txt", says=("--runs-dir", "plain.txt")),
    case("export-recipe-runs-dir-is-file", "export", TINY, "--runs-dir", "{i}/plain.txt",
         says=("--runs-dir", "plain.txt")),
    case("run-absurd-epochs", "run", TINY, "--set", "distill.train.epochs=1e23", says=("distill.train.epochs",)),
    case("run-negative-lr", "run", TINY, "--set", "distill.train.lr=-1", says=("distill.train.lr",)),
    case("run-missing-teacher-checkpoint", "run", TINY, "--set", "teacher.checkpoint={i}/absent.pt",
         says=("teacher.checkpoint", "absent.pt")),
    case("run-empty-data-folder", "run", TINY, "--set", "data.source=folder", "--set", "data.root={i}/empty_data",
         says=("empty_data",)),
    case("qat-recipe-missing", "qat", "{i}/absent.yaml", "--runs-dir", "{w}/runs", says=("absent.yaml", "not found")),
    case("qat-recipe-binary", "qat", "{i}/binary.yaml", "--runs-dir", "{w}/runs", says=("binary.yaml", "not UTF-8")),
    case("validate-binary", "recipe", "validate", "{i}/binary.yaml", says=("binary.yaml", "not UTF-8")),
    case("validate-missing-teacher-checkpoint", "recipe", "validate", TINY, "--set",
         "teacher.checkpoint={i}/absent.pt", says=("teacher.checkpoint", "absent.pt")),
    case("show-bad-set", "recipe", "show", TINY, "--set", "distill.train.epoks=2", says=("did you mean 'epochs'",)),
    # --- export --------------------------------------------------------------------------------------------------
    case("export-unknown-timm", "export", "timm:resnet1b", "-o", "{w}/out", says=("resnet1b", "did you mean")),
    case("export-empty-timm", "export", "timm:", "-o", "{w}/out", says=("timm",)),
    case("export-not-a-recipe", "export", "{i}/plain.txt", "-o", "{w}/out", says=("timm:NAME",)),
    case("export-unknown-backend", "export", "timm:resnet18", "-b", "onnxx", "-o", "{w}/out",
         says=("onnxx", "did you mean 'onnx'")),
    case("export-unknown-precision", "export", "timm:resnet18", "-p", "fp8", "-o", "{w}/out", says=("fp8",)),
    case("export-shape-not-numbers", "export", "timm:resnet18", "--input-shape", "1,3,a,224", "-o", "{w}/out",
         says=("--input-shape",)),
    case("export-shape-three-dims", "export", "timm:resnet18", "--input-shape", "1,3,224", "-o", "{w}/out",
         says=("--input-shape",)),
    case("export-shape-zero", "export", "timm:resnet18", "--input-shape", "0,3,224,224", "-o", "{w}/out",
         says=("--input-shape",)),
    case("export-weights-missing", "export", "timm:resnet18", "--weights", "{i}/absent.pt", "-o", "{w}/out",
         says=("absent.pt", "not found")),
    case("export-weights-not-checkpoint", "export", "timm:resnet18", "--weights", "{i}/plain.txt", "-o", "{w}/out",
         says=("plain.txt", "not a readable PyTorch checkpoint")),
    case("export-weights-truncated", "export", "timm:resnet18", "--weights", "{i}/truncated.pt", "-o", "{w}/out",
         says=("truncated.pt", "not a readable PyTorch checkpoint")),
    case("export-weights-pickle-refused", "export", "timm:resnet18", "--weights", "{i}/pickled.pt", "-o", "{w}/out",
         says=("pickled.pt", "weights_only=True")),
    case("export-weights-wrong-keys", "export", "timm:resnet18", "--weights", "{i}/wrong_keys.pt", "-o", "{w}/out",
         says=("wrong_keys.pt", "does not fit")),
    case("export-weights-not-state-dict", "export", "timm:resnet18", "--weights", "{i}/tensor.pt", "-o", "{w}/out",
         says=("tensor.pt", "not a state_dict")),
    case("export-calibration-missing", "export", "timm:resnet18", "-p", "int8", "--calibration", "{i}/absent.npy",
         "-o", "{w}/out", says=("absent.npy", "not found")),
    case("export-calibration-not-npy", "export", "timm:resnet18", "-p", "int8", "--calibration", "{i}/plain.txt",
         "-o", "{w}/out", says=("plain.txt",)),
    case("export-calibration-wrong-shape", "export", "timm:resnet18", "-p", "int8", "--calibration",
         "{i}/calib_small.npy", "-o", "{w}/out", says=("calib_small.npy", "shape")),
    case("export-parity-inputs-missing", "export", "timm:resnet18", "--parity-inputs", "{i}/absent.npy", "-o",
         "{w}/out", says=("--parity-inputs", "absent.npy", "not found")),
    case("export-parity-inputs-wrong-shape", "export", "timm:resnet18", "--parity-inputs", "{i}/calib_small.npy",
         "-o", "{w}/out", says=("--parity-inputs", "shape")),
    case("export-out-is-file", "export", "timm:resnet18", "-b", "onnx", "-o", "{i}/plain.txt", says=("plain.txt",)),
    case("export-bad-opset", "export", "timm:resnet18", "-b", "onnx", "--opset", "3", "-o", "{w}/out",
         says=("opset 3",)),
    case("export-bad-tensorrt-target", "export", "timm:resnet18", "-b", "onnx", "--tensorrt-target", "banana",
         "-o", "{w}/out", says=("--tensorrt-target", "banana")),
    # --- check ---------------------------------------------------------------------------------------------------
    case("check-report-missing", "check", "{i}/absent.json", "-b", "{i}/report.json", says=("absent.json",)),
    case("check-report-not-json", "check", "{i}/plain.txt", "-b", "{i}/report.json", says=("plain.txt",)),
    case("check-report-binary", "check", "{i}/binary.yaml", "-b", "{i}/report.json",
         says=("binary.yaml", "not UTF-8")),
    case("check-report-utf16", "check", "{i}/utf16_report.json", "-b", "{i}/report.json",
         says=("utf16_report.json", "not UTF-8")),
    case("check-report-wrong-schema", "check", "{i}/not_report.json", "-b", "{i}/report.json",
         says=("not_report.json",)),
    case("check-report-is-folder", "check", "{i}", "-b", "{i}/report.json", says=("report",)),
    case("check-baseline-missing", "check", "{i}/report.json", "-b", "{i}/absent.json", says=("absent.json",)),
    case("check-baseline-other-recipe", "check", "{i}/report.json", "-b", "{i}/other_recipe.json",
         says=("recipe 'another'", "--allow-other-recipe")),
    case("check-budgets-missing", "check", "{i}/report.json", "-b", "{i}/report.json", "--budgets",
         "{i}/absent.yaml", says=("absent.yaml",)),
    case("check-budgets-unknown-key", "check", "{i}/report.json", "-b", "{i}/report.json", "--budgets",
         "{i}/bad_budgets.yaml", says=("bad_budgets.yaml",)),
    case("check-budgets-binary", "check", "{i}/report.json", "-b", "{i}/report.json", "--budgets",
         "{i}/binary.yaml", says=("binary.yaml", "not UTF-8")),
    case("check-markdown-is-folder", "check", "{i}/report.json", "-b", "{i}/report.json", "--markdown", "{i}",
         says=("--markdown",)),
    case("check-json-out-under-file", "check", "{i}/report.json", "-b", "{i}/report.json", "--json-out",
         "{i}/plain.txt/verdict.json", says=("--json-out",)),
    case("check-junit-is-folder", "check", "{i}/report.json", "-b", "{i}/report.json", "--junit", "{i}",
         says=("--junit",)),
    case("check-negative-latency-ratio", "check", "{i}/report.json", "-b", "{i}/report.json",
         "--max-latency-ratio", "-1", says=("max_latency_ratio",)),
    case("check-negative-metric-drop", "check", "{i}/report.json", "-b", "{i}/report.json",
         "--max-metric-drop", "-0.5", says=("max_metric_drop",)),
    # --- predict -------------------------------------------------------------------------------------------------
    case("predict-unknown-device", "predict", "{i}/good.onnx", "-d", "rpi6", says=("rpi6", "did you mean")),
    case("predict-unknown-runtime", "predict", "{i}/good.onnx", "-d", "rpi5", "-r", "onnxrt", says=("onnxrt",)),
    case("predict-unknown-precision", "predict", "{i}/good.onnx", "-d", "rpi5", "-p", "fp8", says=("fp8",)),
    case("predict-zero-threads", "predict", "{i}/good.onnx", "-d", "rpi5", "--threads", "0", says=("threads",)),
    case("predict-model-missing", "predict", "{i}/absent.onnx", "-d", "rpi5", says=("absent.onnx",)),
    case("predict-model-not-onnx", "predict", "{i}/fake.onnx", "-d", "rpi5", says=("fake.onnx",)),
    case("predict-device-yaml-binary", "predict", "{i}/good.onnx", "-d", "{i}/binary.yaml",
         says=("binary.yaml", "not UTF-8")),
    case("predict-calibrate-missing", "predict", "-d", "rpi5", "--calibrate", "{i}/absent.csv",
         "--calibration-file", "{i}/calibration.json", says=("absent.csv",)),
    case("predict-calibrate-binary", "predict", "-d", "rpi5", "--calibrate", "{i}/binary.yaml",
         "--calibration-file", "{i}/calibration.json", says=("binary.yaml", "not UTF-8")),
    case("predict-refit-into-a-folder", "predict", "--refit", "--calibration-file", "{i}",
         says=("--calibration-file", "is a folder")),
    case("predict-calibration-file-not-json", "predict", "{i}/good.onnx", "-d", "rpi5", "--calibration-file",
         "{i}/plain.txt", says=("plain.txt",)),
    # --- profile -------------------------------------------------------------------------------------------------
    case("profile-artifact-missing", "profile", "{i}/absent.onnx", says=("absent.onnx",)),
    case("profile-artifact-not-onnx", "profile", "{i}/fake.onnx", says=("fake.onnx",)),
    case("profile-unknown-suffix", "profile", "{i}/plain.txt", says=("plain.txt",)),
    case("profile-unknown-runtime", "profile", "{i}/good.onnx", "--runtime", "onnxrt", says=("onnxrt",)),
    case("profile-unknown-precision", "profile", "{i}/good.onnx", "--precision", "fp8", says=("--precision", "fp8")),
    case("profile-zero-threads", "profile", "{i}/good.onnx", "--threads", "0", says=("threads",)),
    case("profile-zero-runs", "profile", "{i}/good.onnx", "--runs", "0", says=("runs",)),
    case("profile-negative-warmup", "profile", "{i}/good.onnx", "--warmup", "-1", says=("warmup",)),
    case("profile-bad-shape", "profile", "{i}/good.onnx", "--input-shape", "1,3,a", says=("--input-shape",)),
    case("profile-port-out-of-range", "profile", "{i}/good.onnx", "-d", "rpi5", "--host", "pi@127.0.0.1:99999",
         says=("99999",)),
    case("profile-host-without-device", "profile", "{i}/good.onnx", "--host", "pi@127.0.0.1", says=("--device",)),
    case("profile-device-without-host", "profile", "{i}/good.onnx", "-d", "rpi5", says=("--host",)),
    case("profile-fleet-missing", "profile", "{i}/good.onnx", "--fleet", "{i}/absent.yaml", says=("absent.yaml",)),
    case("profile-fleet-binary", "profile", "{i}/good.onnx", "--fleet", "{i}/binary.yaml",
         says=("binary.yaml", "not UTF-8")),
    case("profile-output-is-folder", "profile", "{i}/good.onnx", "--runs", "1", "--warmup", "0", "-o", "{i}",
         says=("--output",)),
    case("profile-zero-attempts", "profile", "{i}/good.onnx", "-d", "rpi5", "--host", "pi@127.0.0.1",
         "--attempts", "0", says=("--attempts",)),
    # --- deploy: every check before a connection is tried (port 9 on localhost would refuse or time out) ------------
    case("deploy-source-missing", "deploy", "{i}/absent.onnx", "-d", "rpi5", "--host", "pi@127.0.0.1:9",
         says=("absent.onnx",)),
    case("deploy-source-not-a-model", "deploy", "{i}/fake.onnx", "-d", "rpi5", "--host", "pi@127.0.0.1:9",
         says=("fake.onnx",)),
    case("deploy-run-folder-without-export", "deploy", "{i}/empty_data", "-d", "rpi5", "--host",
         "pi@127.0.0.1:9", says=("empty_data",)),
    case("deploy-bad-shape", "deploy", "{i}/good.onnx", "-d", "rpi5", "--host", "pi@127.0.0.1:9", "--input-shape",
         "1,3,a", says=("--input-shape",)),
    case("deploy-wrong-shape-for-model", "deploy", "{i}/good.onnx", "-d", "rpi5", "--host", "pi@127.0.0.1:9",
         "--input-shape", "1,5,8,8", says=("--input-shape",)),
    case("deploy-port-out-of-range", "deploy", "{i}/good.onnx", "-d", "rpi5", "--host", "pi@127.0.0.1:0",
         says=("port",)),
    case("deploy-no-target", "deploy", "{i}/good.onnx", says=("--device",)),
    case("deploy-unknown-device", "deploy", "{i}/good.onnx", "-d", "rpi6", "--host", "pi@127.0.0.1:9",
         says=("rpi6",)),
    # --- yolo-compare: options checked before a network is built ------------------------------------------------
    case("yolo-unknown-model", "yolo-compare", "-m", "yolov8z", "-o", "{w}/out", says=("yolov8z",)),
    case("yolo-imgsz-not-multiple", "yolo-compare", "--imgsz", "100", "-o", "{w}/out", says=("imgsz", "32")),
    case("yolo-zero-classes", "yolo-compare", "--classes", "0", "-o", "{w}/out", says=("classes",)),
    case("yolo-out-is-file", "yolo-compare", "-o", "{i}/plain.txt", says=("plain.txt",)),
]

# Training device and precision (edgekd.compute): refused before any stage runs. Only where this machine has no
# GPU, which is what they test; tests/unit/test_compute.py covers every refusal with described machines.
if not __import__("torch").cuda.is_available():
    CASES += [
        case("run-device-cuda-without-gpu", "run", TINY, "--set", "device=cuda",
             says=("device: cuda", "no CUDA GPU")),
        case("run-stage-device-cuda-index", "run", TINY, "--set", "teacher.train.device=cuda:3",
             says=("teacher.train.device: cuda:3", "no CUDA GPU")),
        case("run-fp16-on-the-cpu", "run", TINY, "--set", "precision=fp16", says=("precision: fp16", "bf16")),
    ]
CASES.append(case("run-device-unknown", "run", TINY, "--set", "device=gpu", says=("device",)))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Every bad (and good) input file the cases name."""
    import torch

    from edgekd.report.render import write_report
    from unit.test_report import make_report  # tests/ is on sys.path (conftest)

    folder = tmp_path_factory.mktemp("inputs")
    (folder / "binary.yaml").write_bytes(bytes(range(128, 256)) * 4)
    (folder / "utf16.yaml").write_bytes("task: gaze\n".encode("utf-16"))
    (folder / "empty.yaml").write_text("")
    (folder / "plain.txt").write_text("not a model\n")
    (folder / "fake.onnx").write_text("not a model\n")
    (folder / "empty_data").mkdir()
    torch.save({"weight": torch.zeros(2)}, folder / "wrong_keys.pt")
    torch.save(torch.zeros(2), folder / "tensor.pt")
    torch.save({"where": pathlib.PurePosixPath("x")}, folder / "pickled.pt")
    torch.save({"weight": torch.zeros(1000)}, folder / "full.pt")
    (folder / "truncated.pt").write_bytes((folder / "full.pt").read_bytes()[:300])
    np.save(folder / "calib_small.npy", np.zeros((2, 3, 8, 8), np.float32))
    _tiny_onnx(folder / "good.onnx")
    write_report(make_report(), folder / "good")
    os.replace(folder / "good" / "report.json", folder / "report.json")
    write_report(make_report(recipe="another"), folder / "other")
    os.replace(folder / "other" / "report.json", folder / "other_recipe.json")
    (folder / "utf16_report.json").write_bytes((folder / "report.json").read_text().encode("utf-16"))
    (folder / "not_report.json").write_text('{"hello": "world"}\n')
    (folder / "bad_budgets.yaml").write_text("latency_ratoi: 1.3\n")
    (folder / "calibration.json").write_bytes((REPO / "devices" / "calibration.json").read_bytes())
    return folder


def _tiny_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph([conv], "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_dir()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_with_one_line_exit_2_and_nothing_written(case: Case, inputs: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    argv = [arg.format(i=inputs, w=work) for arg in case.argv]
    before_inputs, before_work = _tree(inputs), _tree(work)
    result = runner.invoke(app, argv)
    message = result.stderr.strip()
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output[-2000:]}"
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: "), message
    for fragment in case.fragments:
        assert fragment in message, (fragment, message)
    assert "Traceback" not in result.output
    assert _tree(inputs) == before_inputs, "an input was changed or a file written beside the inputs"
    assert _tree(work) == before_work, f"files written: {sorted(set(_tree(work)) - set(before_work))}"


def test_at_least_sixty_kinds_across_every_command() -> None:
    commands = {c.argv[0] for c in CASES}
    assert len(CASES) >= 60
    assert commands >= {"run", "qat", "recipe", "export", "check", "predict", "profile", "deploy", "yolo-compare"}


def test_a_renamed_recipe_is_compared_when_allowed(inputs: Path) -> None:
    result = runner.invoke(app, ["check", str(inputs / "report.json"), "-b", str(inputs / "other_recipe.json"),
                                 "--allow-other-recipe", "--json"])
    assert result.exit_code == 0, result.output


def test_an_internal_error_is_exit_3_with_its_traceback_in_a_log_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug is told apart from bad input (2) and a failed check (1): one line, exit 3, the traceback kept."""
    from edgekd import api

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(api, "load_recipe", broken)
    result = runner.invoke(app, ["recipe", "validate", TINY])
    assert result.exit_code == 3, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "internal error, please report it: ZeroDivisionError" in line
    log = Path(line.split("traceback in ")[1].split(";")[0])
    assert "Traceback" in log.read_text() and "ZeroDivisionError" in log.read_text()
    log.unlink()
