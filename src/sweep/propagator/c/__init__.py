"""The compiled CPU back-end (``impl='c'``): C kernels on a small thread pool, with a hand-written discrete adjoint.

The kernels (``acoustic.c``) are built into a plain shared library at install time (``pip install -e .``,
see ``setup.py``) and loaded here with :mod:`ctypes`; nothing is compiled at first use. They implement
the eager stepper's discrete step operation for operation (:mod:`sweep.propagator.eager.acoustic`), on
the same state layout (6, nshots, NZ, NX): u_prev, u, psi_x, psi_z, zeta_x, zeta_z, so every memory
strategy sees the same state size on either back-end, and the same boundary strips and rebuild fields
(``strip_shape``, ``rebuild_shape``) for boundary saving.
"""
from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.util
import math
from pathlib import Path

import torch

from ...equations.stencils import FIRST_DERIVATIVE, SECOND_DERIVATIVE
from ..acoustic_layout import AcousticLayout
from ..setup import Problem
from ..threads import GOVERNOR

__all__ = ["CAcousticStepper", "build_instructions", "code_path", "fma_peak", "library_available", "load_error"]

_LIB_NAME = "_sweep_acoustic"
_ABI_VERSION = 5  # must match sweep_abi_version() in acoustic.c
NFIELDS = 6
#: Fewest grid cells (over all shots) per thread. Threads working on one shot wait for their neighbours
#: once per step (spinning briefly, then sleeping); on tiny grids a second thread costs more in
#: synchronisation than it saves.
MIN_CELLS_PER_THREAD = 16384
#: Cell updates (padded cells x steps) per kernel call when shots are cut into bands: longer blocks are run
#: as several calls, so that the thread governor (threads.py) can change the count within a block. About
#: 2 ms on two cores; the call overhead is some microseconds.
BANDED_CALL_CELL_STEPS = 2**22


class _RunStats(ctypes.Structure):
    """Mirror of ``sweep_run_stats`` in pool.h: seconds of wall and CPU time, most threads used."""

    _fields_ = [("wall", ctypes.c_double), ("cpu", ctypes.c_double), ("threads", ctypes.c_int64)]


class _Problem(ctypes.Structure):
    """Mirror of ``sweep_problem`` in acoustic.c (field order and types must match)."""

    _fields_ = [
        ("nshots", ctypes.c_int64), ("nz", ctypes.c_int64), ("nx", ctypes.c_int64),
        ("nsrc", ctypes.c_int64), ("nrec", ctypes.c_int64), ("nt", ctypes.c_int64),
        ("radius", ctypes.c_int64),
        ("xa", ctypes.c_int64), ("xb", ctypes.c_int64), ("za", ctypes.c_int64), ("zb", ctypes.c_int64),
        ("c1", ctypes.c_double * 4), ("c2", ctypes.c_double * 5),
        ("inv_dh", ctypes.c_double), ("inv_dh2", ctypes.c_double),
        ("w", ctypes.c_void_p), ("ax", ctypes.c_void_p), ("bx", ctypes.c_void_p),
        ("az", ctypes.c_void_p), ("bz", ctypes.c_void_p), ("wavelet", ctypes.c_void_p),
        ("src_z", ctypes.c_void_p), ("src_x", ctypes.c_void_p),
        ("rec_z", ctypes.c_void_p), ("rec_x", ctypes.c_void_p),
        ("ptop", ctypes.c_int64), ("pleft", ctypes.c_int64), ("pnz", ctypes.c_int64), ("pnx", ctypes.c_int64),
        ("src_ptr", ctypes.c_void_p), ("src_order", ctypes.c_void_p),
        ("rec_ptr", ctypes.c_void_p), ("rec_order", ctypes.c_void_p),
        ("strip_idx", ctypes.c_void_p), ("nstrip", ctypes.c_int64),
    ]


_lib: ctypes.CDLL | None = None
_error: str | None = None
_tried = False


def build_instructions() -> str:
    """How to get the compiled back-end (for error messages)."""
    return ("reinstall sweep from its source tree with `pip install -e .` (or `pip install .`); the build "
            "needs a C compiler (gcc or clang). Or use impl='eager'")


def _find_library() -> Path | None:
    """The built ``_sweep_acoustic`` shared library next to this file, or wherever the import system
    (e.g. an editable install's finder) places it."""
    here = Path(__file__).resolve().parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"{_LIB_NAME}{suffix}"
        if candidate.is_file():
            return candidate
    try:
        spec = importlib.util.find_spec(f"{__name__}.{_LIB_NAME}")
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def _declare(lib: ctypes.CDLL) -> None:
    ptr = ctypes.c_void_p
    lib.sweep_code_path.argtypes = []
    lib.sweep_code_path.restype = ctypes.c_char_p
    lib.sweep_fma_peak.argtypes = [ctypes.c_int, ctypes.c_int64]
    lib.sweep_fma_peak.restype = ctypes.c_double
    lib.sweep_test_fail_allocs.argtypes = [ctypes.c_int]
    lib.sweep_test_fail_allocs.restype = None
    stats = ctypes.POINTER(_RunStats)
    for sfx in ("f32", "f64"):
        fwd = getattr(lib, f"sweep_acoustic_forward_{sfx}")
        fwd.argtypes = [ctypes.POINTER(_Problem), ptr, ctypes.c_int64, ctypes.c_int64, ptr, ptr, ptr, ctypes.c_int,
                        stats]
        fwd.restype = ctypes.c_int
        back = getattr(lib, f"sweep_acoustic_retreat_{sfx}")
        back.argtypes = [ctypes.POINTER(_Problem), ptr, ptr, ctypes.c_int64, ctypes.c_int64, ptr, ctypes.c_int, stats]
        back.restype = ctypes.c_int
        adj = getattr(lib, f"sweep_acoustic_adjoint_{sfx}")
        adj.argtypes = [ctypes.POINTER(_Problem), ptr, ptr, ctypes.c_int64, ctypes.c_int64, ptr, ptr, ptr,
                        ctypes.c_int, stats]
        adj.restype = ctypes.c_int


def _load() -> ctypes.CDLL | None:
    """Load the library once; on failure remember why (see :func:`load_error`)."""
    global _lib, _error, _tried
    if _tried:
        return _lib
    _tried = True
    path = _find_library()
    if path is None:
        _error = (f"the compiled library {_LIB_NAME}*.so was not built (not found in "
                  f"{Path(__file__).resolve().parent})")
        return None
    try:
        lib = ctypes.CDLL(str(path))
        version = lib.sweep_abi_version()
        if version != _ABI_VERSION:
            _error = f"{path} is a stale build (ABI version {version}, expected {_ABI_VERSION})"
            return None
        _declare(lib)
    except (OSError, AttributeError) as exc:
        _error = f"{path} exists but failed to load: {exc}"
        return None
    _lib = lib
    return _lib


def library_available() -> bool:
    """Whether the compiled kernels are built and load; never raises."""
    try:
        return _load() is not None
    except Exception as exc:  # a broken install must fall back, not crash the import of sweep
        global _error
        _error = f"loading the compiled library raised {type(exc).__name__}: {exc}"
        return False


def load_error() -> str | None:
    """Why the compiled back-end is unavailable, or None when it loads."""
    library_available()
    return _error


def code_path() -> str | None:
    """The kernels' code path: ``'native (avx2)'`` etc. for the default ``-march=native`` build; for a
    portable build (``SWEEP_PORTABLE=1``) the one picked at run time, ``'avx512'``, ``'avx2'`` or
    ``'baseline'`` (``SWEEP_ISA=avx2|baseline`` forces a lower one). None when the library is not built."""
    lib = _load() if library_available() else None
    return None if lib is None else lib.sweep_code_path().decode()


def fma_peak(threads: int, iters: int = 20_000_000) -> float:
    """Measured peak float32 FMA throughput (flop/s) of the kernels' code path on ``threads`` threads: a
    short microbenchmark of independent vector FMA chains (about ``iters`` x 12 FMAs per thread)."""
    lib = _load()
    if lib is None:
        raise RuntimeError(f"impl='c' is not available: {_error}")
    return float(lib.sweep_fma_peak(int(threads), int(iters)))


def _interior(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int]:
    """The index range [lo, hi) where the profile is absorption-free (a = 0, b = 1), which the kernels
    treat without C-PML terms; (0, 0) when there is no such contiguous range (all cells get C-PML terms,
    which is exact anyway)."""
    free = ((a == 0) & (b == 1)).tolist()
    if True not in free:
        return 0, 0
    lo = free.index(True)
    hi = len(free) - free[::-1].index(True)
    return (lo, hi) if all(free[lo:hi]) else (0, 0)


def _by_row(z: torch.Tensor, nz: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR of points (nshots, n) by padded row: (ptr (nshots*nz + 1,), order (nshots*n,)), the flat
    indices q = shot*n + k of row ``shot*nz + i`` being ``order[ptr[row]:ptr[row + 1]]``, ascending."""
    nshots, n = z.shape
    rows = (torch.arange(nshots).view(-1, 1) * nz + z.to(torch.int64)).reshape(-1)
    order = torch.sort(rows, stable=True).indices.to(torch.int64).contiguous()
    counts = torch.bincount(rows, minlength=nshots * nz)
    ptr = torch.zeros(nshots * nz + 1, dtype=torch.int64)
    ptr[1:] = torch.cumsum(counts, 0)
    return ptr.contiguous(), order


class CAcousticStepper(AcousticLayout):
    """The stepper protocol (see :mod:`sweep.memory.protocol`) for the acoustic equation, in C.

    Parameters
    ----------
    problem : Problem
        One validated 2-D propagation call; must be on the CPU, float32 or float64.
    models : [vp]

    Notes
    -----
    ``advance`` runs a whole block of steps in one C call (``torch.get_num_threads()`` threads, fewer on
    tiny grids: see ``MIN_CELLS_PER_THREAD``; whole shots per thread when there are at least as many shots
    as threads, otherwise bands of rows of each shot, see ``acoustic_common.h``; banded blocks run as calls
    of at most ``BANDED_CALL_CELL_STEPS`` cell updates, each with the thread count of the governor in
    ``threads.py``, which uses fewer threads while the machine is oversubscribed);
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

    def __init__(self, problem: Problem, models) -> None:
        lib = _load()
        if lib is None:
            raise RuntimeError(f"impl='c' is not available: {_error}; {build_instructions()}")
        if problem.device.type != "cpu":
            raise ValueError(f"impl='c' runs on the CPU only, but the model is on {problem.device}; "
                             "move the model to the CPU or use impl='eager'")
        if problem.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"impl='c' supports float32 and float64, got {problem.dtype}")
        super().__init__(problem, models)
        p = problem
        sfx = "f32" if p.dtype == torch.float32 else "f64"
        self._forward = getattr(lib, f"sweep_acoustic_forward_{sfx}")
        self._adjoint = getattr(lib, f"sweep_acoustic_adjoint_{sfx}")
        self._retreat = getattr(lib, f"sweep_acoustic_retreat_{sfx}")
        nz, nx = p.grid.padded_shape
        self._shape = self.state_shape
        # Kept alive for the C side, which only holds their addresses.
        as_real = lambda t: t.detach().to(device="cpu", dtype=p.dtype).contiguous()  # noqa: E731
        self._w = as_real(self.w_padded)
        self._ax, self._bx = as_real(p.pml["ax"]), as_real(p.pml["bx"])
        self._az, self._bz = as_real(p.pml["az"]), as_real(p.pml["bz"])
        self._wavelet = as_real(p.wavelet)
        self._idx = [t.to(device="cpu", dtype=torch.int64).contiguous()
                     for t in (p.src[..., 0], p.src[..., 1], p.rec[..., 0], p.rec[..., 1])]
        self._csr = [*_by_row(self._idx[0], nz), *_by_row(self._idx[2], nz)]
        g = p.grid
        (top, _), (left, _) = g.pad
        self._strip_idx = torch.from_numpy(self.strip_index).contiguous()
        xa, xb = _interior(self._ax, self._bx)
        za, zb = _interior(self._az, self._bz)
        c1, c2 = FIRST_DERIVATIVE[p.space_order], SECOND_DERIVATIVE[p.space_order]
        self._struct = _Problem(
            nshots=p.nshots, nz=nz, nx=nx, nsrc=p.nsrc, nrec=p.nrec, nt=p.nt, radius=self.r,
            xa=xa, xb=xb, za=za, zb=zb,
            c1=(ctypes.c_double * 4)(*c1, *[0.0] * (4 - len(c1))),
            c2=(ctypes.c_double * 5)(*c2, *[0.0] * (5 - len(c2))),
            inv_dh=1.0 / p.dh, inv_dh2=1.0 / p.dh**2,
            w=self._w.data_ptr(), ax=self._ax.data_ptr(), bx=self._bx.data_ptr(), az=self._az.data_ptr(),
            bz=self._bz.data_ptr(), wavelet=self._wavelet.data_ptr(),
            src_z=self._idx[0].data_ptr(), src_x=self._idx[1].data_ptr(),
            rec_z=self._idx[2].data_ptr(), rec_x=self._idx[3].data_ptr(),
            ptop=top, pleft=left, pnz=g.shape[0], pnx=g.shape[1],
            src_ptr=self._csr[0].data_ptr(), src_order=self._csr[1].data_ptr(),
            rec_ptr=self._csr[2].data_ptr(), rec_order=self._csr[3].data_ptr(),
            strip_idx=self._strip_idx.data_ptr(), nstrip=self.strip_shape[1],
        )
        self._pstruct = ctypes.byref(self._struct)
        self._grad_w: torch.Tensor | None = None
        self._grad_wavelet: torch.Tensor | None = None
        self._adjoint_open = False

    def _threads(self) -> int:
        """``torch.get_num_threads()``, capped so that each thread has at least MIN_CELLS_PER_THREAD cells."""
        cells = math.prod(self._shape[1:])
        return max(1, min(torch.get_num_threads(), cells // max(1, MIN_CELLS_PER_THREAD)))

    def _run(self, what: str, n0: int, n1: int, reverse: bool, kernel) -> None:
        """Runs ``kernel(m0, m1, threads, stats)`` over steps [n0, n1): one call when each thread takes whole
        shots; else (bands of rows, which wait for each other every step) calls of at most
        BANDED_CALL_CELL_STEPS cell updates, the last block first when ``reverse``, each with the governor's
        thread count and reporting to it. Raises MemoryError when the kernel could not allocate."""
        requested = self._threads()
        banded = requested > 1 and self.problem.nshots < requested
        per = max(1, BANDED_CALL_CELL_STEPS // math.prod(self._shape[1:])) if banded else n1 - n0
        bounds = [(m, min(m + per, n1)) for m in range(n0, n1, per)]
        for m0, m1 in reversed(bounds) if reverse else bounds:
            threads = GOVERNOR.threads(requested) if banded else requested
            stats = _RunStats()
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

    def _check_kept(self, name: str, kept: torch.Tensor, count: int) -> None:
        if kept.ndim != len(self.snapshot_shape) + 1 or kept.shape[0] < count:
            raise ValueError(f"{name} must hold at least {count} snapshots of shape {self.snapshot_shape}, "
                             f"got shape {tuple(kept.shape)}")
        self._check(name, kept, (kept.shape[0], *self.snapshot_shape))

    def _check_strips(self, strips: torch.Tensor, count: int) -> None:
        if strips.ndim != 3 or strips.shape[0] < count:
            raise ValueError(f"strips must hold at least {count} strips of shape {self.strip_shape}, "
                             f"got shape {tuple(strips.shape)}")
        self._check("strips", strips, (strips.shape[0], *self.strip_shape))

    @torch.no_grad()
    def advance(self, state: torch.Tensor, n0: int, n1: int, record: torch.Tensor | None = None,
                keep: torch.Tensor | None = None, strips: torch.Tensor | None = None) -> None:
        """Steps ``n0 -> n1`` in place (native calls, see ``_run``); ``record[:, n]`` (nshots, nrec) gets step n's receiver
        samples; ``keep[n - n0]`` (``snapshot_shape``) gets step n's snapshot; ``strips[n - n0]``
        (``strip_shape``) gets step n's strip, u_{n-1} on the strip cells."""
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
            self._check_kept("keep", keep, n1 - n0)
        if strips is not None:
            self._check_strips(strips, n1 - n0)
        rec = None if rec_buf is None else rec_buf.data_ptr()
        self._run("forward", n0, n1, False, lambda m0, m1, threads, stats: self._forward(
            self._pstruct, state.data_ptr(), m0, m1, rec, None if keep is None else keep[m0 - n0].data_ptr(),
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
        ``keep[n - n0]`` gets step n's snapshot S_n, bit for bit the forward's on the interior cells
        when the fields are the forward's."""
        if not 0 <= n0 <= n1 <= self.nt:
            raise ValueError(f"retreat: need 0 <= n0 <= n1 <= nt={self.nt}, got n0={n0}, n1={n1}")
        self._check("fields", fields, self.rebuild_shape)
        if n1 == n0:
            return
        self._check_strips(strips, n1 - n0)
        self._check_kept("keep", keep, n1 - n0)
        self._run("retreat", n0, n1, True, lambda m0, m1, threads, stats: self._retreat(
            self._pstruct, fields.data_ptr(), strips[m0 - n0].data_ptr(), m0, m1, keep[m0 - n0].data_ptr(), threads,
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
        ``kept[n - n0]`` = step n's snapshot and the adjoint (nshots, nt, nrec) of all the data;
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
            self._check_kept("kept", kept, n1 - n0)
        g = grad_record
        if tuple(g.shape) != (p.nshots, p.nt, p.nrec):
            raise ValueError(f"grad_record must have shape {(p.nshots, p.nt, p.nrec)}, got {tuple(g.shape)}")
        if g.dtype != p.dtype or g.device.type != "cpu" or not g.is_contiguous():
            g = g.to(device="cpu", dtype=p.dtype).contiguous()
        grad_w = None if self._grad_w is None else self._grad_w.data_ptr()
        grad_wavelet = None if self._grad_wavelet is None else self._grad_wavelet.data_ptr()
        self._run("adjoint", n0, n1, True, lambda m0, m1, threads, stats: self._adjoint(
            self._pstruct, adj_state.data_ptr(), None if grad_w is None else kept[m0 - n0].data_ptr(), m0, m1,
            g.data_ptr(), grad_w, grad_wavelet, threads, stats))

    def end_adjoint(self) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
        """(gradient w.r.t. the wavelet (nshots, nsrc, nt), [gradient w.r.t. vp (nz, nx)])."""
        total = None
        if self._grad_w is not None:
            total = self._grad_w[0].clone()
            for shot in self._grad_w[1:]:  # fixed order: independent of the thread count
                total += shot
        out = (self._grad_wavelet, self.model_gradients(total))
        self._grad_wavelet = self._grad_w = None
        self._adjoint_open = False
        return out


def _inject_allocation_failures(count: int) -> None:
    """Test hook: the next ``count`` kernel calls fail as if out of memory (0 turns it off)."""
    lib = _load()
    if lib is None:
        raise RuntimeError(f"impl='c' is not available: {_error}")
    lib.sweep_test_fail_allocs(int(count))
