"""Training device and precision: every request this machine (or a described one) cannot honour is one line."""

from __future__ import annotations

import pytest
import torch

from edgekd.compute import CPU_FP32, Compute, CudaDevice, Hardware, cpu_bf16, cuda_summary, resolve
from edgekd.errors import EdgekdError

NO_GPU = Hardware()
TURING = Hardware(cuda=(CudaDevice(0, "Tesla T4", 15.0, (7, 5)),), torch_cuda_build="12.8")
TWO_AMPERE = Hardware(cuda=(CudaDevice(0, "A100", 80.0, (8, 0)), CudaDevice(1, "A100", 80.0, (8, 0))),
                      torch_cuda_build="12.8")


def test_auto_takes_the_first_gpu_or_the_cpu() -> None:
    assert resolve("auto", None, NO_GPU) == Compute("cpu", "fp32")
    assert resolve("auto", None, TWO_AMPERE) == Compute("cuda:0", "bf16")
    assert resolve("auto", None, TURING) == Compute("cuda:0", "fp16")  # no bf16 before Ampere


def test_under_torchrun_each_process_takes_its_local_rank() -> None:
    rank1 = Hardware(cuda=TWO_AMPERE.cuda, local_rank=1)
    assert resolve("cuda", None, rank1).device == "cuda:1"
    assert resolve("auto", None, rank1).device == "cuda:1"
    assert resolve("cuda:0", None, rank1).device == "cuda:0"  # an explicit index is kept


@pytest.mark.parametrize("device, precision, hardware, message", [
    ("cuda", None, NO_GPU, "device: cuda, but this machine has no CUDA GPU that torch can use"),
    ("cuda:3", None, TURING, r"device: cuda:3, but this machine has 1 CUDA GPU \(cuda:0\)"),
    ("cuda:2", None, TWO_AMPERE, r"has 2 CUDA GPUs \(cuda:0, cuda:1\)"),
    ("mps", None, NO_GPU, "device: mps, but this machine has no Apple GPU"),
    ("cpu", "fp16", NO_GPU, "precision: fp16 is for GPUs; on the CPU use bf16"),
    ("cuda", "bf16", TURING, r"bf16 on cuda:0 \(Tesla T4, compute capability 7.5\): bf16 needs compute capability 8.0"),
    ("gpu", None, NO_GPU, "'gpu' is not a device"),
    ("cpu", "int8", NO_GPU, "precision: 'int8'"),
])
def test_requests_the_machine_cannot_honour_are_refused(device, precision, hardware, message) -> None:
    with pytest.raises(EdgekdError, match=message):
        resolve(device, precision, hardware)


def test_explicit_precisions_the_machine_has_are_kept() -> None:
    assert resolve("cpu", "bf16", NO_GPU) == Compute("cpu", "bf16")
    assert resolve("cuda:1", "fp32", TWO_AMPERE) == Compute("cuda:1", "fp32")
    assert resolve("cuda", "fp16", TURING) == Compute("cuda:0", "fp16")


def test_cpu_bf16_autocast_runs_matmuls_in_bf16_and_leaves_softmax_to_the_losses() -> None:
    x = torch.randn(4, 8)
    layer = torch.nn.Linear(8, 8)
    with Compute("cpu", "bf16").autocast():
        y = layer(x)
        p = torch.log_softmax(y, dim=1)
    # On the CPU, unlike CUDA, autocast does not lift log-softmax to fp32: a KD loss must cast its inputs.
    assert y.dtype == torch.bfloat16 and p.dtype == torch.bfloat16
    with CPU_FP32.autocast():
        assert layer(x).dtype == torch.float32


def test_only_fp16_scales_the_loss() -> None:
    assert not Compute("cpu", "bf16").grad_scaler().is_enabled()
    assert not CPU_FP32.grad_scaler().is_enabled()


def test_doctor_summary_names_each_gpu_and_its_bf16() -> None:
    rows = cuda_summary(Hardware(cuda=TURING.cuda + (CudaDevice(1, "RTX 4090", 24.0, (8, 9)),)))
    assert [(r["device"], r["capability"], r["bf16"]) for r in rows] == [("cuda:0", "7.5", False),
                                                                         ("cuda:1", "8.9", True)]
    assert cuda_summary(NO_GPU) == []


def test_cpu_bf16_is_read_from_the_cpu_flags() -> None:
    assert cpu_bf16("flags : fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile") == "native (AMX, AVX512-BF16)"
    assert cpu_bf16("Features : fp asimd bf16 i8mm") == "native (Arm BF16)"
    assert cpu_bf16("flags : fpu avx2 fma").startswith("emulated")


def test_the_process_group_follows_where_the_models_train() -> None:
    from edgekd.distributed import process_group_backend

    assert process_group_backend("cpu") == "gloo"  # even on a machine with GPUs: nccl cannot reduce CPU tensors
    assert process_group_backend("cuda") == "nccl"


def test_losses_that_need_fp32_get_it_under_autocast() -> None:
    from edgekd.distill.feature_kd import build_feature_kd
    from edgekd.distill.losses import KD_LOSSES

    student, teacher = torch.randn(2, 8, 6, 6), torch.randn(2, 8, 6, 6)
    fgd = build_feature_kd("fgd", 8, 8)
    boxes = [torch.tensor([[0.0, 0.0, 20.0, 20.0]]), torch.zeros(0, 4)]
    with Compute("cpu", "bf16").autocast():
        terms = fgd(student.bfloat16(), teacher.bfloat16(), boxes, (48, 48))
        masked = KD_LOSSES.get("masked_mse")(student.bfloat16(), teacher.bfloat16())
    assert all(value.dtype == torch.float32 for value in terms.values()) and masked.dtype == torch.float32
    with torch.no_grad():
        reference = fgd(student, teacher, boxes, (48, 48))
    assert torch.allclose(terms["loss"], reference["loss"], rtol=0.05)  # bf16 inputs, fp32 arithmetic


def test_fp32_loss_casts_every_floating_argument_and_leaves_integers() -> None:
    from collections import namedtuple

    from edgekd.compute import fp32_loss

    Raw = namedtuple("Raw", "maps labels")

    @fp32_loss
    def loss(raw, extra):
        assert not torch.is_autocast_enabled("cpu")
        return raw.maps[0].dtype, raw.labels.dtype, extra["w"].dtype

    with Compute("cpu", "bf16").autocast():
        got = loss(Raw([torch.ones(1, dtype=torch.bfloat16)], torch.ones(1, dtype=torch.int64)),
                   {"w": torch.ones(1, dtype=torch.float16)})
    assert got == (torch.float32, torch.int64, torch.float32)
