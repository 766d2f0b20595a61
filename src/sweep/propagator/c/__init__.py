"""The compiled CPU back-end (``impl='c'``): C kernels on a small thread pool, with a hand-written discrete adjoint.

The kernels (``acoustic.c``) are built into a plain shared library at install time (``pip install -e .``,
see ``setup.py``) and loaded with :mod:`ctypes` (:mod:`.library`); nothing is compiled at first use. They
implement the eager stepper's discrete step operation for operation (:mod:`sweep.propagator.eager.acoustic`),
in 2-D and 3-D, on the same state layout ((2 + 2 ndim, nshots, *padded_shape): u_prev, u, psi and zeta of
each axis), so every memory strategy sees the same state size on either back-end, and the same boundary
strips and rebuild fields (``strip_shape``, ``rebuild_shape``) for boundary saving.

Modules: :mod:`.library` (loading), :mod:`.stepper` (what the steppers share: checks, the run loop and the
protocol), :mod:`.acoustic2d` (:class:`CAcousticStepper`) and :mod:`.acoustic3d` (:class:`CAcoustic3DStepper`).
"""
from __future__ import annotations

from .acoustic2d import CAcousticStepper
from .acoustic3d import CAcoustic3DStepper
from .library import _inject_allocation_failures, build_instructions, code_path, fma_peak, library_available, load_error

__all__ = ["CAcousticStepper", "CAcoustic3DStepper", "build_instructions", "code_path", "fma_peak",
           "library_available", "load_error", "_inject_allocation_failures"]
