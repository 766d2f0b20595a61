"""The 3-D variable-density acoustic (VRZ) stepper of the compiled back-end: the ``sweep_acoustic3d_vrz_*`` kernels,
the 3-D constant-density templates (acoustic3d_impl.h, acoustic3d_adjoint.h, acoustic3d_retreat.h) instantiated a
second time with ``SWEEP_VRZ`` (see acoustic3d_common.h for what changes), on the same state (8, nshots, NZ, NY,
NX) with the snapshot ``(S_n, u_n)`` and the model gradient ``(g_K, g_b)`` of
:class:`~sweep.propagator.acoustic_vrz_layout.AcousticVRZLayout`. The discretisation is the eager stepper's
(:mod:`sweep.propagator.eager.acoustic_vrz`), operation for operation, except that the pair terms of the
buoyancy's divergence use fused multiply-adds where the code path has FMA (rounding; see c3_pair in
acoustic3d_common.h).

Speed (forward, float32, order 4, 100^3 physical cells with 20 absorbing cells on every face = 140^3 padded, 1 shot,
2-core AMD EPYC (Zen 4) VM shared with other jobs, interleaved repeats, medians): about 1.2-1.5x the constant-density
kernel on 2 threads (300 steps), 1.45x on 1 thread (100 steps); in cache (30^3, no layer) 1.9x, the load count per
cell being about twice as large (the buoyancy's 4R + 1 taps beside u's on each axis).
"""
from __future__ import annotations

from ..acoustic_vrz_layout import AcousticVRZLayout
from .acoustic3d import CAcoustic3DStepper, _Problem3D

__all__ = ["CAcousticVRZ3DStepper"]


class CAcousticVRZ3DStepper(AcousticVRZLayout, CAcoustic3DStepper):
    """The stepper protocol (see :mod:`sweep.memory.protocol`) for the 3-D VRZ equation, in C; built and run as
    :class:`~sweep.propagator.c.acoustic3d.CAcoustic3DStepper` (same options), with models [vp, z]: the update
    coefficient is ``K = z vp dt^2`` and the kernels also read the buoyancy ``vp / z`` on the padded grid."""

    KERNELS = "sweep_acoustic3d_vrz"

    def _make_struct(self) -> _Problem3D:
        struct = super()._make_struct()
        self._b = self._real(self.b_padded)  # kept alive for the C side
        struct.b = self._b.data_ptr()
        return struct
