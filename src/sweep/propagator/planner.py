"""strategy='auto': the fastest exact memory strategy whose predicted footprint fits a budget.

Every candidate is priced by :func:`sweep.memory.predict.predict` (the candidate's own schedule run
dry), so a candidate that is chosen holds exactly the predicted bytes when it runs.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
from dataclasses import dataclass

import torch

from ..memory import MemoryReport, available
from ..memory.predict import ShapeOnlyStepper, predict
from .options import BoundaryOptions, CkptOptions, MemoryOptions
from .strategy import make_schedule

log = logging.getLogger("sweep")
MIB = 2**20


@dataclass
class Plan:
    """The chosen strategy (``what``: in words), its predicted report, and why it was chosen (one line)."""

    memory: MemoryOptions
    prediction: MemoryReport
    reason: str
    what: str


def _mib(nbytes: int) -> str:
    return f"{nbytes / MIB:,.2f} MiB"


def _source(options: object) -> str:
    """``options`` (a dataclass) as the constructor call that builds it: its first field, then the other
    fields that differ from their defaults, e.g. ``MemoryOptions('ckpt', ckpt=CkptOptions('recursive', count=3))``."""
    first, *rest = dataclasses.fields(options)
    given = [repr(getattr(options, first.name))]
    for f in rest:
        value = getattr(options, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if value != default:
            given.append(f"{f.name}={_source(value) if dataclasses.is_dataclass(value) else repr(value)}")
    return f"{type(options).__name__}({', '.join(given)})"


class Planner:
    """Prices candidates for one call shape (``stepper``: the call's stepper; shots and receivers) against
    ``budget`` bytes in memory and ``disk_budget`` bytes on disk (0: no disk); ``auto`` gives the
    candidates' transfer interval and disk directories, ``found`` says where unset budgets came from."""

    def __init__(self, auto: MemoryOptions, stepper, nshots: int, nrec: int, budget: int, disk_budget: int,
                 found: str = "") -> None:
        # One shape-only stepper for every candidate: the state's layout is read once, allocating nothing.
        self.stepper = ShapeOnlyStepper(stepper)
        self.auto, self.nshots, self.nrec = auto, nshots, nrec
        self.budget, self.disk_budget, self.found = budget, disk_budget, found
        item = torch.empty((), dtype=self.stepper.dtype).element_size()
        self.state_bytes = math.prod(self.stepper.state_shape) * item
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

    def _largest(self, make, lo: int, hi: int, guess: int | None = None) -> int | None:
        """The largest k in [lo, hi] with ``make(k)`` fitting, for footprints that grow with k; ``guess``,
        the likely answer, is priced first (with k + 1: two prices instead of a bisection's ~log2(hi))."""
        if not self.fits(make(lo)):
            return None
        if guess is not None and lo < guess:
            guess = min(guess, hi)
            if not self.fits(make(guess)):
                hi = guess - 1
            elif guess == hi or not self.fits(make(guess + 1)):
                return guess
            else:
                lo = guess + 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if self.fits(make(mid)) else (lo, mid - 1)
        return lo

    def _slots(self, make, lo: int, disk: bool = False) -> int:
        """The k at which ``make(k)`` would fill the budget (``disk``: the disk budget) if each k above
        ``lo`` adds one state to its peak, as a checkpoint slot does: Revolve's likely answer. Pricing a
        Revolve candidate walks its schedule (~50 ms at nt = 10^4), so a bisection over k is slow."""
        r = self.price(make(lo))
        used, limit = (r.peak_bytes.get("disk", 0), self.disk_budget) if disk else (r.peak_memory_bytes, self.budget)
        return lo + max(0, limit - used) // self.state_bytes

    def largest_chunk(self) -> int | None:
        """Chunk memory is ceil(nt/c) states + c snapshots: smallest near c* = sqrt(nt * state / snapshot),
        growing with c beyond it."""
        nt = self.stepper.nt
        state = math.prod(self.stepper.state_shape)
        snapshot = math.prod(self.stepper.snapshot_shape)
        best = min(nt, max(1, round(math.sqrt(nt * state / snapshot))))
        return self._largest(self.chunk, best, nt)

    def choose(self) -> Plan:
        nt = self.stepper.nt
        tried = []

        def done(memory: MemoryOptions, what: str) -> Plan:
            r = self.price(memory)
            limits = f"predicted peak {_mib(r.peak_memory_bytes)} in memory (budget {_mib(self.budget)})"
            if self.disk_budget:
                limits += f", {_mib(r.peak_bytes.get('disk', 0))} on disk (disk_budget {_mib(self.disk_budget)})"
            skipped = f"; too large: {', '.join(tried)}" if tried else ""
            found = f"; {self.found}" if self.found else ""
            return Plan(memory, r, f"strategy='auto' chose {what}: {limits}{skipped}{found}", what)

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
        top = max(1, nt - 1)
        count = self._largest(self.recursive, 1, top, self._slots(self.recursive, 1))
        if count is not None:
            return done(self.recursive(count), f"Revolve checkpointing (count={count})")
        miss("Revolve", None)
        if self.disk_budget:
            on_disk = lambda d: self.recursive(1, d)  # noqa: E731
            disk_count = self._largest(on_disk, 1, top, self._slots(on_disk, 1, disk=True))
            if disk_count is not None:
                in_memory = lambda c: self.recursive(c, disk_count)  # noqa: E731
                count = self._largest(in_memory, 1, top, self._slots(in_memory, 1))
                return done(self.recursive(count, disk_count),
                            f"multistage checkpointing (count={count}, disk_count={disk_count})")
        raise ValueError(self._nothing_fits())

    def smallest(self) -> tuple[int, int, str]:
        """(bytes in memory, bytes on disk, in words) of the smallest exact footprint in memory that this
        disk budget allows: Revolve with one state, or boundary saving staged to disk."""
        return min(o for o in self._smallest_options() if o[1] <= self.disk_budget)

    def _smallest_options(self) -> list[tuple[int, int, str]]:
        revolve, staged = self.price(self.recursive(1)), self.price(self.boundary("disk"))
        return [(revolve.peak_memory_bytes, 0, "Revolve with one state"),
                (staged.peak_memory_bytes, staged.peak_bytes.get("disk", 0), "boundary saving staged to disk")]

    def _nothing_fits(self) -> str:
        """The error when nothing fits: the smallest budget that would work with this disk budget, and
        what a larger disk budget would allow."""
        smallest = self.smallest()
        disk = f"with disk_budget {_mib(self.disk_budget)}" if self.disk_budget else "without disk"
        text = (f"MemoryOptions(strategy='auto', budget={self.budget}): no exact strategy fits {_mib(self.budget)} "
                f"{disk}; the smallest budget that works is {_mib(smallest[0])} ({smallest[0]} bytes, {smallest[2]})")
        better = [o for o in self._smallest_options() if o[1] > self.disk_budget and o[0] < smallest[0]]
        for nbytes, disk_bytes, what in better:
            text += f", or {_mib(nbytes)} with disk_budget >= {_mib(disk_bytes)} ({disk_bytes} bytes, {what})"
        if self.auto.gradient_interval == 1:  # 'auto' never approximates by itself; the user may choose to
            text += ("; an approximate model gradient needs less: MemoryOptions(gradient_interval=k) keeps the "
                     "snapshots of every k-th step only")
        return text + (f" ({self.found})" if self.found else "")


def _budgets(auto: MemoryOptions, device: torch.device, other_bytes: int) -> tuple[int, int, str]:
    """(budget, disk_budget, where they came from): ``auto``'s own, or for ``budget=None`` what is
    available on the compute device less the call's other arrays, and for ``disk_budget='available'``
    the free space of the disk directories (the smaller if they differ)."""
    found = []
    budget = auto.budget
    if budget is None:
        memory = available.host_memory() if device.type == "cpu" else available.device_memory(device)
        if memory is None:
            raise ValueError(f"MemoryOptions(strategy='auto') without budget=: the memory available on {device} "
                             "cannot be read on this system; give budget=, e.g. budget='4GiB'")
        budget = max(0, memory.nbytes - other_bytes)
        found.append(f"budget {_mib(budget)} = available {_mib(memory.nbytes)} ({memory.source}) less the call's "
                     f"other arrays {_mib(other_bytes)}, read when this call shape was planned")
    disk_budget = auto.disk_budget or 0
    if disk_budget == "available":
        disk = min((available.disk_space(d) for d in {auto.boundary.disk_dir, auto.ckpt.disk_dir}),
                   key=lambda a: a.nbytes)
        disk_budget = disk.nbytes
        found.append(f"disk_budget {_mib(disk_budget)} ({disk.source})")
    return budget, disk_budget, "; ".join(found)


def plan(auto: MemoryOptions, stepper, nshots: int, nrec: int, device: torch.device, other_bytes: int) -> Plan:
    """The strategy ``auto`` (``strategy='auto'``) picks for a call with ``stepper`` on ``device``
    whose arrays outside the strategy take ``other_bytes`` (used only when the budget is what is
    available); logged to ``'sweep'`` at INFO."""
    chosen = Planner(auto, stepper, nshots, nrec, *_budgets(auto, device, other_bytes)).choose()
    log.info(chosen.reason)
    return chosen


def suggest(stepper, nshots: int, nrec: int, budget: int | None, disk_budget: int,
            disk_dir: str | os.PathLike | None) -> str:
    """The memory guard's advice, one line: the fastest exact strategy whose tracked peak fits ``budget``
    bytes (None: unbounded) and ``disk_budget`` bytes on disk in ``disk_dir``, or, when none fits, the
    smallest footprint there is."""
    auto = MemoryOptions("auto", boundary=BoundaryOptions(disk_dir=disk_dir), ckpt=CkptOptions(disk_dir=disk_dir))
    planner = Planner(auto, stepper, nshots, nrec, sys.maxsize if budget is None else max(0, budget), disk_budget)
    try:
        chosen = planner.choose()
    except ValueError:
        nbytes, disk_bytes, what = planner.smallest()
        on_disk = f" and {_mib(disk_bytes)} on disk" if disk_bytes else ""
        return (f"no exact strategy fits what is available: the smallest is {what}, predicted peak {_mib(nbytes)} "
                f"in memory{on_disk} besides the call's other arrays; propagate fewer shots per call")
    r = chosen.prediction
    on_disk = f" and {_mib(r.peak_bytes['disk'])} on disk" if r.peak_bytes.get("disk") else ""
    return (f"the fastest exact strategy that fits what is available: {chosen.what}, memory={_source(chosen.memory)} "
            f"(predicted peak {_mib(r.peak_memory_bytes)} in memory{on_disk})")
