"""The 2-D variable-density acoustic (VRZ) stepper of the compiled back-end: the ``sweep_acoustic_vrz_*`` kernels,
the 2-D templates (acoustic_impl.h, acoustic_adjoint.h, acoustic_retreat.h) instantiated with ``SWEEP_VRZ 1``
(see acoustic_cell.h), on the constant-density stepper's state, strips and rebuild fields; the snapshot is
``(S_n, u_n)`` and the model gradient's accumulator ``(g_K, g_beta)`` per shot (both ``snapshot_shape``).
"""
from __future__ import annotations

from ..acoustic_vrz_layout import AcousticVRZLayout
from .acoustic2d import CAcousticStepper, _Problem

__all__ = ["CAcousticVRZStepper"]


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

    def _make_struct(self) -> _Problem:
        s = super()._make_struct()
        self._b = self._real(self.b_padded)  # kept alive for the C side, which only holds its address
        s.b = self._b.data_ptr()
        return s
