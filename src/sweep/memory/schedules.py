"""Full storage and chunk checkpointing over the :class:`~sweep.memory.protocol.Stepper` protocol.

A schedule has a forward part (run all steps, keep what the reverse part needs in stores of the
call's :class:`~sweep.memory.store.Workspace`, return them as a :class:`~sweep.memory.store.Tape`) and
a reverse part (walk the steps backwards calling ``stepper.adjoint``). Every buffer goes through the
workspace, so the report holds each one and its peak. Schedules are written once for every back-end.
"""
from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch

from .protocol import Stepper, image_interval, imaged_steps, state_layout
from .serial import copy_into
from .store import Part, Tape, Workspace


class Schedule(Protocol):
    """What the driver runs: ``forward`` keeps, ``backward`` consumes."""

    name: str

    def forward(self, stepper: Stepper, ws: Workspace, record: torch.Tensor) -> Tape:
        """Run steps 0 .. nt, recording receivers into ``record``; return what the reverse part needs."""

    def backward(self, stepper: Stepper, ws: Workspace, tape: Tape, grad_record: torch.Tensor) -> None:
        """Run the adjoint steps nt - 1 .. 0 with the snapshots the model gradient needs."""


def blocks(nt: int, size: int) -> list[tuple[int, int]]:
    """Steps 0 .. nt in consecutive ranges ``[n0, n1)`` of ``size`` steps (the last may be shorter)."""
    return [(n0, min(n0 + size, nt)) for n0 in range(0, nt, size)]


def state_part(stepper: Stepper, state: torch.Tensor) -> Part:
    return Part("state", tuple(state.shape), state.dtype)


def new_state(stepper: Stepper, ws: Workspace, name: str) -> torch.Tensor:
    """A fresh (zero) state of ``stepper``, tracked as working memory."""
    return ws.adopt(name, stepper.initial())


def new_adjoint(stepper: Stepper, ws: Workspace) -> torch.Tensor:
    """A zero adjoint state, tracked as working memory (allocated directly: ``zeros_like(initial())``
    would hold a second, untracked state for a moment, and a dry run must not fill a meta tensor,
    whose first fill costs PyTorch ~0.4 s of one-time setup)."""
    shape, dtype = state_layout(stepper)
    adj = ws.allocate("adjoint_state", shape, dtype)
    return adj if ws.dry else adj.zero_()


def snapshot_block(stepper: Stepper, ws: Workspace, name: str, steps: int, like: torch.Tensor) -> torch.Tensor:
    """A block of ``steps`` snapshots (tracked): a buffer a call over up to that many imaged steps keeps in."""
    return ws.allocate(name, (steps, *stepper.snapshot_shape), like.dtype)


def imaged(stepper: Stepper, n0: int, n1: int) -> int:
    """Snapshots of the steps ``n0 .. n1 - 1`` (those of the imaged steps: see the protocol's ``image_interval``)."""
    return imaged_steps(image_interval(stepper), n0, n1)


def most_imaged(stepper: Stepper, bounds: list[tuple[int, int]]) -> int:
    """The most snapshots any one of the ranges ``bounds`` holds: the block a walk over them needs."""
    return max(imaged(stepper, n0, n1) for n0, n1 in bounds)


class FullStorage:
    """Keep every (imaged) step's snapshot: no recomputation, ``nt`` (``ceil(nt / k)``) snapshots of memory."""

    name = "full"

    def forward(self, stepper: Stepper, ws: Workspace, record: torch.Tensor) -> Tape:
        state = new_state(stepper, ws, "forward_state")
        store = ws.store("snapshots", "device", [Part("snapshots", stepper.snapshot_shape, state.dtype)],
                         imaged(stepper, 0, stepper.nt))
        (kept,) = store.data
        stepper.advance(state, 0, stepper.nt, record=record, keep=kept)
        ws.free(state)
        ws.report.forward_steps += stepper.nt
        return Tape(snapshots=store)

    def backward(self, stepper: Stepper, ws: Workspace, tape: Tape, grad_record: torch.Tensor) -> None:
        (kept,) = tape["snapshots"].read(0, imaged(stepper, 0, stepper.nt))
        adj = new_adjoint(stepper, ws)
        stepper.adjoint(adj, kept, 0, stepper.nt, grad_record)
        ws.report.adjoint_steps += stepper.nt
        ws.free(adj)


class ChunkCheckpointing:
    """Keep the state every ``chunk`` steps (in ``storage``); in reverse, replay one chunk at a time
    (keeping its snapshots) and walk it backwards. Memory: ``ceil(nt / chunk)`` states + ``chunk``
    snapshots (of its imaged steps: ``ceil(chunk / k)``) + one working state; one replayed forward pass.

    Parameters
    ----------
    chunk : int
        Steps per chunk.
    storage : {'device', 'gpu', 'cpu', 'disk'}
        Where the checkpoints live; ``disk_dir`` for 'disk'.
    codec : ZFP or None
        None: checkpoints kept exactly. A :class:`~sweep.memory.codecs.ZFP`: each field of a checkpointed
        state (its last ``stepper.grid_ndim`` axes: 2-D or 3-D arrays) compressed (lossy checkpoints), in a store that grows with the data (fixed
        accuracy) or is preallocated exactly (fixed rate).
    """

    def __init__(self, chunk: int, storage: str = "device", disk_dir=None, codec=None) -> None:
        self.chunk, self.storage, self.disk_dir, self.codec = chunk, storage, disk_dir, codec
        where = "" if storage in ("device", "gpu") else f", {storage}"
        self.name = f"ckpt-chunk({chunk}{where}{'' if codec is None else ', ' + codec.name})"

    @staticmethod
    def _fields(shape: tuple[int, ...], ndim: int) -> list[tuple[int, ...]]:
        """A state as ZFP arrays: one per field, a field being the last ``ndim`` axes (the stepper's
        ``grid_ndim``), at most the whole state."""
        ndim = min(ndim, len(shape))
        return [tuple(shape[len(shape) - ndim:])] * math.prod(shape[:len(shape) - ndim])

    def forward(self, stepper: Stepper, ws: Workspace, record: torch.Tensor) -> Tape:
        if self.codec is not None:
            return self._forward_zfp(stepper, ws, record)
        state = new_state(stepper, ws, "forward_state")
        bounds = blocks(stepper.nt, self.chunk)
        store = ws.store("checkpoints", self.storage, [state_part(stepper, state)], len(bounds),
                         disk_dir=self.disk_dir, option="CkptOptions.storage")
        for c, (n0, n1) in enumerate(bounds):
            store.write(c, c + 1, [state.unsqueeze(0)])
            stepper.advance(state, n0, n1, record=record)
        ws.free(state)
        ws.report.forward_steps += stepper.nt
        return Tape(checkpoints=store)

    def _forward_zfp(self, stepper: Stepper, ws: Workspace, record: torch.Tensor) -> Tape:
        from .compressed import blob_store, fixed_store, raw_store

        state = new_state(stepper, ws, "forward_state")
        bounds = blocks(stepper.nt, self.chunk)
        fields = self._fields(tuple(state.shape), stepper.grid_ndim)
        size = self.codec.max_bytes(fields, torch.empty((), dtype=state.dtype).numpy().dtype)
        kw = dict(disk_dir=self.disk_dir, option="CkptOptions.storage")
        store = (fixed_store(ws, "checkpoints", self.storage, len(bounds), size, **kw) if self.codec.fixed_rate
                 else blob_store(ws, "checkpoints", self.storage, len(bounds), size * len(bounds), **kw))
        dry = ws.dry
        for c, (n0, n1) in enumerate(bounds):
            if not dry:
                host = state.detach().cpu().numpy().reshape(len(fields), *fields[0])
                store.write_blob(c, self.codec.compress(list(host)))
            stepper.advance(state, n0, n1, record=record)
        ws.free(state)
        ws.report.forward_steps += stepper.nt
        return Tape(checkpoints=raw_store(store))

    def _restore(self, store, c: int, work: torch.Tensor, ndim: int) -> None:
        if self.codec is None:
            copy_into(work, store.read(c, c + 1)[0][0])
            return
        from .compressed import as_blobs

        blob = as_blobs(store).read_blob(c)
        if blob is not None:  # None in a dry run
            arrays = self.codec.decompress(blob, len(self._fields(tuple(work.shape), ndim)))
            work.copy_(torch.from_numpy(np.stack(arrays)).reshape(work.shape))

    def backward(self, stepper: Stepper, ws: Workspace, tape: Tape, grad_record: torch.Tensor) -> None:
        store = tape["checkpoints"]
        work = new_state(stepper, ws, "replay_state")
        bounds = blocks(stepper.nt, self.chunk)
        snapshots = snapshot_block(stepper, ws, "chunk_snapshots", most_imaged(stepper, bounds), work)
        adj = new_adjoint(stepper, ws)
        for c, (n0, n1) in reversed(list(enumerate(bounds))):
            self._restore(store, c, work, stepper.grid_ndim)
            stepper.advance(work, n0, n1, keep=snapshots)
            ws.report.replayed_steps += n1 - n0
            stepper.adjoint(adj, snapshots, n0, n1, grad_record)
            ws.report.adjoint_steps += n1 - n0
        ws.free(work, snapshots, adj)
