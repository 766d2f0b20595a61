"""Host-memory work of the memory layer (copies of states and strips, codecs) on one torch thread.

Why: torch's CPU operators run on an OpenMP team whose threads spin for milliseconds when they wait
(libgomp's default wait policy, fixed when torch starts). On a machine shared with another busy process,
the scheduler puts those threads on one core, and a 3 MB state copy with 2 threads took 1.3 ms instead of
0.07 ms with one: Revolve, which copies a state every few steps, ran 20x slower than its kernels. A copy
or an encoding is memory-bound, so one thread loses little on a quiet machine (a single core copies at
memory bandwidth, ~10 GB/s). On a GPU nothing changes.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["copy_into", "one_torch_thread", "torch_threads"]


@contextlib.contextmanager
def torch_threads(count: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Runs the body with ``torch.set_num_threads(count)`` when ``device`` is the CPU, restoring the count
    after (even on an error)."""
    threads = torch.get_num_threads()
    if torch.device(device).type != "cpu" or threads == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def one_torch_thread(device: torch.device | str = "cpu") -> contextlib.AbstractContextManager[None]:
    """:func:`torch_threads` with one thread."""
    return torch_threads(1, device)


def copy_into(dst: torch.Tensor, src: torch.Tensor) -> None:
    """``dst.copy_(src)``, on one torch thread when both live in host memory; asynchronous (non-blocking)
    into page-locked memory."""
    if dst.device.type == "cpu" and src.device.type == "cpu":
        with one_torch_thread():
            dst.copy_(src)
    else:
        dst.copy_(src, non_blocking=dst.is_pinned())
