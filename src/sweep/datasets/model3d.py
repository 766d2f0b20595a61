"""A deterministic 3-D layered velocity model with a fault, a dipping reflector and a salt body.

:func:`layered_3d` builds the model analytically (no randomness), so any grid gives the same geology:
every feature is placed at a fixed fraction of the model's physical extent ``L = n * dh`` (m) along
its axis and evaluated at the grid points ``i * dh``. Two grids with the same extent (``(16, 16, 16)``
at 50 m and ``(32, 32, 32)`` at 25 m) sample one earth: the coarse grid's points are every other
point of the fine one. Run ``python -m sweep.datasets.model3d_plot`` to draw it.
"""
from __future__ import annotations

import numbers

import numpy as np

from .marmousi import SMOOTHING_LENGTH_M, WATER_VELOCITY, smooth_model

MIN_CELLS = 8
"""Fewest grid points :func:`layered_3d` accepts along any axis."""

SEDIMENT_VELOCITIES = (1800.0, 2050.0, 2350.0, 2700.0, 3100.0, 3500.0)
"""P-wave velocity (m/s) of the sediment layers, top to bottom."""

INTERFACE_DEPTHS = (0.20, 0.33, 0.46, 0.60, 0.76)
"""Mean depth of the interfaces between consecutive sediment layers, fraction of the model depth."""

SEAFLOOR_DEPTH = 0.07
"""Mean depth of the seafloor (bottom of the water layer), fraction of the model depth."""

FAULT_THROW = 0.10
"""Vertical offset of the hanging wall (the +x side of the normal fault), fraction of the model depth."""

REFLECTOR_VELOCITY = 3300.0
"""P-wave velocity (m/s) of the thin dipping bed."""

SALT_VELOCITY = 4500.0
"""P-wave velocity (m/s) of the salt body."""

_KINDS = ("true", "smooth")


def _check_shape(shape) -> tuple[int, int, int]:
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 3:
        raise ValueError(f"shape must be 3 grid sizes (nz, ny, nx), got {shape!r}")
    out = []
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < MIN_CELLS:
            raise ValueError(f"shape must be 3 integers each >= {MIN_CELLS} (nz, ny, nx), got {shape!r}")
        out.append(int(n))
    return out[0], out[1], out[2]


def _check_dh(dh) -> float:
    if isinstance(dh, bool) or not isinstance(dh, numbers.Real) or not np.isfinite(dh) or dh <= 0:
        raise ValueError(f"dh must be a positive finite grid spacing in m, got {dh!r}")
    return float(dh)


def _sediments(u: np.ndarray, yn: np.ndarray, xn: np.ndarray) -> np.ndarray:
    """Unfaulted sediment velocity at normalised depth ``u`` and position (``yn``, ``xn``) in [0, 1)."""
    v = np.full(np.broadcast_shapes(u.shape, yn.shape, xn.shape), SEDIMENT_VELOCITIES[0])
    for k, (depth, vel) in enumerate(zip(INTERFACE_DEPTHS, SEDIMENT_VELOCITIES[1:])):
        # Regional dip down to +x and gently up to +y, plus a long-wavelength undulation per interface.
        surface = (depth + 0.04 * (xn - 0.5) - 0.02 * (yn - 0.5)
                   + 0.015 * np.sin(2 * np.pi * (0.8 * xn + 0.3 * yn) + 1.3 * k)
                   + 0.008 * np.cos(2 * np.pi * (0.6 * yn - 0.2 * xn) + 0.7 * k))
        v = np.where(u >= surface, vel, v)
    # A thin bed dipping down to +x (about 19 degrees on a cube) cutting across the layers.
    top = 0.30 + 0.35 * xn - 0.05 * (yn - 0.5)
    return np.where((u >= top) & (u < top + 0.035), REFLECTOR_VELOCITY, v)


def layered_3d(shape: tuple[int, int, int] = (64, 64, 64), dh: float = 25.0, kind: str = "true") -> np.ndarray:
    """Deterministic 3-D P-wave velocity model for 3-D acoustic FWI.

    Every feature is defined on the normalised coordinates ``u = z / Lz``, ``yn = y / Ly``,
    ``xn = x / Lx`` of the grid points ``z = i * dh`` (and so on), with extents ``Lz = nz * dh``,
    ``Ly = ny * dh``, ``Lx = nx * dh`` (m): the same geology at any shape and spacing, stretched with the
    box's aspect ratio (the dips quoted below are those of a cube). Built from the bottom up:

    1. **Sediments**: six layers of :data:`SEDIMENT_VELOCITIES` 1800, 2050, 2350, 2700, 3100 and
       3500 m/s, separated by interfaces at mean depths :data:`INTERFACE_DEPTHS` 0.20, 0.33, 0.46,
       0.60 and 0.76. Each interface dips down to +x (0.04 of the depth across the model), rises
       slightly to +y (0.02) and undulates gently (amplitudes 0.015 and 0.008, wavelengths longer
       than the model, a different phase per interface); they never cross.
    2. **Dipping reflector**: a bed 0.035 of the depth thick at 3300 m/s whose top is at
       ``u = 0.30 + 0.35 xn - 0.05 (yn - 0.5)``, cutting across the layers.
    3. **Normal fault**: the plane ``xn = 0.42 + 0.35 u + 0.04 (yn - 0.5)``, striking along y and
       dipping about 70 degrees to +x. The hanging wall (``xn`` beyond the plane) is dropped by
       :data:`FAULT_THROW` = 0.10 of the depth: there the sediments and the reflector are those
       found 0.10 higher on the unfaulted column.
    4. **Salt**: an ellipsoid-like body at 4500 m/s in the lower half of the footwall, centred at
       ``(u, yn, xn) = (0.68, 0.5, 0.30)`` with semi-axes (0.13, 0.28, 0.15), its radius modulated
       by up to 12 % with azimuth and depth (a lobed, non-symmetric outline); top near 0.55, base
       near 0.81 of the depth.
    5. **Water**: 1500 m/s above the seafloor at ``u = 0.07 + 0.01 sin(2 pi (xn + 0.5 yn))``
       (0.06-0.08 of the depth), drawn over everything.

    Velocities stay within [1500, 4500] m/s.

    Parameters
    ----------
    shape : tuple of 3 int, default (64, 64, 64)
        (nz, ny, nx) grid points, each >= 8; axis 0 is depth.
    dh : float, default 25.0
        Grid spacing in m on every axis, positive and finite.
    kind : {'true', 'smooth'}, default 'true'
        ``'true'``: the model above. ``'smooth'``: a starting model for FWI,
        :func:`sweep.datasets.smooth_model` of it: an isotropic Gaussian of standard deviation 250 m
        (``SMOOTHING_LENGTH_M``) on the slowness, the water column kept at 1500 m/s unsmoothed.
        The smoothing length is physical, so on a coarse grid or a small box it is many cells.

    Returns
    -------
    numpy.ndarray, float32, (nz, ny, nx), m/s; a new C-contiguous array the caller owns.

    Raises
    ------
    ValueError
        If ``shape``, ``dh`` or ``kind`` is invalid (the message names the argument).
    """
    nz, ny, nx = _check_shape(shape)
    dh = _check_dh(dh)
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")

    # Normalised coordinates of the grid points i * dh / (n * dh), computed in metres.
    u = (np.arange(nz) * dh / (nz * dh))[:, None, None]
    yn = (np.arange(ny) * dh / (ny * dh))[None, :, None]
    xn = (np.arange(nx) * dh / (nx * dh))[None, None, :]

    hanging = xn > 0.42 + 0.35 * u + 0.04 * (yn - 0.5)
    vp = np.where(hanging, _sediments(u - FAULT_THROW, yn, xn), _sediments(u, yn, xn))

    # Salt: normalised radius of an ellipsoid, compared with a lobed threshold.
    dz, dy, dx = (u - 0.68) / 0.13, (yn - 0.5) / 0.28, (xn - 0.30) / 0.15
    azimuth = np.arctan2(dy, dx)
    lobes = 1.0 + 0.08 * np.cos(3 * azimuth + 0.5) + 0.04 * np.sin(2 * np.pi * 1.5 * dz)
    vp = np.where(dz ** 2 + dy ** 2 + dx ** 2 < lobes ** 2, SALT_VELOCITY, vp)

    seafloor = SEAFLOOR_DEPTH + 0.01 * np.sin(2 * np.pi * (xn + 0.5 * yn))
    vp = np.where(u < seafloor, WATER_VELOCITY, vp)

    vp = np.ascontiguousarray(np.broadcast_to(vp, (nz, ny, nx)), dtype=np.float32)
    return smooth_model(vp, dh, SMOOTHING_LENGTH_M) if kind == "smooth" else vp
