"""The 3-D inversion problem: :func:`~sweep.datasets.layered_3d` from its smoothed model, a small grid of
surface shots recorded by one fixed receiver patch, and observed data computed with the same propagator
from the true model."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..datasets import layered_3d
from ..equations import Acoustic3D
from ..messages import plain
from ..propagator.torch import PropTorch
from .problem import Problem, delayed_ricker, observe, unit_peak

DEFAULT_SHAPE = (32, 32, 32)
"""(nz, ny, nx) of the default 3-D problem: 1.6 km cubed at 50 m."""
DEFAULT_DH = 50.0
"""Grid spacing (m) of the default 3-D problem."""


def shot_grid(nshots: int) -> tuple[int, int]:
    """(rows along y, columns along x) of ``nshots`` sources on the most nearly square full grid:
    4 -> (2, 2), 6 -> (2, 3), 9 -> (3, 3), 2 -> (1, 2), a prime p -> (1, p)."""
    rows = max(d for d in range(1, math.isqrt(nshots) + 1) if nshots % d == 0)
    return rows, nshots // rows


def _centred(count: int, n: int) -> np.ndarray:
    """``count`` indices spread evenly over ``n`` cells, each at the centre of its share: 1 -> n/2,
    2 -> n/4 and 3n/4."""
    return np.floor((np.arange(count) + 0.5) * n / count).astype(np.int64)


def layered3d_problem(*, shape: tuple[int, int, int] = DEFAULT_SHAPE, dh: float = DEFAULT_DH, nshots: int = 4,
                      frequency: float = 2.5, duration: float = 2.0, dt: float = 0.005, depth: int = 1,
                      margin: int = 2, abcn: int = 10, dtype: torch.dtype = torch.float32, data_batch: int = 2,
                      **propagator_options) -> Problem:
    """Build the 3-D inversion of ``layered_3d(shape, dh)`` from ``layered_3d(shape, dh, kind='smooth')``.

    With the defaults: 32 x 32 x 32 cells at 50 m (1.6 km cubed, 1500-4500 m/s, water on top), 4 shots
    on a 2 x 2 grid at depth 50 m, 784 receivers (every cell of the surface patch 2 cells in from the
    edges, at the sources' depth), a 2.5 Hz Ricker (highest frequency 5.6 Hz: 5.4 points per
    wavelength at 1500 m/s), dt = 5 ms (stable to 4900 m/s), 400 steps: the base of the salt and the
    deepest interface, about 1.2 s two-way at zero offset, arrive by 1.8 s after the 0.6 s wavelet
    delay, and the far offsets of the patch by 2 s. No free surface (as in 2-D): with sources and
    receivers 50 m below a pressure-free surface, each ghost multiplies the spectrum by
    ``2 sin(2 pi f 50 m / 1500 m/s)``, both together by about ``(f / 2.5 Hz)^2`` below the peak (6x
    weaker at 1 Hz), taking the lowest frequencies, the ones the inversion leans on first.

    Parameters
    ----------
    shape : (nz, ny, nx)
        Cells, each at least 8 (``layered_3d``'s minimum); the geometry scales with the box.
    dh : float
        Grid spacing, m (the 250 m smoothing of the start is physical, so ``dh`` sets how smooth it is).
    nshots : int
        Sources on the most nearly square full grid (:func:`shot_grid`), each at the centre of its share
        of the surface.
    frequency : float
        Peak frequency (Hz) of the Ricker wavelet, delayed by 1.5 / frequency s, scaled by the power of
        two that brings the observed data's peak nearest to 1 (:func:`~sweep.fwi.problem.unit_peak`).
    duration : float
        Recording length, s (``nt = round(duration / dt)``).
    dt : float
        Sample interval of the wavelet and the data, s; stable for the true model's 4500 m/s, or sub-stepped
        (``substep`` in ``propagator_options``: r internal steps of dt / r per sample).
    depth : int
        Depth index of the sources and receivers (in the water).
    margin : int
        Receivers cover the surface but this many cells at each side edge.
    abcn : int
        Absorbing cells at each face (10, half the 2-D default: in 3-D the padded volume is the cost).
    dtype : torch.dtype
    data_batch : int
        Shots per call while making the observed data (bounds memory).
    **propagator_options
        Passed to :class:`PropTorch` (``impl``, ``memory``, ``eager_options``, ...); ``pml_vmax`` and
        ``pml_freq`` are fixed (the true model's peak, the wavelet's), so the absorbing layer does not
        change between iterations.
    """
    if not (isinstance(shape, (tuple, list)) and len(shape) == 3):
        raise ValueError(f"shape must be (nz, ny, nx), got {plain(shape)!r}")
    true = torch.tensor(layered_3d(tuple(shape), dh, "true"), dtype=dtype)
    start = torch.tensor(layered_3d(tuple(shape), dh, "smooth"), dtype=dtype)
    nz, ny, nx = true.shape
    if not 0 <= depth < nz:
        raise ValueError(f"depth must be a depth index in [0, {nz}), got {depth}")
    if isinstance(margin, bool) or not isinstance(margin, int) or not 0 <= margin < (min(ny, nx) + 1) // 2:
        raise ValueError(f"margin must be an integer in [0, {(min(ny, nx) + 1) // 2}), got {plain(margin)!r}")
    if isinstance(nshots, bool) or not isinstance(nshots, int) or not 1 <= nshots:
        raise ValueError(f"nshots must be a positive integer, got {plain(nshots)!r}")
    rows, cols = shot_grid(nshots)
    if rows > ny or cols > nx:
        raise ValueError(f"nshots={nshots} makes a {rows} x {cols} grid of sources, more than the {ny} x {nx} "
                         "surface cells")
    nt = int(round(duration / dt))
    propagator_options.setdefault("pml_vmax", float(true.max()))
    propagator_options.setdefault("pml_freq", frequency)
    prop = PropTorch(Acoustic3D(), (nz, ny, nx), dh, dt, nt, abcn=abcn, **propagator_options)
    sy, sx = np.meshgrid(_centred(rows, ny), _centred(cols, nx), indexing="ij")
    sources = np.stack([sx.ravel(), sy.ravel(), np.full(nshots, depth)], axis=-1)[:, None, :]
    ry, rx = np.meshgrid(np.arange(margin, ny - margin), np.arange(margin, nx - margin), indexing="ij")
    patch = np.stack([rx.ravel(), ry.ravel(), np.full(rx.size, depth)], axis=-1)
    receivers = np.broadcast_to(patch, (nshots,) + patch.shape).copy()
    wavelet = delayed_ricker(nt, dt, frequency, dtype)
    return Problem(true, start, unit_peak(observe(prop, wavelet, sources, receivers, true, data_batch)), prop)


def figure_cuts(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """(iz, iy, ix) of the figure's cuts, as in ``sweep.datasets.model3d_plot``: the depth slice through the
    salt's centre (0.68 of the depth), the inline section at mid y, the crossline through the salt
    (0.30 of the width)."""
    nz, ny, nx = shape
    return min(nz - 1, int(round(0.68 * nz))), ny // 2, min(nx - 1, int(round(0.30 * nx)))
