"""The layout task (PP-StructureV2: PicoDet-LCNet ×2.5 teacher, ×1.0 student + FGD): stages and deploy hooks.

The task metric is COCO AP50 on the validation split (higher is better, a fraction in [0, 1]). Both
exported roles run in the recipe's post-processing mode; `score` takes either mode's outputs.

Three models are trained, one run each: the teacher, the student without KD (`student_plain`) and the student
with FGD (`distill`, the one deployed). The report has two roles, teacher and student (the exported networks);
the plain student is a training baseline, not a deployable role, so its AP50 / AP are outcomes of the student.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np

from edgekd.pipeline import Stage, StageContext
from edgekd.recipe.common import config_key_dump
from edgekd.tasks.base import TASKS, DeployModel, MetricSpec, Task
from edgekd.tasks.deploy_stages import deploy_stages
from edgekd.tasks.layout import common
from edgekd.tasks.layout.stages import WEIGHTS
from edgekd.tasks.layout.yolo_stage import YOLO_FILE, check_yolo_request, needs_ultralytics, run_yolo, yolo_config

# QAT's second term scores the quantized student against the float student's detections above this score,
# used as labels with the same detection loss (QatObjective: "the same loss against the float outputs").
PSEUDO_LABEL_SCORE = 0.5
PAPER_STRIDES = (8, 16, 32, 64)  # build_picodet's level strides, finest first


def _section(*names):
    # The input size and classes shape every model; the rest of the data section reaches training through the
    # data stage's outputs (page counts) or does not matter to it (workers).
    return lambda r: {"seed": r.seed, "input": [r.data.height, r.data.width, list(r.data.classes)],
                      **{n: config_key_dump(getattr(r, n)) for n in names}}


def _evaluate_config(recipe) -> dict[str, Any]:
    return {"evaluate": recipe.evaluate.model_dump(mode="json"), "postprocess": recipe.postprocess}


@TASKS.register("layout")
class LayoutTask(Task):
    name = "layout"
    metric = MetricSpec(name="AP50", unit="", lower_is_better=False)

    _nms: Any = None
    _num_classes: int = 5

    def preflight(self, recipe: Any) -> None:
        """The export mode suits the backends, a named YOLO exists, and quant.fallback names real student layers.
        (The schema has checked that the COCO files and the teacher checkpoint exist.)"""
        from edgekd.errors import EdgekdError

        if recipe.postprocess == "graph" and "tensorrt" in recipe.export.backends:
            # torchvision's NMS exports as NonMaxSuppression with max_output_boxes_per_class = INT64_MAX, which
            # TensorRT's parser clamps to INT32 (the export lint fails the file): refused here, not at export.
            raise EdgekdError("postprocess: 'graph' cannot go to TensorRT (its NonMaxSuppression carries an INT64 "
                              "limit the parser clamps); use postprocess: host, or drop tensorrt from export.backends")
        check_yolo_request(recipe)
        if recipe.quant.enabled and recipe.quant.fallback:
            from edgekd.models import deploy_copy
            from edgekd.quant.fallback import match_fallback

            match_fallback(deploy_copy(common.build_detector(recipe, "student")), recipe.quant.fallback)

    def stages(self) -> list[Stage]:
        from edgekd.tasks.layout.modes import run_modes
        from edgekd.tasks.layout.stages import (
            data_config,
            run_data,
            run_distill,
            run_evaluate,
            run_student_plain,
            run_teacher,
        )

        modes = Stage("postprocess", lambda ctx: run_modes(self, ctx),
                      lambda r: {"postprocess": r.postprocess, "profile": r.profile.model_dump(mode="json")},
                      ("data", "export"), help="student with NMS outside vs inside the graph, timed side by side")
        yolo = Stage("yolo", run_yolo, yolo_config, ("export",),
                     help="an Ultralytics YOLOv8 timed beside the exported models (compare_yolo)",
                     needs=needs_ultralytics(lambda r: r.compare_yolo))
        stages = [
            Stage("data", run_data, data_config, help="synthetic pages in COCO format (or your COCO set)"),
            Stage("teacher", run_teacher, _section("teacher"), ("data",),
                  help="PicoDet-LCNet teacher on the detection loss (VFL + GIoU + DFL)"),
            Stage("student_plain", run_student_plain, _section("student"), ("data",),
                  help="the student on the detection loss alone (the no-KD baseline)"),
            Stage("distill", run_distill, _section("student", "distill"), ("data", "teacher"),
                  help="the student + feature KD (FGD) on every neck level of the frozen teacher"),
            Stage("evaluate", run_evaluate, _evaluate_config, ("data", "teacher", "student_plain", "distill"),
                  help="COCO AP / AP50 / AP75 of all three models on the validation split"),
            *deploy_stages(self, ("data", "teacher", "distill", "evaluate"), ("evaluate",), (modes, yolo)),
        ]
        # A `teacher.yolo` is built by every stage from the teacher on (distill's KD, evaluation, the exported
        # teacher), so each of them needs Ultralytics; only the data and the no-KD baseline do not.
        teacher_yolo = needs_ultralytics(lambda r: r.teacher.yolo)
        return [stage if stage.needs or stage.name in ("data", "student_plain") else replace(stage, needs=teacher_yolo)
                for stage in stages]

    def student_model(self, ctx: StageContext, postprocess: str) -> Any:
        return common.load_detector(ctx.recipe, "student", ctx.stage_path("distill") / WEIGHTS["distill"],
                                    postprocess)

    def deploy_models(self, ctx: StageContext) -> list[DeployModel]:
        from edgekd.models import count_parameters
        from edgekd.models.picodet import output_names

        recipe, mode = ctx.recipe, ctx.recipe.postprocess
        height, width = common.input_size(recipe)
        teacher = common.load_detector(recipe, "teacher", ctx.stage_path("teacher") / WEIGHTS["teacher"], mode)
        student = self.student_model(ctx, mode)
        return [DeployModel(role, common.model_name(recipe, role), model, (1, 3, height, width),
                            count_parameters(model), output_names=output_names(mode))
                for role, model in (("teacher", teacher), ("student", student))]

    def _remember(self, recipe) -> None:
        self._nms, self._num_classes = common.nms_config(recipe), len(recipe.data.classes)

    def eval_arrays(self, ctx: StageContext, limit: int) -> tuple[np.ndarray, Any]:
        """Validation images (normalised, resized) evenly spread over the split, and their boxes in input pixels."""
        from edgekd.tasks.layout.coco import LayoutDataset
        from edgekd.tasks.layout.metrics import ImageTruth

        self._remember(ctx.recipe)
        data = LayoutDataset(common.coco_split(ctx, "val").records, *common.input_size(ctx.recipe))
        samples = [data[i] for i in _spread(len(data), limit)]
        images = np.stack([s.image.numpy() for s in samples]).astype(np.float32)
        return images, [ImageTruth(s.boxes.numpy(), s.labels.numpy()) for s in samples]

    def score(self, outputs: Any, targets: Any) -> float:
        """COCO AP50 of exported outputs, (boxes, scores) → host NMS, or the graph's NMS rows as they are."""
        from edgekd.models.picodet import NmsConfig
        from edgekd.tasks.layout.metrics import ap50_of_outputs

        return ap50_of_outputs(outputs, targets, self._num_classes, self._nms or NmsConfig())

    def calibration_inputs(self, ctx: StageContext, limit: int) -> np.ndarray:
        data = self.qat_dataset(ctx)
        return np.stack([data[i][0].numpy() for i in _spread(len(data), limit)]).astype(np.float32)

    def qat_dataset(self, ctx: StageContext) -> Any:
        """Training images with padded (max_boxes, 5) targets: the default collate stacks them."""
        from edgekd.tasks.layout.stages import train_set

        self._remember(ctx.recipe)
        return train_set(ctx)

    def qat_loss(self, outputs: Any, targets: Any) -> Any:
        """PicoDet's loss on raw outputs; targets are padded ground truth, or the float student's eval outputs,
        whose confident detections then serve as labels."""
        from edgekd.tasks.layout.common import split_targets
        from edgekd.tasks.layout.det_losses import PicoDetLoss

        class_maps, box_maps = outputs
        truth = split_targets(targets) if hasattr(targets, "dim") else self._pseudo_labels(targets)
        loss_fn = PicoDetLoss(class_maps[0].shape[1], PAPER_STRIDES[:len(class_maps)], box_maps[0].shape[1] // 4 - 1)
        return loss_fn(outputs, truth.boxes, truth.labels)["loss"]

    def _pseudo_labels(self, reference: Any) -> Any:
        import torch

        from edgekd.models.picodet import NmsConfig
        from edgekd.tasks.layout.common import Targets
        from edgekd.tasks.layout.metrics import detections_of

        found = detections_of(reference, self._nms or NmsConfig())
        keep = [d.scores >= PSEUDO_LABEL_SCORE for d in found]
        return Targets([torch.from_numpy(d.boxes[k]) for d, k in zip(found, keep)],
                       [torch.from_numpy(d.labels[k]) for d, k in zip(found, keep)])

    def report_metrics(self, ctx: StageContext) -> dict[str, dict[str, float]]:
        """AP50 on the validation split of the teacher and the distilled (deployed) student."""
        results = _evaluated(ctx)
        return {role: {"val": results[role]["AP50"] or 0.0} for role in common.ROLES}

    def report_outcomes(self, ctx: StageContext) -> dict[str, dict[str, dict[str, Any]]]:
        """AP@[.5:.95] and AP75 of both roles; the student also carries the no-KD student's AP50 and AP."""
        results = _evaluated(ctx)
        outcomes = {role: {"AP@[.5:.95]": _ap(results[role]["AP"]), "AP75": _ap(results[role]["AP75"])}
                    for role in common.ROLES}
        plain = results["student_plain"]
        outcomes["student"].update({"AP50 without KD": _ap(plain["AP50"]), "AP@[.5:.95] without KD": _ap(plain["AP"])})
        return outcomes

    def report_extras(self, ctx: StageContext) -> dict[str, Any]:
        from edgekd.tasks.layout.modes import MODES_FILE

        results = _evaluated(ctx)
        modes = json.loads((ctx.stage_path("postprocess") / MODES_FILE).read_text())
        gain = (results["student"]["AP50"] or 0.0) - (results["student_plain"]["AP50"] or 0.0)
        epochs = ctx.recipe.student.train.epochs
        each = f"{epochs} epoch{'s' if epochs != 1 else ''} each"
        notes = [
            f"Distillation ({ctx.recipe.distill.kd}): student AP50 {results['student']['AP50'] or 0:.4f} vs "
            f"{results['student_plain']['AP50'] or 0:.4f} without KD (same data, {each}): {gain:+.4f}; "
            f"teacher {results['teacher']['AP50'] or 0:.4f}.",
            f"Student post-processing, image in → detections out on ONNX Runtime fp32 ({modes['images']} held-out "
            f"images, {modes['threads']} threads): NMS on the host p50 {modes['p50_ms']['host']:.2f} ms "
            f"(AP50 {modes['AP50']['host']:.4f}); NMS in the graph p50 {modes['p50_ms']['graph']:.2f} ms "
            f"(AP50 {modes['AP50']['graph']:.4f}); exported mode: {modes['configured']}.",
        ]
        ratio = modes["graph_over_host_p50"]
        ratios = {"postprocess_graph_over_host_p50": ratio} if ratio else {}
        yolo = json.loads((ctx.stage_path("yolo") / YOLO_FILE).read_text())
        if yolo["model"]:
            ratios[f"{yolo['model']}_over_student_p50"] = yolo["yolo_over_student_p50"]
            p50 = yolo["p50_ms"]
            notes.append(f"{yolo['model']} (Ultralytics, random weights, edgekd's ONNX export) at the same input "
                         f"{yolo['input'][2]}×{yolo['input'][3]}, ONNX Runtime fp32 side by side: p50 "
                         f"{p50[yolo['model']]:.2f} ms vs student {p50['student']:.2f} ms and teacher "
                         f"{p50['teacher']:.2f} ms ({yolo['yolo_over_student_p50']:.2f}× the student's).")
        return {"ratios": ratios, "notes": notes}


def _evaluated(ctx: StageContext) -> dict[str, Any]:
    return json.loads((ctx.stage_path("evaluate") / "metrics.json").read_text())


def _ap(value: float | None) -> dict[str, Any]:
    return {"value": float(value or 0.0), "unit": "", "lower_is_better": False}


def _spread(count: int, limit: int) -> list[int]:
    """Up to `limit` indices evenly spread over range(count)."""
    return np.linspace(0, count - 1, num=min(limit, count)).round().astype(int).tolist()
