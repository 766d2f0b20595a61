"""Shot parallelism on torch.distributed: the same script runs alone or under ``torchrun``.

Under ``torchrun --nproc-per-node=N`` (which sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` ...) each
process takes every N-th propagation call of an iteration and the gradients and misfits are summed
with an all-reduce (gloo on CPU, nccl on CUDA), so every rank applies the same update to the same
model. Without those variables it is a single process and nothing is initialised.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launch_rank() -> int:
    """This process's rank as the launcher (``torchrun``) numbered it, 0 when run alone; known with no
    process group, e.g. after an interrupt has torn it down."""
    return int(os.environ.get("RANK", "0"))


class ShotGroup:
    """This process's place among the processes sharing the shots.

    Parameters
    ----------
    device : torch.device
        Where the model lives; picks the backend (nccl for CUDA, gloo otherwise).
    threads : int, optional
        Threads per process; default the machine's cores divided among the ranks on this node, so N
        ranks do not oversubscribe the CPU.
    """

    def __init__(self, device: torch.device | str = "cpu", threads: int | None = None) -> None:
        self.device = torch.device(device)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        self.owns_group = world > 1 and not dist.is_initialized()
        if self.owns_group:
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(backend=backend)
        self.distributed = world > 1
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        if threads is None:
            local = int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world)))
            threads = max(1, (os.cpu_count() or 1) // local)
        torch.set_num_threads(threads)
        self.threads = threads

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes (progress bar, state file, figures)."""
        return self.rank == 0

    def mine(self, items: list) -> list:
        """This rank's share of ``items`` (round robin)."""
        return items[self.rank::self.world]

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast(self, obj: object) -> object:
        """Rank 0's ``obj`` on every rank (e.g. a loaded state)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """Tear down the process group if this object created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False
