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

Per segment (ZFP, or ``skip_zero_strips``): the strip is cut into one segment per absorbing edge
(``stepper.strip_segments``), each with its own store. ZFP compresses each ring per segment and shot
as one 2-D array (time, r * L) (layers of the edge one after the other along the second axis) into a
variable-size store (fixed accuracy) or a preallocated one of exact item size (fixed rate). With
``skip_zero_strips`` a segment's store is created at the first step at which any of its values (any
shot) is non-zero, holding the steps from there to ``nt`` (ZFP: the rings from the one holding that
step); the rebuild uses zeros before it. The block codecs keep per segment exactly the codes and
scales the unsegmented encoding has for those cells, so skipping changes no decoded value.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from .codecs import ZFP, BlockScaled, Cast
from .compressed import as_blobs, blob_store, fixed_store, raw_store
from .protocol import Stepper
from .schedules import blocks, imaged, most_imaged, new_adjoint, new_state, snapshot_block
from .serial import copy_into, one_torch_thread
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
    skip_zero_strips : bool
        Store nothing for an edge segment before its first non-zero step (lossless).
    """

    def __init__(self, storage: str, codec: Cast | BlockScaled | ZFP, interval: int, pinned: bool = False,
                 disk_dir: str | os.PathLike | None = None, skip_zero_strips: bool = False) -> None:
        self.storage, self.codec, self.interval = storage, codec, interval
        self.pinned, self.disk_dir, self.skip = pinned, disk_dir, skip_zero_strips
        self.segmented = isinstance(codec, ZFP) or skip_zero_strips
        self.name = f"boundary({storage}, {codec.name}{', skip zeros' if skip_zero_strips else ''})"

    def _store(self, ws: Workspace, name: str, parts: list[Part], count: int):
        return ws.store(name, self.storage, parts, count, pinned=self.pinned, disk_dir=self.disk_dir,
                        option="BoundaryOptions.storage")

    def forward(self, stepper: Stepper, ws: Workspace, record: torch.Tensor) -> Tape:
        if self.segmented:
            return self._forward_segments(stepper, ws, record)
        state = new_state(stepper, ws, "forward_state")
        dtype = state.dtype
        strips = self._store(ws, "strips", self.codec.parts(stepper.strip_shape, dtype), stepper.nt)
        ring = ws.allocate("strip_ring", (min(self.interval, stepper.nt), *stepper.strip_shape), dtype,
                           role="staging")
        for n0, n1 in blocks(stepper.nt, self.interval):
            stepper.advance(state, n0, n1, record=record, strips=ring[:n1 - n0])
            if not ws.dry:  # a prediction needs the buffers, not the codec's arithmetic (slow on meta tensors)
                with one_torch_thread(ring.device):
                    strips.write(n0, n1, self.codec.encode(ring[:n1 - n0]))
        fields = self._store(ws, "fields", [Part("fields", stepper.rebuild_shape, dtype)], 1)
        last = ws.allocate("fields_staging", stepper.rebuild_shape, dtype, role="staging")
        stepper.save_fields(state, last)
        fields.write(0, 1, [last.unsqueeze(0)])
        ws.free(state, ring, last)
        ws.report.forward_steps += stepper.nt
        return Tape(strips=strips, fields=fields)

    def backward(self, stepper: Stepper, ws: Workspace, tape: Tape, grad_record: torch.Tensor) -> None:
        if self.segmented:
            return self._backward_segments(stepper, ws, tape, grad_record)
        strips = tape["strips"]
        fields = ws.allocate("rebuild_fields", stepper.rebuild_shape, tape["fields"].parts[0].dtype)
        copy_into(fields, tape["fields"].read(0, 1)[0][0])  # a copy: a second backward starts from them again
        steps = min(self.interval, stepper.nt)
        ring = ws.allocate("strip_ring", (steps, *stepper.strip_shape), fields.dtype, role="staging")
        bounds = blocks(stepper.nt, self.interval)
        snapshots = snapshot_block(stepper, ws, "snapshots", most_imaged(stepper, bounds), fields)
        adj = new_adjoint(stepper, ws)
        for n0, n1 in reversed(bounds):
            k = n1 - n0
            if not ws.dry:
                with one_torch_thread(ring.device):
                    self.codec.decode(strips.read(n0, n1), ring[:k])
            stepper.retreat(fields, ring[:k], n0, n1, snapshots[:imaged(stepper, n0, n1)])
            ws.report.rebuilt_steps += k
            stepper.adjoint(adj, snapshots, n0, n1, grad_record)
            ws.report.adjoint_steps += k
        ws.free(fields, ring, snapshots, adj)

    # -- per segment (ZFP, skip_zero_strips) ---------------------------------------------------------
    def _keep_fields(self, stepper: Stepper, ws: Workspace, state: torch.Tensor):
        fields = self._store(ws, "fields", [Part("fields", stepper.rebuild_shape, state.dtype)], 1)
        last = ws.allocate("fields_staging", stepper.rebuild_shape, state.dtype, role="staging")
        stepper.save_fields(state, last)
        fields.write(0, 1, [last.unsqueeze(0)])
        ws.free(last)
        return fields

    def _zfp_shapes(self, stepper: Stepper, seg: np.ndarray, k: int) -> list[tuple[int, int]]:
        """The arrays of one segment's ring of ``k`` steps: one (k, r * L) per shot."""
        return [(k, seg.size)] * int(np.prod(stepper.strip_shape[:-1]))

    def _new_segment_store(self, stepper: Stepper, ws: Workspace, edge: str, seg: np.ndarray, dtype: torch.dtype,
                           step: int, bounds: list[tuple[int, int]]):
        name = f"strips.{edge}"
        if isinstance(self.codec, ZFP):
            first = step // self.interval
            np_dtype = torch.empty((), dtype=dtype).numpy().dtype
            rings = [n1 - n0 for n0, n1 in bounds[first:]]
            # One size per ring length (all rings but the last are alike): nt / interval calls cost ~10 ms at nt = 10^4.
            size_of = {k: self.codec.max_bytes(self._zfp_shapes(stepper, seg, k), np_dtype) for k in set(rings)}
            sizes = [size_of[k] for k in rings]
            if self.codec.fixed_rate:
                return fixed_store(ws, name, self.storage, len(sizes), max(sizes), pinned=self.pinned,
                                   disk_dir=self.disk_dir, option="BoundaryOptions.storage")
            return blob_store(ws, name, self.storage, len(sizes), sum(sizes), disk_dir=self.disk_dir,
                              option="BoundaryOptions.storage")
        parts = [Part(p.name, (*p.shape[:-nd], len(idx)), p.dtype) for p, (nd, idx) in
                 zip(self.codec.parts(stepper.strip_shape, dtype), self.codec.positions(seg.reshape(-1)))]
        return self._store(ws, name, parts, stepper.nt - step)

    def _forward_segments(self, stepper: Stepper, ws: Workspace, record: torch.Tensor) -> Tape:
        state = new_state(stepper, ws, "forward_state")
        dtype, nt = state.dtype, stepper.nt
        dry = ws.dry
        segments = {e: np.asarray(s) for e, s in stepper.strip_segments.items()}
        index = {e: torch.from_numpy(s.reshape(-1)).to(state.device) for e, s in segments.items()}
        where = {} if isinstance(self.codec, ZFP) else {  # per segment, its values' places in each part
            e: [(nd, torch.from_numpy(idx).to(state.device)) for nd, idx in self.codec.positions(s.reshape(-1))]
            for e, s in segments.items()}
        bounds = blocks(nt, self.interval)
        ring = ws.allocate("strip_ring", (min(self.interval, nt), *stepper.strip_shape), dtype, role="staging")
        stores, first = {}, {}
        for b, (n0, n1) in enumerate(bounds):
            k = n1 - n0
            stepper.advance(state, n0, n1, record=record, strips=ring[:k])
            encoded = None
            with one_torch_thread(state.device):  # host work of the ring on one thread (serial.py)
                for edge, seg in segments.items():
                    if edge not in stores:
                        step = self._first_nonzero(ring[:k], index[edge], n0) if self.skip and not dry else n0
                        if step is None:
                            continue
                        first[edge] = step
                        stores[edge] = self._new_segment_store(stepper, ws, edge, seg, dtype, step, bounds)
                    if isinstance(self.codec, ZFP):
                        if not dry:
                            values = ring[:k][..., index[edge]].movedim(0, -2).reshape(-1, k, seg.size)
                            stores[edge].write_blob(b - first[edge] // self.interval,
                                                    self.codec.compress(list(values.detach().cpu().numpy())))
                        continue
                    if encoded is None:
                        encoded = self.codec.encode(ring[:k])
                    j0 = max(n0, first[edge])
                    stores[edge].write(j0 - first[edge], n1 - first[edge],
                                       [_gather(p[j0 - n0:], nd, idx) for p, (nd, idx) in zip(encoded, where[edge])])
        fields = self._keep_fields(stepper, ws, state)
        ws.free(state, ring)
        ws.report.forward_steps += nt
        self._note_skipped(stepper, ws, stores, first, dry)
        tape = Tape(fields=fields, **{f"strips.{e}": raw_store(s) for e, s in stores.items()})
        tape.first_steps = first
        return tape

    @staticmethod
    def _first_nonzero(ring: torch.Tensor, index: torch.Tensor, n0: int) -> int | None:
        """The first step of ``ring`` (step ``n0`` first) with a non-zero value on ``index`` (any shot)."""
        nonzero = ring[..., index].reshape(ring.shape[0], -1).ne(0).any(1)
        hits = torch.nonzero(nonzero).flatten().tolist()  # one host sync per ring until the edge is reached
        return n0 + hits[0] if hits else None

    def _note_skipped(self, stepper: Stepper, ws: Workspace, stores: dict, first: dict, dry: bool) -> None:
        if not self.skip:
            return
        if dry:
            ws.report.notes.append("skip_zero_strips: a dry run assumes no step is skipped (an upper bound)")
            return
        for edge, seg in stepper.strip_segments.items():
            step = first.get(edge, stepper.nt)
            skipped = step if not isinstance(self.codec, ZFP) else (step // self.interval) * self.interval
            ws.report.notes.append(f"skip_zero_strips: {edge} edge ({np.asarray(seg).size} cells) "
                                   f"{'never reached' if edge not in first else f'first non-zero at step {step}'}; "
                                   f"{skipped} of {stepper.nt} steps not stored")

    def _backward_segments(self, stepper: Stepper, ws: Workspace, tape: Tape, grad_record: torch.Tensor) -> None:
        fields = ws.allocate("rebuild_fields", stepper.rebuild_shape, tape["fields"].parts[0].dtype)
        copy_into(fields, tape["fields"].read(0, 1)[0][0])
        dry = ws.dry
        nt, steps = stepper.nt, min(self.interval, stepper.nt)
        ring = ws.allocate("strip_ring", (steps, *stepper.strip_shape), fields.dtype, role="staging")
        snapshots = snapshot_block(stepper, ws, "snapshots", most_imaged(stepper, blocks(nt, self.interval)), fields)
        adj = new_adjoint(stepper, ws)
        first = getattr(tape, "first_steps", {})
        segments = {e: np.asarray(s) for e, s in stepper.strip_segments.items() if e in first}
        index = {e: torch.from_numpy(s.reshape(-1)).to(ring.device) for e, s in segments.items()}
        lead = stepper.strip_shape[:-1]
        parts = None if isinstance(self.codec, ZFP) else self.codec.parts(stepper.strip_shape, fields.dtype)
        where = {} if parts is None else {
            e: [(nd, torch.from_numpy(idx).to(ring.device)) for nd, idx in self.codec.positions(s.reshape(-1))]
            for e, s in segments.items()}
        for b, (n0, n1) in reversed(list(enumerate(blocks(nt, self.interval)))):
            k = n1 - n0
            if not dry:  # host work of the ring on one thread (serial.py)
                with one_torch_thread(ring.device):
                    ring[:k].zero_()
                    full = None if parts is None else [torch.zeros((k, *p.shape), dtype=p.dtype, device=ring.device)
                                                       for p in parts]
                    for edge, seg in segments.items():
                        if first[edge] >= n1:
                            continue
                        if full is None:  # ZFP: the ring holding the first step is stored whole
                            blobs = as_blobs(tape[f"strips.{edge}"])
                            arrays = self.codec.decompress(blobs.read_blob(b - first[edge] // self.interval),
                                                           int(np.prod(lead)))
                            values = torch.from_numpy(np.stack(arrays)).reshape(*lead, k, seg.size).movedim(-2, 0)
                            ring[:k][..., index[edge]] = values.to(device=ring.device, dtype=ring.dtype)
                            continue
                        j0 = max(n0, first[edge])
                        got = tape[f"strips.{edge}"].read(j0 - first[edge], n1 - first[edge])
                        for f, (nd, idx), v in zip(full, where[edge], got):
                            _scatter(f[j0 - n0:], nd, idx, v)
                    if full is not None:
                        self.codec.decode(full, ring[:k])
            stepper.retreat(fields, ring[:k], n0, n1, snapshots[:imaged(stepper, n0, n1)])
            ws.report.rebuilt_steps += k
            stepper.adjoint(adj, snapshots, n0, n1, grad_record)
            ws.report.adjoint_steps += k
        ws.free(fields, ring, snapshots, adj)


def _gather(part: torch.Tensor, ndims: int, index: torch.Tensor) -> torch.Tensor:
    """``part`` (k, *lead, *trailing) -> (k, *lead, len(index)): the trailing ``ndims`` dims flattened,
    at ``index``."""
    return part.flatten(-ndims)[..., index] if ndims > 1 else part[..., index]


def _scatter(part: torch.Tensor, ndims: int, index: torch.Tensor, values: torch.Tensor) -> None:
    """The inverse of :func:`_gather`, in place on ``part`` (contiguous along its trailing dims)."""
    flat = part.view(*part.shape[:part.dim() - ndims], -1) if ndims > 1 else part
    flat[..., index] = values.to(flat.device)
