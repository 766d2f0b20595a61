"""Boundary saving: keep each step's boundary strip and the last fields; rebuild backwards in time.

Forward: every step writes its strip (for the acoustic stepper ``u_{n-1}`` on the physical cells
within one stencil radius of an absorbing edge) into a staging ring of ``interval`` steps; each full
ring is encoded by the codec and written to the store (device, host or disk). At the end the
rebuild fields (``u_nt``, ``u_{nt-1}`` on the physical grid) are kept losslessly in the same store
location, and the padded forward state is released.

Backward: blocks of ``interval`` steps, last block first: read and decode the block's strips,
``stepper.retreat`` rebuilds the fields backwards through the block writing each step's snapshot,
and ``stepper.adjoint`` consumes the snapshots. Stored bytes:
``nt * (bytes of one encoded strip) + bytes of the rebuild fields``.
"""
from __future__ import annotations

import os

import torch

from .codecs import BlockScaled, Cast
from .protocol import Stepper
from .schedules import blocks, new_adjoint, new_state, snapshot_block
from .store import Part, Tape, Workspace


class BoundarySaving:
    """Boundary saving with strips in ``storage``, encoded by ``codec``.

    Parameters
    ----------
    storage : {'gpu', 'device', 'cpu', 'disk'}
    codec : Cast or BlockScaled
    interval : int
        Steps per staging ring (one transfer / file write per ring) and per backward block.
    pinned : bool
        Page-locked host store for 'cpu' (CUDA only).
    disk_dir : path or None
        Parent of the private directory for 'disk'.
    """

    def __init__(self, storage: str, codec: Cast | BlockScaled, interval: int, pinned: bool = False,
                 disk_dir: str | os.PathLike | None = None) -> None:
        self.storage, self.codec, self.interval = storage, codec, interval
        self.pinned, self.disk_dir = pinned, disk_dir
        self.name = f"boundary({storage}, {codec.name})"

    def _store(self, ws: Workspace, name: str, parts: list[Part], count: int):
        return ws.store(name, self.storage, parts, count, pinned=self.pinned, disk_dir=self.disk_dir,
                        option="BoundaryOptions.storage")

    def forward(self, stepper: Stepper, ws: Workspace, record: torch.Tensor) -> Tape:
        state = new_state(stepper, ws, "forward_state")
        dtype = state.dtype
        strips = self._store(ws, "strips", self.codec.parts(stepper.strip_shape, dtype), stepper.nt)
        ring = ws.allocate("strip_ring", (min(self.interval, stepper.nt), *stepper.strip_shape), dtype,
                           role="staging")
        for n0, n1 in blocks(stepper.nt, self.interval):
            stepper.advance(state, n0, n1, record=record, strips=ring[:n1 - n0])
            strips.write(n0, n1, self.codec.encode(ring[:n1 - n0]))
        fields = self._store(ws, "fields", [Part("fields", stepper.rebuild_shape, dtype)], 1)
        last = ws.allocate("fields_staging", stepper.rebuild_shape, dtype, role="staging")
        stepper.save_fields(state, last)
        fields.write(0, 1, [last.unsqueeze(0)])
        ws.free(state, ring, last)
        ws.report.forward_steps += stepper.nt
        return Tape(strips=strips, fields=fields)

    def backward(self, stepper: Stepper, ws: Workspace, tape: Tape, grad_record: torch.Tensor) -> None:
        strips = tape["strips"]
        fields = ws.allocate("rebuild_fields", stepper.rebuild_shape, tape["fields"].parts[0].dtype)
        fields.copy_(tape["fields"].read(0, 1)[0][0])  # a copy: a second backward starts from them again
        steps = min(self.interval, stepper.nt)
        ring = ws.allocate("strip_ring", (steps, *stepper.strip_shape), fields.dtype, role="staging")
        snapshots = snapshot_block(stepper, ws, "snapshots", steps, fields)
        adj = new_adjoint(stepper, ws)
        for n0, n1 in reversed(blocks(stepper.nt, self.interval)):
            k = n1 - n0
            self.codec.decode(strips.read(n0, n1), ring[:k])
            stepper.retreat(fields, ring[:k], n0, n1, snapshots[:k])
            ws.report.rebuilt_steps += k
            stepper.adjoint(adj, snapshots, n0, n1, grad_record)
            ws.report.adjoint_steps += k
        ws.free(fields, ring, snapshots, adj)
