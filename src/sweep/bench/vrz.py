"""The density of ``sweep-bench --equation vrz`` and ``vrz3d``: their shots are the acoustic ones with an
impedance ``z = density x vp`` (kg m^-2 s^-1) added, true and starting, for
:class:`~sweep.equations.AcousticVRZ` / :class:`~sweep.equations.AcousticVRZ3D` (models ``[vp, z]``).

2-D (``vrz``): the notebook shot's Marmousi-II with its shipped density (``load_marmousi(model='rho')``),
decimated like vp; the starting impedance is the smooth density (250 m Gaussian on density, water kept)
times the smooth vp. The notebook's dt = 2 ms stays stable: the density contrasts lower the limit on the
25 m grid from Acoustic's 3.26 ms to 3.18 ms (:meth:`~sweep.equations.AcousticVRZ.stability_velocity`
4815 m/s against a peak vp of 4700 m/s), so no sub-stepping is needed; the limit is recorded with the
results, and on a grid where dt is unstable (``--decimate 1``: 1.59 ms) the shot steps at dt / r inside
(``PropTorch(substep=r)``, the data still at dt), which results.md says.

3-D (``vrz3d``): the layered 3-D model with Gardner's density ``rho = 310 vp^0.25`` (kg/m^3, vp in m/s)
below the sea floor and 1000 kg/m^3 in the water (:func:`sweep.datasets.water_mask`), true and smooth.
"""
from __future__ import annotations

import numpy as np
import torch

from ..datasets import load_marmousi, water_mask
from ..propagator.substep import smallest_ratio
from .models import BENCH_EQUATIONS
from .shot3d import ORDER3
from .speed import DT, ORDER

GARDNER_A, GARDNER_B = 310.0, 0.25
"""Gardner's relation ``rho = GARDNER_A * vp ** GARDNER_B``: kg/m^3 from vp in m/s."""

WATER_DENSITY = 1000.0
"""Density (kg/m^3) of the 3-D model's water column."""


def gardner_density(vp: np.ndarray) -> np.ndarray:
    """Gardner's density (kg/m^3, float32, ``vp``'s shape) of ``vp`` (m/s, axis 0 depth), the water column
    (:func:`~sweep.datasets.water_mask`) at :data:`WATER_DENSITY`."""
    rho = (GARDNER_A * vp.astype(np.float64) ** GARDNER_B).astype(np.float32)
    rho[water_mask(vp)] = WATER_DENSITY
    return rho


def _impedance(rho: np.ndarray, vp: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rho)) * vp


def with_marmousi_density(shot: dict, vp_start: torch.Tensor, decimate: int) -> dict:
    """The 2-D notebook ``shot`` (of :func:`~sweep.bench.shot.bench_shot`) made a VRZ shot: ``z`` the true
    impedance (shipped density x vp) and ``z_start`` the smooth one (smooth density x ``vp_start``), both
    every ``decimate``-th Marmousi cell, kg m^-2 s^-1; ``equation='vrz'``; ``max_stable_dt`` (s, of
    :func:`stable_dt`) and ``substep``: None where the seed's dt is stable (the notebook's grid and the
    quick one), else the internal steps per data sample that make it so (a finer ``--decimate``), which
    :func:`~sweep.bench.speed.seed_propagator` passes on."""
    rho, rho_start = (load_marmousi(kind, model="rho")[::decimate, ::decimate] for kind in ("true", "smooth"))
    out = dict(shot, z=_impedance(rho, shot["vp"]), z_start=_impedance(rho_start, vp_start), equation="vrz")
    return _with_stability(out, vp_start, DT, ORDER)


def with_gardner_density(shot: dict, vp_start: torch.Tensor) -> dict:
    """The 3-D ``shot`` (of :func:`~sweep.bench.shot3d.shot3d`) made a VRZ shot: ``z`` and ``z_start`` the
    impedances of :func:`gardner_density` of the true and starting vp; ``equation='vrz3d'``;
    ``max_stable_dt`` and ``substep`` as :func:`with_marmousi_density` sets them (dt = 2 ms is stable on the
    bench's 25 m grids)."""
    out = dict(shot, z=_impedance(gardner_density(shot["vp"].numpy()), shot["vp"]),
               z_start=_impedance(gardner_density(vp_start.numpy()), vp_start), equation="vrz3d")
    return _with_stability(out, vp_start, shot["dt"], ORDER3)


def _with_stability(shot: dict, vp_start: torch.Tensor, dt: float, space_order: int) -> dict:
    """``shot`` with ``max_stable_dt`` (s) and ``substep`` (None, or the internal steps per data sample of
    ``dt`` that its models need)."""
    limit = stable_dt(shot, vp_start, space_order)
    ratio = smallest_ratio(dt, limit)
    return dict(shot, max_stable_dt=limit, substep=ratio if ratio > 1 else None)


def stable_dt(shot: dict, vp_start: torch.Tensor, space_order: int) -> float:
    """The largest stable time step (s) on the VRZ ``shot``'s grid for both its true and its starting models."""
    eq = BENCH_EQUATIONS[shot["equation"]].cls()
    vmax = max(eq.stability_velocity(models, space_order)
               for models in ([shot["vp"], shot["z"]], [vp_start, shot["z_start"]]))
    return eq.max_stable_dt(vmax, shot["dh"], space_order)
