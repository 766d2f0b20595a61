"""The 3-D acoustic stepper of the compiled back-end: the ``sweep_acoustic3d_*`` kernels (acoustic3d_impl.h,
acoustic3d_adjoint.h, acoustic3d_retreat.h) on the state (8, nshots, NZ, NY, NX): u_prev, u, psi_x, psi_y,
psi_z, zeta_x, zeta_y, zeta_z.

Speed (forward, float32, order 4, a 100^3 physical grid with 20 absorbing cells on every face: 140^3
padded, 500 steps, 1 shot, 2-core AMD Zen 4 shared with other jobs, medians): see the comment at the top of
acoustic3d_impl.h for the layout and the numbers.
"""
from __future__ import annotations

import ctypes

import torch

from ...equations.stencils import FIRST_DERIVATIVE, SECOND_DERIVATIVE
from ..setup import Problem
from .stepper import CStepper, by_row, interior

__all__ = ["CAcoustic3DStepper"]

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


class _Problem3D(ctypes.Structure):
    """Mirror of ``sweep_problem3d`` in acoustic_common.h (field order and types must match)."""

    _fields_ = [
        ("nshots", _i64), ("nz", _i64), ("ny", _i64), ("nx", _i64),
        ("nsrc", _i64), ("nrec", _i64), ("nt", _i64), ("radius", _i64),
        ("xa", _i64), ("xb", _i64), ("ya", _i64), ("yb", _i64), ("za", _i64), ("zb", _i64),
        ("c1", ctypes.c_double * 4), ("c2", ctypes.c_double * 5),
        ("inv_dh", ctypes.c_double), ("inv_dh2", ctypes.c_double), ("inv_src", ctypes.c_double),
        ("w", _ptr), ("ax", _ptr), ("bx", _ptr), ("ay", _ptr), ("by", _ptr), ("az", _ptr), ("bz", _ptr),
        ("wavelet", _ptr),
        ("src_z", _ptr), ("src_y", _ptr), ("src_x", _ptr), ("rec_z", _ptr), ("rec_y", _ptr), ("rec_x", _ptr),
        ("ptop", _i64), ("pfront", _i64), ("pleft", _i64), ("pnz", _i64), ("pny", _i64), ("pnx", _i64),
        ("src_ptr", _ptr), ("src_order", _ptr), ("rec_ptr", _ptr), ("rec_order", _ptr),
        ("strip_idx", _ptr), ("nstrip", _i64), ("wave", _i64), ("tile_y", _i64),
        ("image_every", _i64),
        ("b", _ptr),  # the buoyancy of the variable-density kernels (acoustic_vrz3d.py); NULL here
    ]


class CAcoustic3DStepper(CStepper):
    """The stepper protocol (see :mod:`sweep.memory.protocol`) for the 3-D acoustic equation, in C; see
    :class:`~sweep.propagator.c.stepper.CStepper` for how it runs (bands of z-planes when a call has fewer
    shots than threads).

    Parameters
    ----------
    problem : Problem
        One validated 3-D propagation call; must be on the CPU, float32 or float64.
    models : [vp]
    wave : int
        Steps each thread runs per wave of the forward (acoustic3d_impl.h); 0 (default) chooses from the cache
        size. Results do not depend on it.
    tile_y : int
        Rows per y-tile of the forward's waves; 0 (default) chooses from the cache size. Results do not
        depend on it.
    image_interval : int
        Gradient sampling (see :class:`~sweep.propagator.acoustic_layout.AcousticLayout`).
    """

    KERNELS = "sweep_acoustic3d"
    STRUCT = _Problem3D
    NDIM = 3
    #: A banded forward call pipelines its steps over the threads (acoustic3d_impl.h): a wave per call at least
    #: (8 steps: 4 per thread of a team of 2), short enough for the thread governor to follow a busy machine.
    MIN_CALL_STEPS = 8

    def __init__(self, problem: Problem, models, wave: int = 0, tile_y: int = 0, image_interval: int = 1) -> None:
        for name, value in (("wave", wave), ("tile_y", tile_y)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        self.wave, self.tile_y = wave, tile_y
        super().__init__(problem, models, image_interval)

    def _make_struct(self) -> _Problem3D:
        p = self.problem
        nz, ny, nx = p.grid.padded_shape
        # Kept alive for the C side, which only holds their addresses.
        self._w = self._real(self.update_coefficient)
        self._pml = {k: self._real(p.pml[k]) for k in ("ax", "bx", "ay", "by", "az", "bz")}
        self._wavelet = self._real(p.wavelet)
        src = [p.src[..., a].to(device="cpu", dtype=torch.int64).contiguous() for a in range(3)]
        rec = [p.rec[..., a].to(device="cpu", dtype=torch.int64).contiguous() for a in range(3)]
        self._idx = src + rec
        # Points by padded row (shot, z, y).
        self._csr = [*by_row(src[0] * ny + src[1], nz * ny), *by_row(rec[0] * ny + rec[1], nz * ny)]
        g = p.grid
        (top, _), (front, _), (left, _) = g.pad
        self._strip_idx = torch.from_numpy(self.strip_index).contiguous()
        xa, xb = interior(self._pml["ax"], self._pml["bx"])
        ya, yb = interior(self._pml["ay"], self._pml["by"])
        za, zb = interior(self._pml["az"], self._pml["bz"])
        c1, c2 = FIRST_DERIVATIVE[p.space_order], SECOND_DERIVATIVE[p.space_order]
        addr = {k: t.data_ptr() for k, t in self._pml.items()}
        return _Problem3D(
            nshots=p.nshots, nz=nz, ny=ny, nx=nx, nsrc=p.nsrc, nrec=p.nrec, nt=p.nt, radius=self.r,
            xa=xa, xb=xb, ya=ya, yb=yb, za=za, zb=zb,
            c1=(ctypes.c_double * 4)(*c1, *[0.0] * (4 - len(c1))),
            c2=(ctypes.c_double * 5)(*c2, *[0.0] * (5 - len(c2))),
            inv_dh=1.0 / p.dh, inv_dh2=1.0 / p.dh**2, inv_src=1.0 / p.dh**3,
            w=self._w.data_ptr(), wavelet=self._wavelet.data_ptr(), **addr,
            src_z=src[0].data_ptr(), src_y=src[1].data_ptr(), src_x=src[2].data_ptr(),
            rec_z=rec[0].data_ptr(), rec_y=rec[1].data_ptr(), rec_x=rec[2].data_ptr(),
            ptop=top, pfront=front, pleft=left, pnz=g.shape[0], pny=g.shape[1], pnx=g.shape[2],
            src_ptr=self._csr[0].data_ptr(), src_order=self._csr[1].data_ptr(),
            rec_ptr=self._csr[2].data_ptr(), rec_order=self._csr[3].data_ptr(),
            strip_idx=self._strip_idx.data_ptr(), nstrip=self.strip_shape[1], wave=self.wave, tile_y=self.tile_y,
            image_every=self.image_interval,
        )
