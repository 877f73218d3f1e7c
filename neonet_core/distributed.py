"""Where this process stands under ``torchrun``: rank, world size, joining the group, a barrier.

Outside ``torchrun`` every process is rank 0 of 1 and these helpers cost nothing. Under
``torchrun`` the rank comes from the launcher's environment even before the process group is
joined, so work done before training (patch caches, synthetic patches) is also left to rank 0.
"""

from __future__ import annotations

import os

import torch


def launched_world() -> int:
    """The number of processes ``torchrun`` started (1 outside it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: str = "auto") -> None:
    """Join the process group under ``torchrun``: NCCL when training on CUDA, else gloo."""
    if launched_world() <= 1 or torch.distributed.is_initialized():
        return
    use_nccl = device not in ("cpu", "mps") and torch.cuda.is_available() and torch.distributed.is_nccl_available()
    if use_nccl:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend="nccl" if use_nccl else "gloo")


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)``: from the process group, else from ``torchrun``'s environment, else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", "0")), launched_world()


def is_main_process() -> bool:
    """True on rank 0: the only process that writes shared outputs (caches, checkpoints, bundles)."""
    return rank_world()[0] == 0


def barrier() -> None:
    """Wait for every rank (joins the process group first if needed; no-op in a single process)."""
    if launched_world() > 1:
        init_distributed()
        torch.distributed.barrier()
