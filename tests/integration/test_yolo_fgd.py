"""A YOLOv8n teacher trained with Ultralytics' loss on synthetic layout pages, then a PicoDet student distilled
from it with FGD through 1×1 adapters on the strides both share — each in edgekd's training loop."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from tests.conftest import require_yolo_extra

require_yolo_extra()

from edgekd.distill.loop import fit  # noqa: E402
from edgekd.models.picodet import build_picodet  # noqa: E402
from edgekd.recipe.common import TrainConfig  # noqa: E402
from edgekd.tasks.layout.coco import load_coco  # noqa: E402
from edgekd.tasks.layout.common import DetectionSet  # noqa: E402
from edgekd.tasks.layout.pages import generate_layout_dataset  # noqa: E402
from edgekd.yolo.models import build_yolo  # noqa: E402
from edgekd.yolo.teacher import YoloTeacher, adapters, train_yolo_teacher, yolo_distill_objective  # noqa: E402

SIZE = (64, 64)
TWO_STEPS = TrainConfig(epochs=1, batch_size=2, lr=1e-3)  # 4 pages, batches of 2: two optimiser steps


def _copies(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def _changed(params, before) -> bool:
    return any(not torch.equal(p.detach(), b) for p, b in zip(params, before))


def test_yolo_teacher_trains_then_teaches_a_picodet_student_through_fgd(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    generate_layout_dataset(tmp_path / "data", train=4, val=1, seed=3)
    records = load_coco(tmp_path / "data/annotations/train.json", tmp_path / "data/images/train").records
    pages = DetectionSet(records, *SIZE)
    assert len(pages) == 4 and pages.max_boxes > 0

    torch.manual_seed(0)
    yolo = build_yolo("yolov8n", num_classes=5)
    teacher_before = _copies(yolo.parameters())
    trained = train_yolo_teacher(yolo, pages, TWO_STEPS, seed=0, checkpoint_dir=tmp_path / "teacher")
    assert trained.steps == 2
    epoch = trained.history[0]
    assert all(math.isfinite(epoch[k]) for k in ("loss", "box", "cls", "dfl")), epoch
    assert epoch["loss"] > 0 and _changed(yolo.parameters(), teacher_before)
    assert not yolo.training

    student = build_picodet(width=0.25, num_classes=5, neck_channels=16, levels=4)
    objective = yolo_distill_objective(student, YoloTeacher(yolo), SIZE)
    convs = adapters(objective)
    # Strides 8/16/32 are distilled (the student's stride-64 level is not); each adapter maps 16 → P3/P4/P5 width.
    assert [tuple(c.weight.shape[:2]) for c in convs] == [(64, 16), (128, 16), (256, 16)]
    assert [s for s, _ in objective.pairs] == ["neck.outputs.0", "neck.outputs.1", "neck.outputs.2"]
    student_before, adapters_before = _copies(student.parameters()), _copies(c.weight for c in convs)
    teacher_trained = _copies(yolo.parameters())

    distilled = fit(objective, pages, TWO_STEPS, seed=0, checkpoint_dir=tmp_path / "student", desc="student + FGD")
    objective.remove_hooks()
    epoch = distilled.history[0]
    assert distilled.steps == 2
    assert all(math.isfinite(epoch[k]) for k in ("loss", "det", "kd")), epoch
    assert epoch["kd"] > 0
    assert _changed(student.parameters(), student_before)
    assert all(_changed([c.weight], [b]) for c, b in zip(convs, adapters_before))
    assert not _changed(yolo.parameters(), teacher_trained)  # the teacher is frozen while it teaches
