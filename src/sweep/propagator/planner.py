"""strategy='auto': the fastest exact memory strategy whose predicted footprint fits a budget.

Every candidate is priced by :func:`sweep.memory.predict.predict` (the candidate's own schedule run
dry), so a candidate that is chosen holds exactly the predicted bytes when it runs.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

from ..memory import MemoryReport
from ..memory.predict import predict
from .options import BoundaryOptions, CkptOptions, MemoryOptions
from .strategy import make_schedule

log = logging.getLogger("sweep")
MIB = 2**20


@dataclass
class Plan:
    """The chosen strategy, its predicted report, and why it was chosen (one line)."""

    memory: MemoryOptions
    prediction: MemoryReport
    reason: str


def _mib(nbytes: int) -> str:
    return f"{nbytes / MIB:.2f} MiB"


class Planner:
    """Prices candidates for one call shape (``stepper``: the call's stepper; shots and receivers)."""

    def __init__(self, auto: MemoryOptions, stepper, nshots: int, nrec: int) -> None:
        self.auto, self.stepper, self.nshots, self.nrec = auto, stepper, nshots, nrec
        self.budget, self.disk_budget = auto.budget, auto.disk_budget or 0
        self._cache: dict = {}

    def price(self, memory: MemoryOptions) -> MemoryReport:
        key = repr(memory)
        if key not in self._cache:
            self._cache[key] = predict(self.stepper, make_schedule(memory), self.nshots, self.nrec,
                                       need_wavelet=True, need_model=True)
        return self._cache[key]

    def fits(self, memory: MemoryOptions) -> bool:
        r = self.price(memory)
        return r.peak_memory_bytes <= self.budget and r.peak_bytes.get("disk", 0) <= self.disk_budget

    # -- candidates, fastest first ------------------------------------------------------------------
    def full(self) -> MemoryOptions:
        return MemoryOptions("full")

    def boundary(self, storage: str) -> MemoryOptions:
        b = self.auto.boundary
        return MemoryOptions("boundary", boundary=BoundaryOptions(storage=storage, transfer_interval=b.transfer_interval,
                                                                  disk_dir=b.disk_dir))

    def chunk(self, chunks: int) -> MemoryOptions:
        return MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=chunks))

    def recursive(self, count: int, disk_count: int = 0) -> MemoryOptions:
        return MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=count, disk_count=disk_count,
                                                      disk_dir=self.auto.ckpt.disk_dir))

    def _largest(self, make, lo: int, hi: int) -> int | None:
        """The largest k in [lo, hi] with ``make(k)`` fitting, for footprints that grow with k."""
        if not self.fits(make(lo)):
            return None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if self.fits(make(mid)) else (lo, mid - 1)
        return lo

    def largest_chunk(self) -> int | None:
        """Chunk memory is ceil(nt/c) states + c snapshots: smallest near c* = sqrt(nt * state / snapshot),
        growing with c beyond it."""
        nt = self.stepper.nt
        state = math.prod(self.stepper.initial().shape)
        snapshot = math.prod(self.stepper.snapshot_shape)
        best = min(nt, max(1, round(math.sqrt(nt * state / snapshot))))
        return self._largest(self.chunk, best, nt)

    def choose(self) -> Plan:
        nt = self.stepper.nt
        tried = []

        def done(memory: MemoryOptions, what: str) -> Plan:
            r = self.price(memory)
            limits = f"predicted peak {_mib(r.peak_memory_bytes)} in memory (budget {_mib(self.budget)})"
            if self.auto.disk_budget:
                limits += f", {_mib(r.peak_bytes.get('disk', 0))} on disk (disk_budget {_mib(self.disk_budget)})"
            skipped = f"; too large: {', '.join(tried)}" if tried else ""
            reason = f"strategy='auto' chose {what}: {limits}{skipped}"
            log.info(reason)
            return Plan(memory, r, reason)

        def miss(what: str, memory: MemoryOptions | None) -> None:
            tried.append(what if memory is None else f"{what} {_mib(self.price(memory).peak_memory_bytes)}")

        for memory, what in ((self.full(), "full storage"), (self.boundary("gpu"), "boundary saving on the device")):
            if self.fits(memory):
                return done(memory, what)
            miss(what, memory)
        chunks = self.largest_chunk()
        if chunks is not None:
            return done(self.chunk(chunks), f"chunk checkpointing (chunks={chunks})")
        miss("chunk checkpointing", None)
        if self.disk_budget:
            if self.fits(self.boundary("disk")):
                return done(self.boundary("disk"), "boundary saving staged to disk")
            miss("boundary saving on disk", self.boundary("disk"))
        count = self._largest(self.recursive, 1, max(1, nt - 1))
        if count is not None:
            return done(self.recursive(count), f"Revolve checkpointing (count={count})")
        miss("Revolve", None)
        if self.disk_budget:
            disk_count = self._largest(lambda d: self.recursive(1, d), 1, max(1, nt - 1))
            if disk_count is not None:
                count = self._largest(lambda c: self.recursive(c, disk_count), 1, max(1, nt - 1))
                return done(self.recursive(count, disk_count),
                            f"multistage checkpointing (count={count}, disk_count={disk_count})")
        raise ValueError(self._nothing_fits())

    def _nothing_fits(self) -> str:
        """The error when nothing fits: the smallest budget that would work with this disk budget, and
        what a larger disk budget would allow."""
        revolve, staged = self.price(self.recursive(1)), self.price(self.boundary("disk"))
        options = [(revolve.peak_memory_bytes, 0, "Revolve with one state"),
                   (staged.peak_memory_bytes, staged.peak_bytes.get("disk", 0), "boundary saving staged to disk")]
        usable = [o for o in options if o[1] <= self.disk_budget]
        smallest = min(usable)
        disk = f"with disk_budget {_mib(self.disk_budget)}" if self.auto.disk_budget else "without disk"
        text = (f"MemoryOptions(strategy='auto', budget={self.budget}): no exact strategy fits {_mib(self.budget)} "
                f"{disk}; the smallest budget that works is {_mib(smallest[0])} ({smallest[0]} bytes, {smallest[2]})")
        better = [o for o in options if o[1] > self.disk_budget and o[0] < smallest[0]]
        for nbytes, disk_bytes, what in better:
            text += f", or {_mib(nbytes)} with disk_budget >= {_mib(disk_bytes)} ({disk_bytes} bytes, {what})"
        return text


def plan(auto: MemoryOptions, stepper, nshots: int, nrec: int) -> Plan:
    """The strategy ``auto`` (``strategy='auto'``) picks for a call with ``stepper``."""
    return Planner(auto, stepper, nshots, nrec).choose()
