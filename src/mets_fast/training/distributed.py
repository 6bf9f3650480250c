"""One process or many under ``torchrun``: which this is, and the little the trainer needs of
``torch.distributed``."""

from __future__ import annotations

import os
from typing import NamedTuple

import torch
import torch.distributed as dist


class World(NamedTuple):
    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        """The process that prepares data, prints and writes the run directory."""
        return self.rank == 0


def setup(device: str) -> World:
    """Joins the process group when started by ``torchrun`` (gloo on the CPU, NCCL on GPUs;
    each process takes the GPU of its local rank), else describes the one process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    target = torch.device(device)
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available on this machine")
        target = torch.device("cuda", local_rank if size > 1 else (target.index or 0))
        torch.cuda.set_device(target)
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    return World(rank, size, local_rank, target)


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def mean(value: float, world: World) -> float:
    """The mean of `value` over the processes."""
    if world.size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / world.size


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
