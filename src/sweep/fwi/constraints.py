"""What an update may change: a mask of the cells that are inverted, and velocity bounds that keep
every model the optimiser proposes stable for the run's (internal) time step and above the dispersion
limit."""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..equations.sampling import MIN_POINTS_PER_WAVELENGTH
from ..signal import max_frequency

STABILITY_MARGIN = 0.98
"""Default upper bound as a fraction of the largest stable velocity: a model at the bound stays stable."""


def stable_velocity_limit(max_stable_dt, dt: float, vref: float = 1000.0) -> float:
    """Largest velocity (m/s) for which ``dt`` (s) is stable.

    ``max_stable_dt(v)`` (e.g. ``PropTorch.max_stable_dt``) is inversely proportional to ``v`` for a
    leapfrog scheme (the CFL condition ``v dt / dh <= c``), so the limit is ``vref * dt_max(vref) / dt``.
    """
    return vref * max_stable_dt(vref) / dt


def default_bounds(propagator, wavelet: torch.Tensor, start: torch.Tensor) -> tuple[float, float]:
    """Velocity bounds (m/s) that keep every update usable by ``propagator`` (a PropTorch).

    lower: the slowest velocity with 5 grid points per shortest wavelength of ``wavelet`` (..., nt), sampled
    at the propagator's ``dt``, or the starting model's minimum if that is lower; upper:
    ``STABILITY_MARGIN`` times the largest velocity stable for the step the propagator takes, ``dt / r``
    with time sub-stepping (r = ``propagator.step_ratio``). So no update makes the next iteration raise or
    warn (nor need a larger r, which a sub-stepping propagator refuses).

    Raises
    ------
    ValueError
        ``propagator.step_ratio`` is not fixed yet (``substep='auto'`` without ``pml_vmax``, before its
        first call): the stable step is not known.
    """
    if propagator.step_ratio is None:
        raise ValueError("the propagator's substep='auto' has not fixed its step ratio yet (it does so from pml_vmax "
                         "or its first call), so its stable step is unknown: give pml_vmax, or call it once first")
    fmax = max_frequency(wavelet.detach().cpu().numpy(), propagator.dt)
    lower = min(float(start.min()), MIN_POINTS_PER_WAVELENGTH * fmax * propagator.dh)
    internal_dt = propagator.dt / propagator.step_ratio
    return lower, STABILITY_MARGIN * stable_velocity_limit(propagator.max_stable_dt, internal_dt)


def water_mask(model: np.ndarray | torch.Tensor, water_velocity: float = 1500.0, tolerance: float = 1.0) -> np.ndarray:
    """Update mask of ``model``'s shape ((nz, nx) or (nz, ny, nx)) bool, False on the water layer: the
    top depth levels (rows, or depth slices in 3-D) whose every cell is within ``tolerance`` m/s of
    ``water_velocity``. The water is known, and its cells next to the sources otherwise take the largest
    gradient values."""
    m = np.asarray(model.detach().cpu() if isinstance(model, torch.Tensor) else model)
    water_rows = np.all(np.abs(m - water_velocity) <= tolerance, axis=tuple(range(1, m.ndim)))
    depth = int(np.argmin(water_rows)) if not water_rows.all() else m.shape[0]
    mask = np.ones(m.shape, dtype=bool)
    mask[:depth] = False
    return mask


def _axes(ndim: int) -> str:
    return "nz, ny, nx" if ndim == 3 else "nz, nx"


class VelocityConstraints:
    """Gradient mask and bounds, applied around each optimiser step.

    Parameters
    ----------
    shape : (nz, nx) or (nz, ny, nx)
    lower, upper : float
        Bounds (in ``unit``) enforced on updated cells by projection after each step.
    mask : bool array of ``shape``, optional
        True where the model may change; default everywhere. The gradient is zeroed where False, and
        those cells are restored after the step, so no optimiser (momentum, weight decay) moves them.
    quantity, unit : str
        What is bounded, for messages (default the velocity in m/s; e.g. ``'impedance'``, ``'kg/(m^2 s)'``).
    """

    def __init__(self, shape: tuple[int, int], lower: float, upper: float, mask: np.ndarray | None = None, *,
                 quantity: str = "velocity", unit: str = "m/s") -> None:
        self.quantity, self.unit = quantity, unit
        if not (0 < lower < upper < float("inf")):
            raise ValueError(f"{quantity} bounds must satisfy 0 < lower < upper < inf, got lower={lower}, upper={upper}")
        if mask is None:
            mask = np.ones(shape, dtype=bool)
        mask = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)
        if mask.dtype != np.bool_:
            raise ValueError(f"mask must be a boolean array (True where the model is updated), got dtype {mask.dtype}")
        if mask.shape != tuple(shape):
            raise ValueError(f"mask must have the model's shape {tuple(shape)} ({_axes(len(shape))}), got {mask.shape}")
        if not mask.any():
            raise ValueError("mask is False everywhere: nothing would be inverted")
        self.lower, self.upper, self.mask = float(lower), float(upper), mask

    def check_start(self, model: torch.Tensor) -> None:
        """Raise ValueError if the starting model lies outside the bounds on an updated cell."""
        free = model.detach()[torch.as_tensor(self.mask, device=model.device)]
        lo, hi = float(free.min()), float(free.max())
        if lo < self.lower or hi > self.upper:
            raise ValueError(f"the starting {self.quantity} spans {lo:g}-{hi:g} {self.unit} on the updated cells, "
                             f"outside the {self.quantity} bounds [{self.lower:g}, {self.upper:g}] {self.unit}")

    def mask_gradient(self, grad: torch.Tensor) -> None:
        """Zero ``grad`` (the model's shape) in place where the model is held fixed."""
        grad.mul_(torch.as_tensor(self.mask, device=grad.device, dtype=grad.dtype))

    @torch.no_grad()
    def project(self, model: torch.Tensor, before: torch.Tensor) -> None:
        """After a step: clamp updated cells to the bounds and restore fixed cells from ``before``."""
        keep = torch.as_tensor(self.mask, device=model.device)
        model.copy_(torch.where(keep, model.clamp(self.lower, self.upper), before))

    def describe(self) -> dict:
        return {"lower": self.lower, "upper": self.upper,
                "mask_sha": hashlib.sha256(np.packbits(self.mask).tobytes()).hexdigest()}
