"""How many threads sweep's steps use: torch's count, fewer while the machine is oversubscribed.

When a call has fewer shots than threads, the kernels cut each shot into bands of rows that wait for
their neighbours every step. That is fast on free cores and slow on a busy machine: the scheduler puts
threads that wake each other on one core, where they take turns, so two threads do one thread's work
plus the hand-overs (measured beside another 2-thread process: boundary saving 11x, Revolve 34x slower
with 2 threads than with 1 before this governor). Each banded kernel call reports its wall time and the
CPU time its threads got (``pool.h``). Over a window of calls (50 ms of wall time: a single call can be
held up by a page-fault storm or a hypervisor pause on a quiet machine), when the threads got less than
``min_share`` of the cores they asked for, the next calls use fewer threads, and the full count is tried
again after a back-off that doubles while the machine stays busy (0.25 s, 0.5 s, ... 8 s). Results do not depend on the thread count (bit
for bit), so switching is free of numerical effect. Calls with at least as many shots as threads run
whole shots per thread with no waiting, and are left alone.

The eager back-end's steps are torch operators, each a parallel region of torch's OpenMP team that ends
in a barrier: the same problem. :func:`governed_torch_threads` runs a block of eager steps with the count
of a second governor, :data:`TORCH_GOVERNOR` (torch's team is not the kernels' pool: one must not slow
the other), and reports the block's wall and process CPU time to it. That measure needs torch's
threads to sleep when they wait (``OMP_WAIT_POLICY=passive``, which ``import sweep`` sets before torch
starts when nobody chose a policy): spinning threads look busy, and the governor then never reduces.

``SWEEP_ADAPTIVE_THREADS=0`` turns the governor off (every call uses ``torch.get_num_threads()``).
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Callable, Iterator

import torch

from ..memory.serial import torch_threads

__all__ = ["ThreadGovernor", "GOVERNOR", "TORCH_GOVERNOR", "governed_torch_threads"]

log = logging.getLogger("sweep")


class ThreadGovernor:
    """Chooses the thread count of banded kernel calls from what earlier calls measured.

    Parameters
    ----------
    min_share : float
        Fewest CPU seconds per wall second and thread that still counts as running freely (0.7: two
        threads must get at least 1.4 cores' worth).
    min_backoff, max_backoff : float
        Seconds to stay at the reduced count after the first and after repeated stalls.
    window : float
        Wall seconds of calls at one thread count that are judged together.
    enabled : bool
        False: always the requested count.
    name : str
        Whose threads, for the log lines.
    clock : callable
        Monotonic seconds (tests pass a fake clock).
    """

    def __init__(self, min_share: float = 0.7, min_backoff: float = 0.25, max_backoff: float = 8.0,
                 window: float = 0.05, enabled: bool = True, name: str = "the compiled kernels",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.min_share, self.min_backoff, self.max_backoff = min_share, min_backoff, max_backoff
        self.window, self.enabled, self.clock = window, enabled, clock
        self._limit: int | None = None  # the reduced count, while clock() < self._until
        self._until = 0.0
        self._backoff = min_backoff
        self._seen = [0, 0.0, 0.0]  # thread count, wall and CPU seconds of the calls in the current window

    @property
    def limited(self) -> bool:
        """Whether calls are held to a reduced count right now."""
        return self._limit is not None and self.clock() < self._until

    def threads(self, requested: int) -> int:
        """The thread count for the next banded call that would like ``requested`` threads."""
        if not self.enabled or requested <= 1 or not self.limited:
            return max(1, requested)
        return min(requested, self._limit)

    def observe(self, threads: int, requested: int, wall: float, cpu: float) -> None:
        """Learn from a banded call that ran ``threads`` threads (of ``requested``) for ``wall`` seconds
        and got ``cpu`` CPU seconds in all."""
        if not self.enabled or threads <= 1:
            return
        if self._seen[0] != threads:
            self._seen = [threads, 0.0, 0.0]
        self._seen[1] += wall
        self._seen[2] += cpu
        if self._seen[1] < self.window:
            return
        _, wall, cpu = self._seen
        self._seen = [threads, 0.0, 0.0]
        share = cpu / (wall * threads)
        if share >= self.min_share:
            if threads >= requested:
                if self._limit is not None:
                    log.info("sweep: %s run freely again on %d threads", self.name, threads)
                self._limit, self._backoff = None, self.min_backoff
            return
        limit = max(1, min(threads - 1, int(cpu / wall)))
        if self._limit is None:
            log.info("sweep: the machine is busy (%d threads got %.2f cores); %s use %d thread(s) for %.2f s, "
                     "then try %d again", threads, cpu / wall, self.name, limit, self._backoff, requested)
        self._limit = limit
        self._until = self.clock() + self._backoff
        self._backoff = min(2 * self._backoff, self.max_backoff)


_ENABLED = os.environ.get("SWEEP_ADAPTIVE_THREADS", "1") != "0"
#: The compiled kernels' governor (their thread pool), shared by every compiled stepper of the process.
GOVERNOR = ThreadGovernor(enabled=_ENABLED)
#: The eager back-end's governor (torch's OpenMP team): a separate team, whose two threads on free cores
#: showed 0.97-0.99 of two cores per block and 0.69 (median) beside a busy process, hence the higher bar.
TORCH_GOVERNOR = ThreadGovernor(min_share=0.8, enabled=_ENABLED, name="the eager back-end's torch threads")


@contextlib.contextmanager
def governed_torch_threads(device: torch.device) -> Iterator[None]:
    """Runs the body (a block of eager steps) on the governor's share of ``torch.get_num_threads()`` when
    ``device`` is the CPU, restoring the count after, and reports the block's wall time and the process's
    CPU time to :data:`TORCH_GOVERNOR`."""
    governor = TORCH_GOVERNOR
    requested = torch.get_num_threads()
    if device.type != "cpu" or requested <= 1 or not governor.enabled:
        yield
        return
    threads = governor.threads(requested)
    wall, cpu = time.perf_counter(), time.process_time()
    with torch_threads(threads, device):
        yield
    governor.observe(threads, requested, time.perf_counter() - wall, time.process_time() - cpu)
