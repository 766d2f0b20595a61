"""The 2-D acoustic stepper of the compiled back-end: the ``sweep_acoustic_*`` kernels (acoustic_impl.h,
acoustic_adjoint.h, acoustic_retreat.h) on the state (6, nshots, NZ, NX): u_prev, u, psi_x, psi_z, zeta_x,
zeta_z."""
from __future__ import annotations

import ctypes

import torch

from ...equations.stencils import FIRST_DERIVATIVE, SECOND_DERIVATIVE
from .stepper import CStepper, by_row, interior

__all__ = ["CAcousticStepper"]


class _Problem(ctypes.Structure):
    """Mirror of ``sweep_problem`` in acoustic_common.h (field order and types must match)."""

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
        ("strip_idx", ctypes.c_void_p), ("nstrip", ctypes.c_int64), ("image_every", ctypes.c_int64),
        ("b", ctypes.c_void_p),  # variable density only (acoustic_vrz2d.py)
    ]


class CAcousticStepper(CStepper):
    """The stepper protocol (see :mod:`sweep.memory.protocol`) for the 2-D acoustic equation, in C; see
    :class:`~sweep.propagator.c.stepper.CStepper` for how it runs.

    Parameters
    ----------
    problem : Problem
        One validated 2-D propagation call; must be on the CPU, float32 or float64.
    models : [vp]
    """

    KERNELS = "sweep_acoustic"
    STRUCT = _Problem
    NDIM = 2

    def _make_struct(self) -> _Problem:
        p = self.problem
        nz, nx = p.grid.padded_shape
        # Kept alive for the C side, which only holds their addresses.
        self._w = self._real(self.update_coefficient)
        self._ax, self._bx = self._real(p.pml["ax"]), self._real(p.pml["bx"])
        self._az, self._bz = self._real(p.pml["az"]), self._real(p.pml["bz"])
        self._wavelet = self._real(p.wavelet)
        self._idx = [t.to(device="cpu", dtype=torch.int64).contiguous()
                     for t in (p.src[..., 0], p.src[..., 1], p.rec[..., 0], p.rec[..., 1])]
        self._csr = [*by_row(self._idx[0], nz), *by_row(self._idx[2], nz)]
        g = p.grid
        (top, _), (left, _) = g.pad
        self._strip_idx = torch.from_numpy(self.strip_index).contiguous()
        xa, xb = interior(self._ax, self._bx)
        za, zb = interior(self._az, self._bz)
        c1, c2 = FIRST_DERIVATIVE[p.space_order], SECOND_DERIVATIVE[p.space_order]
        return _Problem(
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
            strip_idx=self._strip_idx.data_ptr(), nstrip=self.strip_shape[1], image_every=self.image_interval,
        )
