"""Centred finite-difference coefficients and the leapfrog stability limit they imply."""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..messages import plain

#: Coefficients of the centred second derivative, ``[c0, c1, ..., cr]`` for offsets 0..r (units 1/dh^2).
SECOND_DERIVATIVE: dict[int, tuple[float, ...]] = {
    2: (-2.0, 1.0),
    4: (-5.0 / 2.0, 4.0 / 3.0, -1.0 / 12.0),
    6: (-49.0 / 18.0, 3.0 / 2.0, -3.0 / 20.0, 1.0 / 90.0),
    8: (-205.0 / 72.0, 8.0 / 5.0, -1.0 / 5.0, 8.0 / 315.0, -1.0 / 560.0),
}

#: Coefficients of the centred first derivative, ``[c1, ..., cr]`` for offsets 1..r (antisymmetric, units 1/dh).
FIRST_DERIVATIVE: dict[int, tuple[float, ...]] = {
    2: (1.0 / 2.0,),
    4: (2.0 / 3.0, -1.0 / 12.0),
    6: (3.0 / 4.0, -3.0 / 20.0, 1.0 / 60.0),
    8: (4.0 / 5.0, -1.0 / 5.0, 4.0 / 105.0, -1.0 / 280.0),
}

SPACE_ORDERS = tuple(sorted(SECOND_DERIVATIVE))


def check_space_order(space_order: int) -> int:
    """``space_order`` as an int if supported (NumPy integers too), else raise ValueError naming the allowed
    values."""
    if isinstance(space_order, bool) or not isinstance(space_order, numbers.Integral) or \
            space_order not in SECOND_DERIVATIVE:
        raise ValueError(f"space_order must be one of {SPACE_ORDERS}, got {plain(space_order)!r}")
    return int(space_order)


def stencil_radius(space_order: int) -> int:
    """Half-width of the stencil in cells (``space_order // 2``)."""
    return check_space_order(space_order) // 2


def laplacian_symbol(space_order: int, theta):
    """What the centred second derivative makes of ``(k dh)^2``: ``-(c0 + 2 sum_k c_k cos(k theta))`` at
    ``theta = k dh`` (radians per cell, a float or an array), exactly ``theta^2`` for the true derivative.

    Applied to ``exp(i k x)`` the stencil returns it times ``-laplacian_symbol(theta) / dh^2``.
    """
    c = SECOND_DERIVATIVE[check_space_order(space_order)]
    return -(c[0] + 2.0 * sum(ck * np.cos(k * np.asarray(theta, dtype=np.float64)) for k, ck in enumerate(c) if k > 0))


def courant_limit(space_order: int, ndim: int = 2) -> float:
    """Largest stable Courant number ``v_max * dt / dh`` of leapfrog with this Laplacian.

    Leapfrog on ``u_tt = v^2 L u`` is stable while ``v^2 dt^2 * rho(-L) <= 4``; the spectral radius of
    the ``ndim``-dimensional Laplacian is ``ndim`` times the 1-D symbol at the Nyquist wavenumber,
    ``laplacian_symbol(space_order, pi) / dh^2``.
    """
    return 2.0 / math.sqrt(ndim * float(laplacian_symbol(space_order, math.pi)))
