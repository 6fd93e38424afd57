"""DDP helpers: one code path whether or not the process was started by torchrun.

Under `torchrun` (WORLD_SIZE > 1) the process group uses gloo for models on the CPU and nccl for models on
CUDA GPUs; every training stage shards its data with a DistributedSampler and only rank 0 writes files.
"""

from __future__ import annotations

import os


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def is_distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def process_group_backend(device_type: str) -> str:
    """nccl reduces CUDA tensors only, gloo CPU tensors: the backend follows where the models train, not
    whether the machine has a GPU (nccl with CPU models fails at the first all-reduce)."""
    return "nccl" if device_type == "cuda" else "gloo"


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_if_needed(device_type: str = "cpu") -> None:
    """Start the process group when launched by torchrun; a no-op for a plain run."""
    if world_size() <= 1 or is_distributed():
        return
    import torch
    import torch.distributed as dist

    if device_type == "cuda":  # before the group: nccl's barriers and reductions use the current device
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=process_group_backend(device_type))


def barrier() -> None:
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


def all_reduce_mean(value: float) -> float:
    """The mean of a float over ranks (the value itself when not distributed)."""
    if not is_distributed():
        return value
    import torch
    import torch.distributed as dist

    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"  # nccl: GPU only
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist.get_world_size()


def shutdown() -> None:
    if is_distributed():
        import torch.distributed as dist

        dist.destroy_process_group()
