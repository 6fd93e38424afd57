"""DDP helpers: one code path whether or not the process was started by torchrun.

Under `torchrun` (WORLD_SIZE > 1) the process group uses gloo on CPU and nccl on GPU; every training
stage shards its data with a DistributedSampler and only rank 0 writes files.
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


def init_if_needed() -> None:
    """Start the process group when launched by torchrun; a no-op for a plain run."""
    if world_size() <= 1 or is_distributed():
        return
    import torch
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)


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

    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist.get_world_size()


def shutdown() -> None:
    if is_distributed():
        import torch.distributed as dist

        dist.destroy_process_group()
