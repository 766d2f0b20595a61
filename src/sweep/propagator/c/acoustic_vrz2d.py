"""The 2-D variable-density acoustic (VRZ) stepper of the compiled back-end: the ``sweep_acoustic_vrz_*`` kernels,
the 2-D templates (acoustic_impl.h, acoustic_adjoint.h, acoustic_retreat.h) instantiated with ``SWEEP_VRZ 1``
(see acoustic_cell.h), on the constant-density stepper's state, strips and rebuild fields; the snapshot is
``(S_n, u_n)`` and the model gradient's accumulator ``(g_K, g_beta)`` per shot (both ``snapshot_shape``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...equations.stencils import SECOND_DERIVATIVE
from ..acoustic_vrz_layout import AcousticVRZLayout
from .acoustic2d import CAcousticStepper, _Problem

__all__ = ["CAcousticVRZStepper", "diagonal_terms"]


def diagonal_terms(beta: torch.Tensor, c2, dh: float, r: int) -> torch.Tensor:
    """(3, NZ, NX) float64: the diagonal ``G = G_x + G_z``, ``G_x``, ``G_z`` of the kernels' form of
    ``d/da (beta du/da)`` (acoustic_cell.h), ``G_a = sum_k c_k / (2 dh^2) (beta_{+k} + beta_{-k} + 2 beta)``
    along axis a, ``beta`` (NZ, NX) edge-replicated past the grid as the eager stepper extends it."""
    beta = beta.to(torch.float64)
    wide = F.pad(beta[None, None], (r, r, r, r), mode="replicate")[0, 0]
    nz, nx = beta.shape
    gx = torch.zeros_like(beta)
    gz = torch.zeros_like(beta)
    for k in range(1, r + 1):
        e = 0.5 * c2[k] / dh**2
        gx += e * (wide[r:r + nz, r + k:r + k + nx] + wide[r:r + nz, r - k:r - k + nx] + 2 * beta)
        gz += e * (wide[r + k:r + k + nz, r:r + nx] + wide[r - k:r - k + nz, r:r + nx] + 2 * beta)
    return torch.stack((gx + gz, gx, gz))


class CAcousticVRZStepper(AcousticVRZLayout, CAcousticStepper):
    """The stepper protocol (see :mod:`sweep.memory.protocol`) for the 2-D variable-density acoustic equation,
    in C; runs as :class:`~sweep.propagator.c.acoustic2d.CAcousticStepper` (see
    :class:`~sweep.propagator.c.stepper.CStepper`), with the coefficients and chain rule of
    :class:`~sweep.propagator.acoustic_vrz_layout.AcousticVRZLayout`.

    Parameters
    ----------
    problem : Problem
        One validated 2-D propagation call; must be on the CPU, float32 or float64.
    models : [vp (m/s), z (kg m^-2 s^-1)]
    image_interval : int
    """

    KERNELS = "sweep_acoustic_vrz"

    @property
    def rebuild_shape(self) -> tuple[int, ...]:
        """(2, nshots, *shape): u_n and u_{n-1} on the physical grid, as the constant-density kernels' (the
        layout's default, ``(2, *snapshot_shape)``, would double VRZ's two-field snapshot)."""
        return (2, self.problem.nshots, *self.problem.grid.shape)

    def _make_struct(self) -> _Problem:
        s = super()._make_struct()
        p = self.problem
        # Kept alive for the C side, which only holds their addresses. G from beta as the kernels round it.
        self._b = self._real(self.b_padded)
        self._g = self._real(diagonal_terms(self._b, SECOND_DERIVATIVE[p.space_order], p.dh, self.r))
        s.b = self._b.data_ptr()
        s.g = self._g.data_ptr()
        return s
