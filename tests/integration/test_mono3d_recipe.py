"""The whole mono3d pipeline at tiny size through the CLI: synthetic KITTI data, LiDAR teacher, TA, plain and TAKD
students, KITTI result files and their evaluation, the ablation, int8, an image-only exported student, and a
report that carries every model's APs; plus a bad KITTI folder refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.report.schema import load_report
from tests.conftest import REPO, run_cli, run_tiny_recipe

RECIPE = REPO / "tests" / "recipes" / "tiny_mono3d.yaml"
STAGES = ("data", "teacher", "assistant", "student_plain", "distill", "evaluate", "ablation", "qat", "export",
          "profile", "report")
MODELS = ("teacher", "assistant", "student_plain", "student")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return run_tiny_recipe(tmp_path_factory, RECIPE)


@pytest.mark.slow
def test_every_stage_completes(run_dir: Path) -> None:
    for stage in STAGES:
        manifest = json.loads((run_dir / stage / "manifest.json").read_text())
        assert manifest["stage"] == stage and manifest["recipe"] == "tiny_mono3d"
    assert json.loads((run_dir / "data" / "kitti" / "scale.json").read_text())["height_scale"] < 1


@pytest.mark.slow
def test_every_model_is_evaluated_from_kitti_result_files(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert set(metrics["models"]) == set(MODELS) and [row["model"] for row in metrics["table"]] == list(MODELS)
    frames = sorted(p.name for p in (run_dir / "data" / "kitti" / "val" / "label_2").glob("*.txt"))
    assert len(frames) == 12
    for name in MODELS:
        result = metrics["models"][name]
        for key in ("AP3D_R40@0.7/moderate", "AP3D_R40@0.5/moderate", "APBEV_R40@0.7/hard", "APBEV_R40@0.5/easy"):
            assert 0.0 <= result[key] <= 100.0
        folder = run_dir / "evaluate" / "results" / name
        assert sorted(p.name for p in folder.glob("*.txt")) == frames      # one result file per held-out frame
        for line in "".join(p.read_text() for p in folder.glob("*.txt")).splitlines():
            assert len(line.split()) == 16 and line.startswith("Car ")


@pytest.mark.slow
def test_ablation_table_has_every_arm(run_dir: Path) -> None:
    ablation = json.loads((run_dir / "ablation" / "metrics.json").read_text())
    assert ablation["enabled"] and [arm["name"] for arm in ablation["arms"]] == ["imd_only", "imd_detached+cmrd"]
    assert [row["model"] for row in ablation["table"]] == ["imd_only", "imd_detached+cmrd"]
    assert ablation["arms"][1]["imd_detach"] and not ablation["arms"][0]["cmrd"]


@pytest.mark.slow
def test_exported_student_reads_only_the_image(run_dir: Path) -> None:
    import onnx

    for name in ("student.onnx", "student.int8.onnx"):
        graph = onnx.load(str(run_dir / "export" / "onnx" / name)).graph
        assert [i.name for i in graph.input] == ["image"] and [o.name for o in graph.output] == ["maps"]
        dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]]
        assert dims == [3, 96, 320]
    teacher = onnx.load(str(run_dir / "export" / "onnx" / "teacher.onnx")).graph
    assert [i.name for i in teacher.input] == ["pillars"]


@pytest.mark.slow
def test_report_carries_every_model_and_predicted_latency(run_dir: Path) -> None:
    report = load_report(run_dir / "report.json")
    assert report.task == "mono3d" and report.metric.name == "ap3d_r40_moderate_iou0.5"
    assert not report.metric.lower_is_better
    models = {entry.role: entry for entry in report.models}
    assert set(models) == {"teacher", "student"}
    for role in models:
        assert set(models[role].metrics) == {"moderate", "easy", "hard"}
    student, teacher = models["student"].outcomes, models["teacher"].outcomes
    for iou in ("0.7", "0.5"):
        for metric in ("AP3D", "APBEV"):
            assert f"{metric} R40 @{iou} moderate" in student and f"{metric} R40 @{iou} moderate" in teacher
            assert f"{metric} R40 @{iou} moderate [plain student]" in student
            assert f"{metric} R40 @{iou} moderate [teaching assistant]" in teacher
    assert student["AP3D R40 @0.5 moderate"].unit == "%" and not student["AP3D R40 @0.5 moderate"].lower_is_better
    assert any("pillar grid" in note for note in report.notes)
    assert any(note.startswith("TAKD ablation") for note in report.notes)
    devices = {p.device for p in report.predictions if p.role == "student"}
    assert {"rpi5", "jetson-orin-nano"} <= devices
    assert any(d.role == "student" and d.precision == "int8" and d.status == "passed" for d in report.deployments)


def _kitti_run(tmp_path: Path, damage) -> tuple[str, int]:
    from edgekd.tasks.mono3d.scenes import generate_kitti_scenes

    root = tmp_path / "kitti"
    generate_kitti_scenes(root, train=2, val=1, seed=0)
    damage(root)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"_base: {(REPO / 'recipes' / '_base' / 'mono3d.yaml').as_posix()}\nname: bad_kitti\n"
                      f"data: {{source: kitti, root: {root.as_posix()}}}\n")
    result = run_cli("run", str(recipe), "--runs-dir", str(tmp_path / "runs"), timeout=300)
    assert "Traceback" not in result.stderr + result.stdout
    return result.stderr.strip(), result.returncode


def test_kitti_folder_with_an_image_but_no_label_is_one_line_exit_2(tmp_path: Path) -> None:
    message, code = _kitti_run(tmp_path, lambda root: (root / "train" / "label_2" / "000001.txt").unlink())
    assert code == 2, message
    assert len(message.splitlines()) == 1, message                  # refused before any stage starts
    assert "000001.png" in message and "no matching file in label_2" in message


def test_a_bad_label_line_stops_the_data_stage_with_one_line_exit_2(tmp_path: Path) -> None:
    message, code = _kitti_run(tmp_path, lambda root: (root / "val" / "label_2" / "000000.txt").write_text("Car 0 0\n"))
    assert code == 2, message
    errors = [line for line in message.splitlines() if line.startswith("error:")]
    assert errors == [message.splitlines()[-1]], message
    assert "000000.txt:1" in errors[0] and "15 fields" in errors[0]
