"""Optimal binomial (Revolve) and multistage (RAM + disk) checkpointing over the
:class:`~sweep.memory.protocol.Stepper` protocol, driven by ``checkpoint_schedules``.

The schedule is ``checkpoint_schedules.MultistageCheckpointSchedule(nt, count, disk_count)``: a stream
of actions (``Forward``, ``Reverse``, ``Copy``, ``Move``, ``EndForward``, ``EndReverse``) that this
module carries out on the seam. The forward part runs the actions up to ``EndForward``; the backward
part continues the same iterator up to ``EndReverse``.
"""
from __future__ import annotations

import functools
import os

import torch
from checkpoint_schedules import (Copy, EndForward, EndReverse, Forward, Move, MultistageCheckpointSchedule,
                                  Reverse, StorageType)

from .protocol import Stepper, image_interval, imaged_steps
from .schedules import new_adjoint, new_state, snapshot_block, state_part
from .serial import copy_into
from .store import DiskStore, Tape, TensorStore, Workspace


class _Slots:
    """Checkpoint slots of one storage type: one state per item of ``store``, a map step -> slot."""

    def __init__(self, store: TensorStore | DiskStore | None, kind: StorageType, capacity: int) -> None:
        self.store, self.kind, self.capacity = store, kind, capacity
        self.free = list(range(capacity - 1, -1, -1))  # pop() hands out slot 0 first
        self.slot_of: dict[int, int] = {}
        self.peak = 0

    def write(self, n: int, state: torch.Tensor) -> None:
        if n in self.slot_of:
            raise RuntimeError(f"ckpt-recursive: the schedule stores step {n} in {self.kind.name} twice")
        if not self.free:
            raise RuntimeError(f"ckpt-recursive: the schedule stores more states in {self.kind.name} than its "
                               f"{self.capacity} slots (step {n}; held: {sorted(self.slot_of)})")
        slot = self.free.pop()
        self.slot_of[n] = slot
        self.store.write(slot, slot + 1, [state.unsqueeze(0)])
        self.peak = max(self.peak, len(self.slot_of))

    def read(self, n: int, out: torch.Tensor, remove: bool) -> None:
        if n not in self.slot_of:
            raise RuntimeError(f"ckpt-recursive: the schedule reads step {n} from {self.kind.name}, which holds "
                               f"{sorted(self.slot_of)}")
        slot = self.slot_of[n]
        copy_into(out, self.store.read(slot, slot + 1)[0][0])
        if remove:
            self.free.append(self.slot_of.pop(n))


class _Plan:
    """What one walk of the schedule for ``nt`` steps needs: the most states held at once in RAM and
    on disk, the most snapshots held at once (of the imaged steps, every ``every``-th), and the forward
    steps."""

    def __init__(self, nt: int, count: int, disk_count: int, every: int = 1) -> None:
        held = {StorageType.RAM: set(), StorageType.DISK: set()}
        self.slots = {StorageType.RAM: 0, StorageType.DISK: 0}
        self.block = self.first_steps = self.replayed_steps = 0
        pending, first = None, True
        for action in MultistageCheckpointSchedule(nt, count, disk_count):
            if isinstance(action, Forward):
                if action.write_ics and action.storage in held:
                    held[action.storage].add(action.n0)
                    self.slots[action.storage] = max(self.slots[action.storage], len(held[action.storage]))
                if action.write_adj_deps:
                    pending = (pending[0] if pending and pending[1] == action.n0 else action.n0, action.n1)
                    self.block = max(self.block, imaged_steps(every, *pending))
                else:
                    pending = None
                if first:
                    self.first_steps += action.n1 - action.n0
                else:
                    self.replayed_steps += action.n1 - action.n0
            elif isinstance(action, Reverse):
                pending = None if pending is None or pending[0] >= action.n0 else (pending[0], action.n0)
            elif isinstance(action, (Copy, Move)):
                if isinstance(action, Move) and action.from_storage in held:
                    held[action.from_storage].discard(action.n)
                if action.to_storage in held:
                    held[action.to_storage].add(action.n)
                    self.slots[action.to_storage] = max(self.slots[action.to_storage], len(held[action.to_storage]))
            elif isinstance(action, EndForward):
                first = False
            elif isinstance(action, EndReverse):
                break
        if self.slots[StorageType.RAM] > count or self.slots[StorageType.DISK] > disk_count:
            raise RuntimeError(f"ckpt-recursive: the schedule for nt={nt} holds {self.slots[StorageType.RAM]} states "
                               f"in memory and {self.slots[StorageType.DISK]} on disk, more than count={count}, "
                               f"disk_count={disk_count}")


@functools.lru_cache(maxsize=64)
def _plan(nt: int, count: int, disk_count: int, every: int) -> _Plan:
    """One walk per (nt, count, disk_count, every) in the process: schedule objects (a plan per call shape,
    the planner's candidates) share it, and a plan is never changed after it is built."""
    return _Plan(nt, count, disk_count, every)


def _rows(every: int, p0: int, n0: int, n1: int) -> slice:
    """The rows of a snapshot block that starts at step ``p0`` holding the snapshots of steps ``n0 .. n1 - 1``
    (those of the imaged steps, every ``every``-th)."""
    return slice(imaged_steps(every, p0, n0), imaged_steps(every, p0, n1))


class _Run:
    """One propagation call's walk of the schedule: the action iterator, the checkpoint slots, the
    working state and the block of snapshots held for the next ``Reverse``."""

    def __init__(self, actions, slots: dict[StorageType, _Slots], block: torch.Tensor | None) -> None:
        self.actions, self.slots, self.block = actions, slots, block
        self.work: torch.Tensor | None = None
        self.work_n: int | None = None  # the step the working state is at (None: unknown)
        self.pending: tuple[int, int] | None = None  # steps [p0, p1) whose (imaged steps') snapshots lead block
        self.adjoint_n: int | None = None  # the step the adjoint state is at
        self.consumed = False  # the backward part has started: the checkpoints are no longer those of the forward


def _actions_until(run: _Run, end: type):
    """The run's next actions up to (not including) the first ``end`` action; RuntimeError if none comes."""
    for action in run.actions:
        if isinstance(action, end):
            return
        yield action
    raise RuntimeError(f"ckpt-recursive: the schedule ended without {end.__name__}")


class RecursiveTape(Tape):
    """A :class:`~sweep.memory.store.Tape` that also carries the call's schedule walk (``run``).

    Only the disk stores are named on the tape (so that the driver refuses a second backward pass after
    their files are removed); the in-memory checkpoints are held by ``run``, not saved for backward by
    autograd, because the backward part rewrites their slots (a saved tensor written in place would make a
    second backward pass fail autograd's version check instead of replaying).
    """

    def __init__(self, run: _Run, **stores) -> None:
        super().__init__(**stores)
        self.run = run


class RecursiveCheckpointing:
    """Optimal binomial checkpointing (Griewank & Walther's Revolve) of at most ``count`` states in
    ``storage`` (the state at step 0 included) plus one working state and one step's snapshot; with
    ``disk_count`` > 0 the multistage schedule (Stumm & Walther) of ``count`` states in ``storage`` and
    ``disk_count`` on disk. The schedule is ``checkpoint_schedules.MultistageCheckpointSchedule``.

    Step-count convention (that of ``checkpoint_schedules.optimal_steps_binomial(nt, s)``): the total of
    forward steps, first sweep (``nt``) and replays together, is ``optimal_steps_binomial(nt, s)`` with
    ``s = min(count + disk_count, nt - 1)`` states (the multistage schedule distributes the same binomial
    schedule of ``s`` states over memory and disk). States are restart points, not the adjoint's
    snapshots: the adjoint of step ``n`` needs step ``n``'s snapshot, which only advancing step ``n``
    writes, so every step but the last is replayed at least once and even ``count >= nt - 1`` costs
    ``2 nt - 1`` steps (``nt - 1`` states are ever used). ``count = 1`` costs ``nt (nt + 1) / 2``;
    ``nt = 2000, count = 8`` costs 11998 (2000 + 9998 replayed). The report's ``notes`` say so per call.

    Memory: ``min(count, nt - 1)`` states in ``storage`` and ``min(disk_count, nt - 1)`` on disk at most
    (the stores hold exactly as many slots as the schedule uses), one working state, one adjoint state
    and the snapshots of the longest run of steps the schedule reverses at once (one step).

    A second backward pass (``retain_graph=True``) finds the checkpoints consumed by the first and replays
    the schedule from step 0 (in-memory storage only; the driver refuses it once files are removed).

    Parameters
    ----------
    count : int
        States kept in ``storage`` (at least 1).
    storage : {'device', 'gpu', 'cpu', 'disk'}
        Where those states live; ``disk_dir`` for 'disk'.
    disk_count : int
        Additional states in files on disk (multistage); 0 for plain Revolve.
    disk_dir : path or None
        Parent of the private directory for states on disk.
    """

    def __init__(self, count: int, storage: str = "device", disk_count: int = 0,
                 disk_dir: str | os.PathLike | None = None) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"CkptOptions.count must be a positive integer, got {count!r}")
        if isinstance(disk_count, bool) or not isinstance(disk_count, int) or disk_count < 0:
            raise ValueError(f"CkptOptions.disk_count must be an integer >= 0, got {disk_count!r}")
        self.count, self.storage, self.disk_count, self.disk_dir = count, storage, disk_count, disk_dir
        where = "" if storage in ("device", "gpu") else f", {storage}"
        disk = f", disk {disk_count}" if disk_count else ""
        self.name = f"ckpt-recursive({count}{where}{disk})"

    def plan(self, nt: int, every: int = 1) -> _Plan:
        """The slots, snapshot block and step counts of the schedule for ``nt`` steps, imaging every
        ``every``-th (one walk, cached)."""
        return _plan(nt, self.count, self.disk_count, every)

    def _plan_for(self, stepper: Stepper) -> _Plan:
        """:meth:`plan` for ``stepper``'s steps and imaging interval."""
        return self.plan(stepper.nt, image_interval(stepper))

    # -- the two parts -------------------------------------------------------------------------
    def forward(self, stepper: Stepper, ws: Workspace, record: torch.Tensor) -> Tape:
        plan = self._plan_for(stepper)
        run = self._start(stepper, ws, plan)
        self._sweep(stepper, ws, run, record)
        ws.report.notes.append(
            f"{self.name}: {plan.first_steps + plan.replayed_steps} forward steps in all ({plan.first_steps} + "
            f"{plan.replayed_steps} replayed) = checkpoint_schedules.optimal_steps_binomial(nt, min(states, nt - 1)); "
            f"states are restart points, so even count >= nt - 1 replays nt - 1 steps (2 nt - 1 in all)")
        disk = {f"checkpoints_{s.kind.name.lower()}": s.store for s in run.slots.values()
                if isinstance(s.store, DiskStore)}
        return RecursiveTape(run, **disk)

    def backward(self, stepper: Stepper, ws: Workspace, tape: Tape, grad_record: torch.Tensor) -> None:
        run = tape.run
        if run.consumed:  # a second backward pass: the first rewrote the checkpoints; replay from step 0
            run = tape.run = self._start(stepper, ws, self._plan_for(stepper))
            self._sweep(stepper, ws, run, None, replay=True)
        run.consumed = True
        run.work = new_state(stepper, ws, "replay_state")
        run.work_n = None  # the forward state at nt was released; the schedule restarts from a checkpoint
        adj = new_adjoint(stepper, ws)
        run.adjoint_n = stepper.nt
        try:
            if ws.dry:  # a prediction: the plan's walk of these very actions counted the steps
                ws.report.replayed_steps += self._plan_for(stepper).replayed_steps
                ws.report.adjoint_steps += stepper.nt
                run.adjoint_n = 0
            else:
                for action in _actions_until(run, EndReverse):
                    self._do(action, stepper, ws, run, None, True, adj, grad_record)
            if run.adjoint_n != 0:
                raise RuntimeError(f"ckpt-recursive: the schedule's reverse part stopped at step {run.adjoint_n}")
        finally:
            self._release(ws, run, adj)

    # -- carrying out the actions ---------------------------------------------------------------
    def _start(self, stepper: Stepper, ws: Workspace, plan: _Plan) -> _Run:
        """A fresh schedule iterator with its slots (stores sized to what the schedule uses) and block."""
        state = new_state(stepper, ws, "forward_state")
        slots = {}
        for kind, storage, name in ((StorageType.RAM, self.storage, "checkpoints"),
                                    (StorageType.DISK, "disk", "disk_checkpoints")):
            n = plan.slots[kind]
            store = ws.store(name, storage, [state_part(stepper, state)], n, disk_dir=self.disk_dir,
                             option="CkptOptions.storage") if n else None
            slots[kind] = _Slots(store, kind, n)
        block = snapshot_block(stepper, ws, "snapshots", plan.block, state) if plan.block else None
        # A dry run (a prediction) walks no actions: the buffers above are all the schedule allocates
        # (a multistage schedule copies no state between memory and disk), and the plan, one walk of
        # the same actions, has the step counts. Walking them again would cost ~0.2 s at nt = 10^4.
        actions = None if ws.dry else iter(MultistageCheckpointSchedule(stepper.nt, self.count, self.disk_count))
        run = _Run(actions, slots, block)
        run.work, run.work_n = state, 0
        return run

    def _sweep(self, stepper: Stepper, ws: Workspace, run: _Run, record: torch.Tensor | None,
               replay: bool = False) -> None:
        """The actions up to ``EndForward``: the first sweep, recording into ``record``."""
        try:
            if ws.dry:
                ws.report.forward_steps += self._plan_for(stepper).first_steps
                run.work_n = stepper.nt
            else:
                for action in _actions_until(run, EndForward):
                    self._do(action, stepper, ws, run, record, replay, None, None)
            if run.work_n != stepper.nt:
                raise RuntimeError(f"ckpt-recursive: the schedule's forward part stopped at step {run.work_n}")
        finally:
            ws.free(run.work)  # the state at nt: the reverse part restarts from checkpoints
            run.work, run.work_n = None, None

    def _do(self, action, stepper: Stepper, ws: Workspace, run: _Run, record: torch.Tensor | None, replay: bool,
            adj: torch.Tensor | None, grad_record: torch.Tensor | None) -> None:
        if isinstance(action, Forward):
            n0, n1 = action.n0, action.n1
            if run.work_n != n0:
                raise RuntimeError(f"ckpt-recursive: {action} but the working state is at step {run.work_n}")
            if action.write_ics:
                if action.storage not in run.slots:
                    raise RuntimeError(f"ckpt-recursive: unsupported action {action}")
                run.slots[action.storage].write(n0, run.work)
            keep = None
            if action.write_adj_deps:
                p0 = run.pending[0] if run.pending is not None and run.pending[1] == n0 else n0
                every = image_interval(stepper)
                held = 0 if run.block is None else run.block.shape[0]
                if imaged_steps(every, p0, n1) > held:
                    raise RuntimeError(f"ckpt-recursive: {action} holds more snapshots than the block of {held}")
                run.pending = (p0, n1)
                if run.block is not None:
                    keep = run.block[_rows(every, p0, n0, n1)]
            else:
                run.pending = None
            stepper.advance(run.work, n0, n1, record=record, keep=keep)
            run.work_n = n1
            if replay:
                ws.report.replayed_steps += n1 - n0
            else:
                ws.report.forward_steps += n1 - n0
        elif isinstance(action, Reverse):
            n1, n0 = action.n1, action.n0
            if adj is None:
                raise RuntimeError(f"ckpt-recursive: {action} in the forward part")
            if run.adjoint_n != n1:
                raise RuntimeError(f"ckpt-recursive: {action} but the adjoint state is at step {run.adjoint_n}")
            if run.pending is None or not (run.pending[0] <= n0 and run.pending[1] == n1):
                raise RuntimeError(f"ckpt-recursive: {action} but the snapshots held are of steps {run.pending}")
            p0 = run.pending[0]
            stepper.adjoint(adj, run.block[_rows(image_interval(stepper), p0, n0, n1)], n0, n1, grad_record)
            ws.report.adjoint_steps += n1 - n0
            run.adjoint_n = n0
            run.pending = (p0, n0) if p0 < n0 and not action.clear_adj_deps else None
        elif isinstance(action, (Copy, Move)):
            source = run.slots.get(action.from_storage)
            if source is None:
                raise RuntimeError(f"ckpt-recursive: unsupported action {action}")
            if action.to_storage == StorageType.WORK:
                source.read(action.n, run.work, remove=isinstance(action, Move))
                run.work_n = action.n
                run.pending = None
            elif action.to_storage in run.slots:  # between memory and disk (not in a multistage schedule)
                staging = ws.adopt("checkpoint_staging", torch.empty_like(run.work), role="staging")
                source.read(action.n, staging, remove=isinstance(action, Move))
                run.slots[action.to_storage].write(action.n, staging)
                ws.free(staging)
            else:
                raise RuntimeError(f"ckpt-recursive: unsupported action {action}")
        else:
            raise RuntimeError(f"ckpt-recursive: unexpected action {action}")

    def _release(self, ws: Workspace, run: _Run, adj: torch.Tensor) -> None:
        """Free the working buffers and the in-memory checkpoints (files go when the workspace closes)."""
        ws.free(adj)
        if run.work is not None:
            ws.free(run.work)
        if run.block is not None:
            ws.free(run.block)
        for s in run.slots.values():
            if isinstance(s.store, TensorStore) and s.store.data is not None:
                ws.free(*s.store.data)
                s.store.data = None
        run.work = run.block = None
