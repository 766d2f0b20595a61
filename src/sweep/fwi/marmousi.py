"""The default inversion problem: Marmousi-II from its smoothed model, a fixed surface spread, and
observed data computed with the same propagator from the true model."""
from __future__ import annotations

import numpy as np
import torch

from ..datasets import MARMOUSI_DH, load_marmousi
from ..equations import Acoustic, AcousticVRZ
from ..messages import plain
from ..propagator.torch import PropTorch
from .problem import Problem, delayed_ricker, observe

MarmousiProblem = Problem
"""The 2-D problem's type: :class:`~sweep.fwi.problem.Problem` (true and start are (nz, nx))."""


def marmousi_problem(*, decimate: int = 4, nshots: int = 12, frequency: float = 1.5, duration: float = 5.0,
                     dt: float = 0.005, depth: int = 1, dtype: torch.dtype = torch.float32,
                     data_batch: int = 4, equation: str = "acoustic", **propagator_options) -> Problem:
    """Build the Marmousi inversion.

    Parameters
    ----------
    decimate : int
        Keep every ``decimate``-th sample of the 12.5 m model: 4 gives 71 x 341 cells at 50 m.
    nshots : int
        Sources spread evenly along the surface, each recorded by a receiver in every column (one fixed
        spread, so source encoding applies).
    frequency : float
        Peak frequency (Hz) of the Ricker wavelet, delayed by 1.5 / frequency s.
    duration : float
        Recording length, s (``nt = round(duration / dt)``).
    dt : float
        Sample interval of the wavelet and the data, s; stable for the true model's 4700 m/s, or sub-stepped
        (``substep`` in ``propagator_options``: r internal steps of dt / r per sample).
    depth : int
        Row of the sources and receivers (in the water).
    dtype : torch.dtype
    data_batch : int
        Shots per call while making the observed data (bounds memory).
    equation : {'acoustic', 'vrz'}
        ``'acoustic'``: constant density (models ``[vp]``). ``'vrz'``: :class:`~sweep.equations.AcousticVRZ`
        with Marmousi-II's shipped density as the truth (models ``[vp, z = density x vp]``) and its smoothed
        density as the start (``true_density``, ``start_density``).
    **propagator_options
        Passed to :class:`PropTorch` (``impl``, ``memory``, ``eager_options``, ...). The absorbing layer is
        fixed (``pml_vmax`` the true model's peak, ``pml_freq`` the wavelet's), so it does not change
        between iterations.
    """
    if equation not in ("acoustic", "vrz"):
        raise ValueError(f"equation must be 'acoustic' or 'vrz', got {plain(equation)!r}")

    def load(array) -> torch.Tensor:
        return torch.tensor(array[::decimate, ::decimate].copy(), dtype=dtype)

    true, start = load(load_marmousi("true")), load(load_marmousi("smooth"))
    densities = (None, None)
    if equation == "vrz":
        densities = (load(load_marmousi("true", model="rho")), load(load_marmousi("smooth", model="rho")))
    nz, nx = true.shape
    if not 0 <= depth < nz:
        raise ValueError(f"depth must be a row index in [0, {nz}), got {depth}")
    if not isinstance(nshots, int) or not 1 <= nshots <= nx:
        raise ValueError(f"nshots must be an integer in [1, {nx}], got {plain(nshots)!r}")
    nt = int(round(duration / dt))
    propagator_options.setdefault("pml_vmax", float(true.max()))
    propagator_options.setdefault("pml_freq", frequency)
    physics = AcousticVRZ() if equation == "vrz" else Acoustic()
    prop = PropTorch(physics, (nz, nx), decimate * MARMOUSI_DH, dt, nt, **propagator_options)
    columns = np.linspace(1, nx - 2, nshots).round().astype(np.int64)
    sources = np.stack([columns, np.full(nshots, depth)], axis=-1)[:, None, :]
    spread = np.stack([np.arange(nx), np.full(nx, depth)], axis=-1)
    receivers = np.broadcast_to(spread, (nshots, nx, 2)).copy()
    wavelet = delayed_ricker(nt, dt, frequency, dtype)
    models = [true] if densities[0] is None else [true, true * densities[0]]
    return Problem(true, start, observe(prop, wavelet, sources, receivers, models, data_batch), prop, *densities)
