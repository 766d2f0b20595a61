"""The variable-density acoustic wave equation in velocity and impedance (VRZ), 2-D and 3-D: what it takes,
exposes and needs for stability."""
from __future__ import annotations

import warnings
from typing import Sequence

import torch

from .acoustic import Acoustic
from .specs import ModelSpec
from .stencils import SECOND_DERIVATIVE

#: Densities (kg/m^3) a model's ``z / vp`` is expected within: water is 1000, rocks reach ~3000 and metal ores
#: ~8000; outside this range the models are more likely swapped or in other units (density passed as
#: impedance gives z / vp ~ 0.5).
DENSITY_RANGE = (100.0, 20000.0)


class AcousticVRZ(Acoustic):
    r"""2-D variable-density acoustic wave equation, parameterised by P-wave velocity and impedance.

    .. math:: \frac{\partial^2 p}{\partial t^2} = \kappa \nabla\cdot\left(b \nabla p\right)
              + \kappa b \, f(t)\, \delta(\mathbf{x} - \mathbf{x}_s),
       \qquad \kappa = z v_p \;\text{(bulk modulus)},\quad b = v_p / z \;\text{(buoyancy, 1/density)}

    Models are ``[vp, z]``: ``vp`` in m/s and ``z`` = density x velocity in kg m^-2 s^-1 (density is
    ``z / vp``). The source term is ``vp^2 f delta`` as in :class:`Acoustic`, with the same fields, C-PML,
    free surface, orders and data layout, so a constant density gives :class:`Acoustic`'s data.

    Discretisation: along each axis, ``div(b grad p)`` at cell i is
    ``sum_k c_k (b_i + b_{i+-k}) / 2 (p_{i+-k} - p_i) / dh^2`` with ``c_k`` the centred second-derivative
    coefficients: symmetric, of the same radius as :class:`Acoustic`'s stencil, and exactly it when ``b`` is
    constant. The model gradient treats the pair coefficients that reach outside the physical grid (into
    the absorbing layer or past a free surface) as part of the fixed padding (see
    :class:`~sweep.propagator.torch.PropTorch`): a finite-difference check keeps the outer ``space_order / 2``
    rings of cells fixed.

    Parameters
    ----------
    device : torch.device or str, optional
        Where models and wavefields live. Default: CPU.
    """

    MODEL_SPECS: list[ModelSpec] = [
        ModelSpec(name="vp", unit="m/s", description="Acoustic P-wave velocity model."),
        ModelSpec(name="z", unit="kg/(m^2 s)", description="Acoustic impedance model: density times vp."),
    ]
    name = "acoustic_vrz"
    """The equation's key in the stepper registry (shared by its 2-D and 3-D forms)."""

    def stability_velocity(self, models: Sequence[torch.Tensor], space_order: int) -> float:
        """The velocity (m/s) whose constant-density stability limit is this model's: the peak over cells of
        ``sqrt(kappa_i bbar_i)``, ``bbar_i`` the mean of cell i's pair coefficients ``(b_i + b_j) / 2`` over
        its stencil, weighted by ``|c_k|``. Equal to the peak velocity for a constant density; for order 2 it
        bounds the step operator's spectral radius (Gershgorin: the row sums of ``kappa div(b grad)``); for
        higher orders measured, not proven (tests/test_vrz_physics.py)."""
        vp, z = (m.detach().to(torch.float64) for m in models[:2])
        buoyancy = vp / z
        weights = [abs(c) for c in SECOND_DERIVATIVE[space_order][1:]]
        total = torch.zeros_like(buoyancy)
        for axis in range(buoyancy.ndim):
            n = buoyancy.shape[axis]
            r = len(weights)
            wide = torch.cat([buoyancy.narrow(axis, 0, 1).expand(*buoyancy.shape[:axis], r, *buoyancy.shape[axis + 1:]),
                              buoyancy,
                              buoyancy.narrow(axis, n - 1, 1).expand(*buoyancy.shape[:axis], r, *buoyancy.shape[axis + 1:])],
                             dim=axis)  # edge-replicated, as the step extends b
            for k, w in enumerate(weights, 1):
                total += w * (buoyancy + 0.5 * (wide.narrow(axis, r + k, n) + wide.narrow(axis, r - k, n)))
        mean = total / (2 * buoyancy.ndim * sum(weights))
        return float((z * vp * mean).max().sqrt())

    def check_model_values(self, models: Sequence[torch.Tensor]) -> None:
        """Warn when the implied density ``z / vp`` leaves :data:`DENSITY_RANGE` (kg/m^3), naming the models."""
        vp, z = (m.detach() for m in models[:2])
        density = z / vp
        low, high = float(density.min()), float(density.max())
        if low < DENSITY_RANGE[0] or high > DENSITY_RANGE[1]:
            warnings.warn(f"models: the density z / vp ranges over {low:.3g}-{high:.3g} kg/m^3, outside "
                          f"{DENSITY_RANGE[0]:g}-{DENSITY_RANGE[1]:g}; models are [vp (m/s), z = density x vp "
                          "(kg m^-2 s^-1)] in that order (a density passed as z gives ~0.5)", stacklevel=4)


class AcousticVRZ3D(AcousticVRZ):
    r"""3-D variable-density acoustic wave equation in velocity and impedance, on (nz, ny, nx) grids.

    The same models, fields, discretisation and options as :class:`AcousticVRZ`; sources and receivers are
    ``[x, y, z]`` grid indices and the delta is spread over one cell (``1/dh^3``), as in
    :class:`~sweep.equations.acoustic.Acoustic3D`.

    Parameters
    ----------
    device : torch.device or str, optional
        Where models and wavefields live. Default: CPU.
    """

    ndim = 3
    """Grid dimensions: models are (nz, ny, nx)."""
