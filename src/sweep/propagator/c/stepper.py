"""What the compiled steppers of every dimension share: argument checks, the run loop with its thread governor,
and the stepper protocol (:mod:`sweep.memory.protocol`) over three kernels (forward, adjoint, rebuild).

A subclass names its kernels (``KERNELS``: ``sweep_acoustic`` or ``sweep_acoustic3d``, then ``_forward_f32``
etc.), gives the ctypes mirror of their problem struct (``STRUCT``) and fills one in (``_make_struct``); the
kernels of both dimensions have the same signatures and the same state, snapshot, strip and rebuild layouts
(:mod:`sweep.propagator.acoustic_layout`).
"""
from __future__ import annotations

import ctypes
import math

import torch

from ..acoustic_layout import AcousticLayout
from ..setup import Problem
from ..threads import GOVERNOR
from . import library

__all__ = ["CStepper", "by_row", "interior", "BANDED_CALL_CELL_STEPS", "MIN_CELLS_PER_THREAD"]

#: Fewest grid cells (over all shots) per thread. Threads working on one shot wait for their neighbours
#: once per step (spinning briefly, then sleeping); on tiny grids a second thread costs more in
#: synchronisation than it saves.
MIN_CELLS_PER_THREAD = 16384
#: Cell updates (padded cells x steps) per kernel call when shots are cut into bands: longer blocks are run
#: as several calls, so that the thread governor (threads.py) can change the count within a block. About
#: 2 ms on two cores; the call overhead is some microseconds.
BANDED_CALL_CELL_STEPS = 2**22


def interior(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int]:
    """The index range [lo, hi) where the profile is absorption-free (a = 0, b = 1), which the kernels
    treat without C-PML terms; (0, 0) when there is no such contiguous range (all cells get C-PML terms,
    which is exact anyway)."""
    free = ((a == 0) & (b == 1)).tolist()
    if True not in free:
        return 0, 0
    lo = free.index(True)
    hi = len(free) - free[::-1].index(True)
    return (lo, hi) if all(free[lo:hi]) else (0, 0)


def by_row(rows: torch.Tensor, nrows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR of points by padded grid row: ``rows`` (nshots, n) holds each point's row within its shot (of
    ``nrows``); returns (ptr (nshots*nrows + 1,), order (nshots*n,)), the flat indices q = shot*n + k of
    row ``shot*nrows + i`` being ``order[ptr[row]:ptr[row + 1]]``, ascending."""
    nshots, n = rows.shape
    flat = (torch.arange(nshots).view(-1, 1) * nrows + rows.to(torch.int64)).reshape(-1)
    order = torch.sort(flat, stable=True).indices.to(torch.int64).contiguous()
    counts = torch.bincount(flat, minlength=nshots * nrows)
    ptr = torch.zeros(nshots * nrows + 1, dtype=torch.int64)
    ptr[1:] = torch.cumsum(counts, 0)
    return ptr.contiguous(), order


_declared: set[tuple[int, str]] = set()


class CStepper(AcousticLayout):
    """The stepper protocol on the compiled kernels named ``KERNELS`` (see the module docstring).

    Notes
    -----
    ``advance`` runs a whole block of steps in one C call (``torch.get_num_threads()`` threads, fewer on
    tiny grids: see ``MIN_CELLS_PER_THREAD``; whole shots per thread when there are at least as many shots
    as threads, otherwise bands of rows (2-D) or planes (3-D) of each shot, see ``acoustic_common.h``;
    banded blocks run as calls of at most ``BANDED_CALL_CELL_STEPS`` cell updates, each with the thread
    count of the governor in ``threads.py``, which uses fewer threads while the machine is oversubscribed);
    ``adjoint`` is the hand-written adjoint of a block of steps, also one C call, which needs no forward
    state: only the snapshots (S = du_next/dw on the physical grid) for the model gradient. The
    adjoint's psi/zeta components are only kept inside the absorbing layers: outside them the forward
    auxiliaries are identically zero, so nothing there can reach a gradient. Results do not depend on
    the number of threads (bit for bit): no sum is split across threads, and the model gradient is
    accumulated per shot and summed over shots in a fixed order.

    Boundary saving: ``advance(..., strips=)`` gathers each step's strip (u_{n-1} on
    ``grid.strip_cells()``) inside the same C call, and ``retreat`` rebuilds the physical wavefield
    backwards from them (one C call per block), its interior S_n computed by the forward's own
    arithmetic, as the eager stepper does.
    """

    KERNELS = ""  # kernel name prefix
    STRUCT: type[ctypes.Structure] = ctypes.Structure  # the kernels' problem struct
    NDIM = 0  # grid dimensions the kernels handle
    #: Fewest steps of a banded forward call (see ``_run``): the 3-D forward pipelines a call's steps over its
    #: threads.
    MIN_CALL_STEPS = 1

    def __init__(self, problem: Problem, models, image_interval: int = 1) -> None:
        lib = library.require()
        if problem.device.type != "cpu":
            raise ValueError(f"impl='c' runs on the CPU only, but the model is on {problem.device}; "
                             "move the model to the CPU or use impl='eager'")
        if problem.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"impl='c' supports float32 and float64, got {problem.dtype}")
        if problem.grid.ndim != self.NDIM:
            raise ValueError(f"{type(self).__name__} runs {self.NDIM}-D grids, got shape {problem.grid.shape}")
        super().__init__(problem, models, image_interval)
        sfx = "f32" if problem.dtype == torch.float32 else "f64"
        self._declare(lib)
        self._forward = getattr(lib, f"{self.KERNELS}_forward_{sfx}")
        self._adjoint = getattr(lib, f"{self.KERNELS}_adjoint_{sfx}")
        self._retreat = getattr(lib, f"{self.KERNELS}_retreat_{sfx}")
        self._shape = self.state_shape
        self._struct = self._make_struct()
        self._pstruct = ctypes.byref(self._struct)
        self._grad_w: torch.Tensor | None = None
        self._grad_wavelet: torch.Tensor | None = None
        self._adjoint_open = False

    @classmethod
    def _declare(cls, lib: ctypes.CDLL) -> None:
        """Signatures of this class's kernels (once per library)."""
        if (id(lib), cls.KERNELS) in _declared:
            return
        ptr, i64, stats = ctypes.c_void_p, ctypes.c_int64, ctypes.POINTER(library.RunStats)
        prob = ctypes.POINTER(cls.STRUCT)
        for sfx in ("f32", "f64"):
            fwd = getattr(lib, f"{cls.KERNELS}_forward_{sfx}")
            fwd.argtypes = [prob, ptr, i64, i64, ptr, ptr, ptr, ctypes.c_int, stats]
            fwd.restype = ctypes.c_int
            back = getattr(lib, f"{cls.KERNELS}_retreat_{sfx}")
            back.argtypes = [prob, ptr, ptr, i64, i64, ptr, ctypes.c_int, stats]
            back.restype = ctypes.c_int
            adj = getattr(lib, f"{cls.KERNELS}_adjoint_{sfx}")
            adj.argtypes = [prob, ptr, ptr, i64, i64, ptr, ptr, ptr, ctypes.c_int, stats]
            adj.restype = ctypes.c_int
        _declared.add((id(lib), cls.KERNELS))

    def _make_struct(self) -> ctypes.Structure:
        """The kernels' problem struct for this call (arrays it points to kept alive on ``self``)."""
        raise NotImplementedError

    def _real(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` as a contiguous CPU tensor of the call's dtype (no copy when it already is one)."""
        return t.detach().to(device="cpu", dtype=self.problem.dtype).contiguous()

    def _threads(self) -> int:
        """``torch.get_num_threads()``, capped so that each thread has at least MIN_CELLS_PER_THREAD cells."""
        cells = math.prod(self._shape[1:])
        return max(1, min(torch.get_num_threads(), cells // max(1, MIN_CELLS_PER_THREAD)))

    def _run(self, what: str, n0: int, n1: int, reverse: bool, kernel) -> None:
        """Runs ``kernel(m0, m1, threads, stats)`` over steps [n0, n1): one call when each thread takes whole
        shots; else (bands, which wait for each other every step) calls of at most BANDED_CALL_CELL_STEPS
        cell updates, the last block first when ``reverse``, each with the governor's thread count and
        reporting to it. Raises MemoryError when the kernel could not allocate."""
        requested = self._threads()
        banded = requested > 1 and self.problem.nshots < requested
        least = self.MIN_CALL_STEPS if what == "forward" else 1
        per = max(least, BANDED_CALL_CELL_STEPS // math.prod(self._shape[1:])) if banded else n1 - n0
        bounds = [(m, min(m + per, n1)) for m in range(n0, n1, per)]
        for m0, m1 in reversed(bounds) if reverse else bounds:
            threads = GOVERNOR.threads(requested) if banded else requested
            stats = library.RunStats()
            if kernel(m0, m1, threads, ctypes.byref(stats)) != 0:
                raise MemoryError(f"impl='c': the {what} kernel could not allocate its working memory "
                                  f"({threads} thread(s), steps {m0}..{m1})")
            if banded:
                GOVERNOR.observe(int(stats.threads), requested, stats.wall, stats.cpu)

    # -- the protocol -------------------------------------------------------------------------
    def _check(self, name: str, t: torch.Tensor, shape: tuple[int, ...]) -> None:
        if tuple(t.shape) != shape or t.dtype != self.problem.dtype or t.device.type != "cpu" or not t.is_contiguous():
            raise ValueError(f"{name} must be a contiguous CPU {self.problem.dtype} tensor of shape {shape}, got "
                             f"{t.dtype} {tuple(t.shape)} on {t.device} (contiguous={t.is_contiguous()})")

    def _check_kept(self, name: str, kept: torch.Tensor, n0: int, n1: int) -> None:
        """``kept`` holds (at least) the snapshots of the imaged steps among ``n0 .. n1 - 1``."""
        count = self.imaged(n0, n1)
        if kept.ndim != len(self.snapshot_shape) + 1 or kept.shape[0] < count:
            raise ValueError(f"{name} must hold at least {count} snapshots of shape {self.snapshot_shape}, "
                             f"got shape {tuple(kept.shape)}")
        self._check(name, kept, (kept.shape[0], *self.snapshot_shape))

    def _slots(self, snapshots: torch.Tensor | None, n0: int, m0: int) -> int | None:
        """Address of the snapshots of the imaged steps from ``m0`` on in a buffer that starts at step ``n0``
        (a kernel call over steps ``m0 ..``), or None without a buffer."""
        if snapshots is None:
            return None
        return snapshots.data_ptr() + self.imaged(n0, m0) * math.prod(self.snapshot_shape) * snapshots.element_size()

    def _check_strips(self, strips: torch.Tensor, count: int) -> None:
        if strips.ndim != 3 or strips.shape[0] < count:
            raise ValueError(f"strips must hold at least {count} strips of shape {self.strip_shape}, "
                             f"got shape {tuple(strips.shape)}")
        self._check("strips", strips, (strips.shape[0], *self.strip_shape))

    @torch.no_grad()
    def advance(self, state: torch.Tensor, n0: int, n1: int, record: torch.Tensor | None = None,
                keep: torch.Tensor | None = None, strips: torch.Tensor | None = None) -> None:
        """Steps ``n0 -> n1`` in place (native calls, see ``_run``); ``record[:, n]`` (nshots, nrec) gets step n's
        receiver samples; ``keep[self.imaged(n0, n)]`` (``snapshot_shape``) gets imaged step n's snapshot;
        ``strips[n - n0]`` (``strip_shape``) gets step n's strip, u_{n-1} on the strip cells."""
        if not 0 <= n0 <= n1 <= self.nt:
            raise ValueError(f"advance: need 0 <= n0 <= n1 <= nt={self.nt}, got n0={n0}, n1={n1}")
        self._check("state", state, self._shape)
        if n1 == n0:
            return
        rec_buf = None
        if record is not None:
            p = self.problem
            shape = (p.nshots, p.nt, p.nrec)
            if tuple(record.shape) != shape:
                raise ValueError(f"record must have shape {shape}, got {tuple(record.shape)}")
            fits = record.is_contiguous() and record.dtype == p.dtype and record.device.type == "cpu"
            rec_buf = record if fits else torch.zeros(shape, dtype=p.dtype)
        if keep is not None:
            self._check_kept("keep", keep, n0, n1)
        if strips is not None:
            self._check_strips(strips, n1 - n0)
        rec = None if rec_buf is None else rec_buf.data_ptr()
        self._run("forward", n0, n1, False, lambda m0, m1, threads, stats: self._forward(
            self._pstruct, state.data_ptr(), m0, m1, rec, self._slots(keep, n0, m0),
            None if strips is None else strips[m0 - n0].data_ptr(), threads, stats))
        if rec_buf is not None and rec_buf is not record:
            record[:, n0:n1] = rec_buf[:, n0:n1]

    def save_fields(self, state: torch.Tensor, out: torch.Tensor) -> None:
        """(u_n, u_{n-1}) of ``state`` on the physical grid into ``out`` (``rebuild_shape``)."""
        self._check("state", state, self._shape)
        self._check("out", out, self.rebuild_shape)
        super().save_fields(state, out)

    @torch.no_grad()
    def retreat(self, fields: torch.Tensor, strips: torch.Tensor, n0: int, n1: int, keep: torch.Tensor) -> None:
        """Reverse-time rebuild of steps ``n1 - 1`` down to ``n0`` in place on ``fields`` (native calls):
        (u_{n1}, u_{n1-1}) on entry, (u_{n0}, u_{n0-1}) on return; ``strips[n - n0]`` is step n's strip;
        ``keep[self.imaged(n0, n)]`` gets imaged step n's snapshot S_n, bit for bit the forward's on the interior cells
        when the fields are the forward's."""
        if not 0 <= n0 <= n1 <= self.nt:
            raise ValueError(f"retreat: need 0 <= n0 <= n1 <= nt={self.nt}, got n0={n0}, n1={n1}")
        self._check("fields", fields, self.rebuild_shape)
        if n1 == n0:
            return
        self._check_strips(strips, n1 - n0)
        self._check_kept("keep", keep, n0, n1)
        self._run("retreat", n0, n1, True, lambda m0, m1, threads, stats: self._retreat(
            self._pstruct, fields.data_ptr(), strips[m0 - n0].data_ptr(), m0, m1, self._slots(keep, n0, m0), threads,
            stats))

    def begin_adjoint(self, need_wavelet: bool, need_model: bool) -> None:
        p = self.problem
        self._grad_wavelet = torch.zeros((p.nshots, p.nsrc, p.nt), dtype=p.dtype) if need_wavelet else None
        # Per shot, so that threads working on different shots never add to the same cell.
        self._grad_w = torch.zeros(self.snapshot_shape, dtype=p.dtype) if need_model else None
        self._adjoint_open = True

    @torch.no_grad()
    def adjoint(self, adj_state: torch.Tensor, kept: torch.Tensor, n0: int, n1: int,
                grad_record: torch.Tensor) -> None:
        """Reverse steps ``n1 - 1`` down to ``n0`` in place on ``adj_state`` (native calls), given
        ``kept[self.imaged(n0, n)]`` = imaged step n's snapshot and the adjoint (nshots, nt, nrec) of all the data;
        accumulates the model and wavelet gradients. Needs no forward state."""
        if not self._adjoint_open:
            raise RuntimeError("adjoint() called before begin_adjoint()")
        if not 0 <= n0 <= n1 <= self.nt:
            raise ValueError(f"adjoint: need 0 <= n0 <= n1 <= nt={self.nt}, got n0={n0}, n1={n1}")
        self._check("adj_state", adj_state, self._shape)
        if n1 == n0:
            return
        p = self.problem
        if self._grad_w is not None:
            self._check_kept("kept", kept, n0, n1)
        g = grad_record
        if tuple(g.shape) != (p.nshots, p.nt, p.nrec):
            raise ValueError(f"grad_record must have shape {(p.nshots, p.nt, p.nrec)}, got {tuple(g.shape)}")
        if g.dtype != p.dtype or g.device.type != "cpu" or not g.is_contiguous():
            g = g.to(device="cpu", dtype=p.dtype).contiguous()
        grad_w = None if self._grad_w is None else self._grad_w.data_ptr()
        grad_wavelet = None if self._grad_wavelet is None else self._grad_wavelet.data_ptr()
        self._run("adjoint", n0, n1, True, lambda m0, m1, threads, stats: self._adjoint(
            self._pstruct, adj_state.data_ptr(), None if grad_w is None else self._slots(kept, n0, m0), m0, m1,
            g.data_ptr(), grad_w, grad_wavelet, threads, stats))

    def end_adjoint(self) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
        """(gradient w.r.t. the wavelet (nshots, nsrc, nt), [gradient w.r.t. each model (the grid's shape)])."""
        total = None
        if self._grad_w is not None:  # snapshot-shaped: the shot axis is the one before the grid's
            shots = self._grad_w.unbind(self._grad_w.ndim - self.grid_ndim - 1)
            total = shots[0].clone()
            for shot in shots[1:]:  # fixed order: independent of the thread count
                total += shot
        out = (self._grad_wavelet, self.model_gradients(total))
        self._grad_wavelet = self._grad_w = None
        self._adjoint_open = False
        return out
