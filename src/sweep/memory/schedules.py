"""Adjoint schedules over the :class:`~sweep.memory.protocol.Stepper` protocol.

Each schedule has a forward part (run all steps, keep what the reverse part needs and return it as a
tuple of tensors, the "tape") and a reverse part (walk the steps backwards calling ``stepper.adjoint``).
They are written once and serve every back-end.
"""
from __future__ import annotations

import torch

from .protocol import Stepper
from .store import DeviceStore


class FullStorage:
    """Keep the state at the start of every step: no recomputation, ``nt`` states of memory."""

    name = "full"

    def forward(self, stepper: Stepper, store: DeviceStore, record: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = stepper.initial()
        kept = store.allocate("states", (stepper.nt, *state.shape), state)
        stepper.advance(state, 0, stepper.nt, record=record, keep=kept)
        store.report.forward_steps += stepper.nt
        return (kept,)

    def backward(self, stepper: Stepper, store: DeviceStore, tape: tuple[torch.Tensor, ...],
                 grad_record: torch.Tensor) -> None:
        (kept,) = tape
        adj = torch.zeros_like(kept[0])
        for n in range(stepper.nt - 1, -1, -1):
            stepper.adjoint(adj, kept[n], n, grad_record[:, n])
        store.report.adjoint_steps += stepper.nt


class ChunkCheckpointing:
    """Keep the state every ``chunk`` steps; in reverse, replay one chunk at a time (keeping its
    states) and walk it backwards. Memory: ``ceil(nt / chunk) + chunk`` states; one replayed forward."""

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
        bounds = self._bounds(stepper.nt)
        chunk_states = store.allocate("chunk_states", (min(self.chunk, stepper.nt), *checkpoints.shape[1:]), checkpoints)
        work = store.allocate("replay_state", tuple(checkpoints.shape[1:]), checkpoints)
        adj = torch.zeros_like(work)
        for c in range(len(bounds) - 1, -1, -1):
            n0, n1 = bounds[c]
            work.copy_(checkpoints[c])
            stepper.advance(work, n0, n1, keep=chunk_states)
            store.report.replayed_steps += n1 - n0
            for n in range(n1 - 1, n0 - 1, -1):
                stepper.adjoint(adj, chunk_states[n - n0], n, grad_record[:, n])
            store.report.adjoint_steps += n1 - n0
