"""Recipe blocks shared by every task: training, export, profiling.

Kept free of torch imports so `edgekd recipe validate` stays quick; names that live in registries
(models, KD losses) are checked by validators that import the registry only when a recipe is loaded.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, SerializationInfo, field_validator, model_serializer, model_validator

# Backend, runtime and precision names come from the backend registry (edgekd.export), the one place they are
# defined; the Literals below are built from it, so a new backend is accepted by recipes without an edit here.
from edgekd.export import BACKENDS, PRECISIONS, all_runtime_names, backend_names, runtime_names  # noqa: E402
from edgekd.export.orchestrate import TENSORRT_VERSION_PATTERN  # noqa: E402

RUNTIMES = tuple(all_runtime_names())
BackendName = Literal[tuple(backend_names())]  # type: ignore[valid-type]
RuntimeName = Literal[tuple(runtime_names())]  # type: ignore[valid-type]
PrecisionName = Literal[PRECISIONS]  # type: ignore[valid-type]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


# Upper bounds no real run comes near: they catch a typo or a unit mix-up (`epochs: 1e23`, `lr: 1000`) when the
# recipe loads, with the field and the limit, instead of as an overflow or a hang hours later.
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536
MAX_LR = 10.0
MAX_COUNT = 100_000_000  # samples, images, pages, scenes, episodes, steps, timed runs
MAX_WORKERS = 1_024  # processes and threads
MAX_WIDTH = 4_096  # channels of a layer


# Fields that change how a stage runs, never what it writes (the generators promise files independent of their
# process count): they stay out of stage config keys, so changing them reuses finished work.
RUN_ONLY_FIELDS = frozenset({"workers"})


def config_key_dump(section: BaseModel) -> dict:
    """A recipe section as it enters a stage's config key: its JSON form without the RUN_ONLY_FIELDS."""
    return section.model_dump(mode="json", exclude=set(RUN_ONLY_FIELDS & set(type(section).model_fields)))


class StrictModel(BaseModel):
    """Every recipe block rejects unknown keys, so a typo never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# `device` and `precision` (edgekd.compute) say where and in which arithmetic networks train.
DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?|mps)$"
TrainPrecision = Literal["fp32", "bf16", "fp16"]
SHOW_WHERE = {"show_where": True}  # model_dump(context=SHOW_WHERE): keep `device` (as `edgekd recipe show` does)


class _WhereAndArithmetic(StrictModel):
    """A block with `device` and `precision`. Where a network trains is not what a stage computes, so `device`
    stays out of every dump a stage's config key is made from (a run trained on a GPU is current on a laptop);
    an unset `precision` is left out too, so recipes that do not set it keep the keys they had."""

    @model_serializer(mode="wrap")
    def _without_where(self, handler: Any, info: SerializationInfo) -> dict[str, Any]:
        data = handler(self)
        if not (info.context or {}).get("show_where"):
            data.pop("device", None)
            if data.get("precision") is None:
                data.pop("precision", None)
        return data


class TrainConfig(_WhereAndArithmetic):
    """One optimisation run: AdamW with linear warm-up then cosine decay, checkpointed every epoch."""

    epochs: int = Field(gt=0, le=MAX_EPOCHS)
    batch_size: int = Field(64, gt=0, le=MAX_BATCH)
    lr: float = Field(1e-3, gt=0, le=MAX_LR)
    weight_decay: float = Field(0.05, ge=0)
    warmup_epochs: float = Field(0.0, ge=0, le=MAX_EPOCHS)
    grad_clip: Optional[float] = Field(None, gt=0)
    checkpoint_every_steps: int = Field(0, ge=0, le=MAX_COUNT, description="0: checkpoint at epoch ends only")
    num_workers: int = Field(0, ge=0, le=MAX_WORKERS)
    device: Optional[str] = Field(None, pattern=DEVICE_PATTERN,
                                  description="auto | cpu | cuda | cuda:N | mps; unset: the recipe's `device`")
    precision: Optional[TrainPrecision] = Field(
        None, description="training arithmetic (torch.autocast); unset: the recipe's `precision`")


class KDPair(StrictModel):
    """A distillation term: `loss(teacher[teacher_layer], student[student_layer])`, layers by module path."""

    loss: str
    student: str
    teacher: Optional[str] = None
    weight: float = Field(1.0, ge=0)

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, name: str) -> str:
        from edgekd.distill.losses import KD_LOSSES

        if name not in KD_LOSSES:
            from edgekd.registry import unknown_name_message

            raise ValueError(unknown_name_message("KD loss", name, KD_LOSSES.names()))
        return name


class ParityBudget(StrictModel):
    """How far a deployed artifact may drift from PyTorch before its stage fails.

    `max_abs_diff` bounds `error_stat` of the absolute output difference, per output: its maximum (the default),
    99th percentile or median. The maximum is reported whichever is gated. An absolute budget cannot fail a
    model whose outputs are tiny, so the scaled budgets (each the worst output's; None: not gated) measure the
    difference against the output itself: SNR, relative L2 error, cosine similarity, and for classifiers top-1
    agreement. `max_abs_diff: null` gates only those (edgekd.export.parity).
    """

    max_abs_diff: Optional[float] = Field(
        1e-3, ge=0, description="budget of error_stat of |PyTorch - runtime| per output; null: reported, not gated")
    max_metric_delta: float = Field(0.05, ge=0)
    error_stat: Literal["max", "p99", "median"] = "max"
    min_snr_db: Optional[float] = Field(
        None, allow_inf_nan=False,
        description="lowest SNR in dB, 10 log10(Σa² / Σ(a-b)²) with a the PyTorch output; honest files measure "
                    "over 110 in fp32, 49-73 in OpenVINO fp16, 22-45 in int8, most broken ones 4 or below "
                    "(edgekd.export.parity.SCALED_BUDGETS)")
    max_rel_l2: Optional[float] = Field(
        None, ge=0, description="largest relative L2 error ||a-b|| / ||a||: the SNR in other units (20 dB = 0.1)")
    min_cosine: Optional[float] = Field(
        None, ge=-1, le=1, description="lowest cosine similarity of the flattened outputs; blind to a change of "
                                       "scale, which SNR and relative L2 see")
    min_top1_agreement: Optional[float] = Field(
        None, ge=0, le=1, description="lowest fraction of samples whose argmax agrees with PyTorch; classifier "
                                      "outputs ([N, C]) only, so leave it unset for regression or detection heads")


def _default_backends() -> dict[str, list[str]]:
    return {name: list(BACKENDS.get(name).default_precisions) for name in backend_names()}


def _default_deploy() -> dict[str, str]:
    return {BACKENDS.get(name).runtime: BACKENDS.get(name).deploy_default for name in backend_names()}


def _default_profiled() -> list[str]:
    """Runtimes the profile stage times unless the recipe says: those of this host that a recipe exports by default."""
    return [BACKENDS.get(name).runtime for name in backend_names()
            if BACKENDS.get(name).host_cpu and BACKENDS.get(name).default_precisions]


class ExportConfig(StrictModel):
    """What the student is exported to; the teacher always gets fp32 ONNX for the side-by-side numbers.

    `backends` maps an exporter (onnx, openvino, tensorrt) to the precisions wanted; a backend that cannot
    run here (TensorRT without a GPU) gets its on-device bundle: the ONNX, the lint and the trtexec command.
    `deploy` picks the precision each runtime ships: 'auto' takes the fastest measured precision whose
    metric is within budget, so an int8 file that is not faster on this host is not chosen for it.
    """

    opset: int = Field(18, ge=17, le=23)
    simplify: bool = True
    parity: ParityBudget = ParityBudget()
    parity_fp16: ParityBudget = ParityBudget(max_abs_diff=2e-2, max_metric_delta=0.1)
    # int8 files are compared with the fake-quantized PyTorch model; integer kernels round differently
    # from fake-quant by up to a quantization step per layer, so the absolute budget is wider.
    parity_int8: ParityBudget = ParityBudget(max_abs_diff=0.1, max_metric_delta=0.3)
    eval_samples: int = Field(2000, gt=0, le=MAX_COUNT, description="held-out samples used for the parity metric")
    backends: dict[BackendName, list[PrecisionName]] = Field(default_factory=_default_backends)

    @field_validator("backends")
    @classmethod
    def _producible(cls, backends: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, precisions in backends.items():
            backend = BACKENDS.get(name)
            for precision in precisions:
                if precision not in backend.precisions:
                    reason = backend.refused.get(precision, "not implemented by this backend")
                    raise ValueError(f"{name} cannot produce {precision}: {reason}")
        return backends
    deploy: dict[RuntimeName, Literal[("auto", *PRECISIONS)]] = Field(  # type: ignore[valid-type]
        default_factory=_default_deploy
    )
    tensorrt_target: str = Field("10.3", pattern=TENSORRT_VERSION_PATTERN,
                                 description="TensorRT version of the target, for the lint (JetPack 6: 10.3)")
    tensorrt_workspace_mb: int = Field(1024, gt=0)
    tensorrt_dla_core: Optional[int] = Field(None, ge=0, description="DLA core on Jetson Xavier/AGX Orin")


class QuantSensitivity(StrictModel):
    enabled: bool = True
    samples: int = Field(256, gt=0, le=MAX_COUNT, description="held-out samples per evaluation")
    top: int = Field(10, gt=0, le=MAX_COUNT, description="layers listed in the stage output")


class QuantConfig(StrictModel):
    """int8: post-training calibration (the baseline), then quantization-aware fine-tuning.

    Fake-quant follows TensorRT's explicit-quantization rules (symmetric int8, per-channel weights,
    signed per-tensor activations). `fallback` lists module-path globs kept in float; one that matches
    no layer is an error. The QAT loss is the task loss plus `kd_weight` times the same loss against
    the float student's outputs.
    """

    enabled: bool = True
    calibration_samples: int = Field(512, gt=0, le=MAX_COUNT)
    calibration_batch: int = Field(32, gt=0, le=MAX_BATCH)
    placement: Literal["weighted_ops", "nncf_default"] = "weighted_ops"
    fold_batchnorm: bool = Field(
        True, description="fold BatchNorms into their convolutions before quantizing (ONNX Runtime keeps an "
                          "unfolded one as a float node after each int8 conv; edgekd.quant.bn_fold)")
    fallback: list[str] = Field(default_factory=list)
    kd_weight: float = Field(1.0, ge=0)
    train: TrainConfig = TrainConfig(epochs=2, batch_size=64, lr=1e-4, weight_decay=0.0)

    @field_validator("train")
    @classmethod
    def _qat_trains_in_fp32(cls, train: TrainConfig) -> TrainConfig:
        if train.precision not in (None, "fp32"):
            raise ValueError(f"precision {train.precision}: quantization-aware fine-tuning runs in fp32 (its "
                             "fake-quant scales and rounding are fp32 arithmetic)")
        return train
    train_samples: Optional[int] = Field(
        None, gt=0, le=MAX_COUNT,
        description="fine-tune on this many training samples (a seeded subset); None: all of them")
    max_metric_delta: float = Field(0.3, ge=0, description="int8 metric vs the float student, in metric units")
    sensitivity: QuantSensitivity = QuantSensitivity()


class ProfileConfig(StrictModel):
    # Runtimes timed on this host: those with a local session (TensorRT is timed on the device).
    runtimes: list[RuntimeName] = Field(default_factory=_default_profiled)
    threads: int = Field(2, gt=0, le=MAX_WORKERS)
    batch_size: int = Field(1, gt=0, le=MAX_BATCH)
    warmup: int = Field(20, ge=0, le=MAX_COUNT)
    # Sub-3 ms models on a shared 2-core host drift by ±30% between runs; 1000 runs alternated in 10 rounds
    # keep the teacher/student ratio within a few percent (measured, docs/results.md).
    runs: int = Field(1000, ge=1, le=MAX_COUNT)
    rounds: int = Field(10, ge=1, le=MAX_COUNT, description="teacher and student alternate this many times")

    @field_validator("runtimes")
    @classmethod
    def _timed_on_this_host(cls, runtimes: list[str]) -> list[str]:
        from edgekd.export import backend_for_runtime

        device_only = [r for r in runtimes if not backend_for_runtime(r).host_cpu]
        if device_only:
            raise ValueError(f"{device_only[0]} is timed on the device (edgekd profile FILE --device NAME --host ...), "
                             f"not by the profile stage")
        return runtimes


class RecipeBase(_WhereAndArithmetic):
    """Fields every recipe has; each task adds its own sections."""

    name: str = Field(pattern=NAME_PATTERN)
    task: str
    seed: int = 0
    description: str = ""
    device: str = Field("auto", pattern=DEVICE_PATTERN,
                        description="where every stage trains unless its `train` section says: auto (the first CUDA "
                                    "GPU when present, else the CPU), cpu, cuda, cuda:N, mps")
    precision: Optional[TrainPrecision] = Field(
        None, description="training arithmetic unless a `train` section says; unset: bf16 on an Ampere or newer "
                          "GPU, fp16 on older GPUs, fp32 on the CPU")
    quant: QuantConfig = QuantConfig()
    export: ExportConfig = ExportConfig()
    profile: ProfileConfig = ProfileConfig()

    @model_validator(mode="after")
    def _train_sections_inherit_where(self) -> "RecipeBase":
        for path, train in train_sections(self).items():
            if train.device is None:
                train.device = self.device
            if path != QAT_TRAIN and train.precision is None and self.precision is not None:
                train.precision = self.precision
        return self


QAT_TRAIN = "quant.train"  # fine-tunes in fp32 whatever the recipe's precision (edgekd.quant.stage.QatObjective)


def train_sections(block: BaseModel, path: str = "") -> dict[str, "TrainConfig"]:
    """Every TrainConfig inside a recipe block, by its dotted path ("teacher.train")."""
    found: dict[str, TrainConfig] = {}
    for name in type(block).model_fields:
        value = getattr(block, name)
        where = f"{path}.{name}" if path else name
        if isinstance(value, TrainConfig):
            found[where] = value
        elif isinstance(value, BaseModel):
            found.update(train_sections(value, where))
    return found


def check_model_name(name: str) -> str:
    """Validator body for fields that name a registered model builder."""
    from edgekd.models import MODELS
    from edgekd.registry import unknown_name_message

    if name not in MODELS:
        raise ValueError(unknown_name_message("model", name, MODELS.names()))
    return name
