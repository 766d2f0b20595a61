"""Adjoint schedules over the :class:`~sweep.memory.protocol.Stepper` protocol.

Each schedule has a forward part (run all steps, keep what the reverse part needs and return it as a
tuple of tensors, the "tape") and a reverse part (walk the steps backwards calling
``stepper.adjoint``). They are written once and serve every back-end.
"""
from __future__ import annotations

import torch

from .protocol import Stepper
from .store import DeviceStore


class FullStorage:
    """Keep every step's snapshot: no recomputation, ``nt`` snapshots of memory."""

    name = "full"

    def forward(self, stepper: Stepper, store: DeviceStore, record: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = stepper.initial()
        kept = store.allocate("snapshots", (stepper.nt, *stepper.snapshot_shape), state)
        stepper.advance(state, 0, stepper.nt, record=record, keep=kept)
        store.report.forward_steps += stepper.nt
        return (kept,)

    def backward(self, stepper: Stepper, store: DeviceStore, tape: tuple[torch.Tensor, ...],
                 grad_record: torch.Tensor) -> None:
        (kept,) = tape
        adj = torch.zeros_like(stepper.initial())
        stepper.adjoint(adj, kept, 0, stepper.nt, grad_record)
        store.report.adjoint_steps += stepper.nt


class ChunkCheckpointing:
    """Keep the state every ``chunk`` steps; in reverse, replay one chunk at a time (keeping its
    snapshots) and walk it backwards. Memory: ``ceil(nt / chunk)`` states + ``chunk`` snapshots + one
    working state; one replayed forward pass."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self.name = f"ckpt-chunk({chunk})"

    def _bounds(self, nt: int) -> list[tuple[int, int]]:
        return [(n0, min(n0 + self.chunk, nt)) for n0 in range(0, nt, self.chunk)]

    def forward(self, stepper: Stepper, store: DeviceStore, record: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = stepper.initial()
        bounds = self._bounds(stepper.nt)
        checkpoints = store.allocate("checkpoints", (len(bounds), *state.shape), state)
        for c, (n0, n1) in enumerate(bounds):
            checkpoints[c].copy_(state)
            stepper.advance(state, n0, n1, record=record)
        store.report.forward_steps += stepper.nt
        return (checkpoints,)

    def backward(self, stepper: Stepper, store: DeviceStore, tape: tuple[torch.Tensor, ...],
                 grad_record: torch.Tensor) -> None:
        (checkpoints,) = tape
        chunk_snapshots = store.allocate("chunk_snapshots", (min(self.chunk, stepper.nt), *stepper.snapshot_shape),
                                         checkpoints)
        work = store.allocate("replay_state", tuple(checkpoints.shape[1:]), checkpoints)
        adj = torch.zeros_like(work)
        for c, (n0, n1) in reversed(list(enumerate(self._bounds(stepper.nt)))):
            work.copy_(checkpoints[c])
            stepper.advance(work, n0, n1, keep=chunk_snapshots)
            store.report.replayed_steps += n1 - n0
            stepper.adjoint(adj, chunk_snapshots, n0, n1, grad_record)
            store.report.adjoint_steps += n1 - n0
