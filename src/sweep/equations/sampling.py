"""How finely to sample a model in space and time: the numerical dispersion of leapfrog with the centred
Laplacians, and :func:`suggest`, which turns an accuracy into a grid spacing, a stencil order and a step."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..messages import plain, round_down
from .acoustic import Acoustic, Acoustic3D
from .stencils import SPACE_ORDERS, check_space_order, laplacian_symbol

MIN_POINTS_PER_WAVELENGTH = 5.0
"""Fewest grid points per shortest wavelength (``vmin / fmax``) under which a propagation call warns of
numerical dispersion. It is the classic rule for 4th order (the default), whose phase-velocity error at
5 points is 1.2%: about :data:`DEFAULT_TOLERANCE`."""

DEFAULT_TOLERANCE = 0.01
"""Default bound on the relative phase-velocity error at the highest frequency. 1% is the classic
rules of thumb (about 13 points per wavelength at 2nd order, 5.3 at 4th), and the highest frequency
(:func:`sweep.signal.max_frequency`: 5% of the spectral peak) is where a wavelet is weakest: a Ricker's
peak frequency, about 2.4 times lower, sees a 4th-order error some 30 times smaller."""

COURANT_FRACTION = 0.95
"""Largest step :func:`suggest` takes, as a fraction of the stability limit: leapfrog exactly at the limit is
only marginally stable, and an inversion may push the model a little above the ``vmax`` planned for."""

# Fractions of the highest frequency at which the time-stepping error is evaluated (it need not peak at
# the highest frequency: the stencil's lag grows faster there and may offset it).
_FREQUENCIES = np.linspace(1.0 / 256.0, 1.0, 256)
_BISECTIONS = 60


def phase_velocity_error(space_order: int, theta, courant: float = 0.0, ndim: int = 1):
    """Relative error ``c_num / v - 1`` of the phase velocity of leapfrog with the centred Laplacian of
    ``space_order``, for a plane wave along the diagonal of ``ndim`` grid axes (1: along an axis).

    From the discrete dispersion relation ``sin(w dt / 2) = (C / 2) sqrt(sum_a S(k_a dh))``, with
    ``C = v dt / dh``, ``S`` the :func:`~sweep.equations.stencils.laplacian_symbol` and the wavenumber
    ``k`` split equally between the axes (``k_a = k / sqrt(ndim)``); ``c_num = w / k``. Negative: the
    wave lags (the stencil's error, the whole of it as ``courant -> 0``); the step makes it lead.
    Along an axis the lag and along the diagonal the lead are the largest of any direction.

    Parameters
    ----------
    space_order : {2, 4, 6, 8}
    theta : float or array
        ``k dh`` in radians per cell: ``2 pi / (points per wavelength)``, in (0, pi].
    courant : float
        ``v dt / dh`` for this wave's velocity ``v``, at most the stability limit; 0: no time error.
    ndim : int
        The number of axes the direction is the diagonal of.
    """
    theta = np.asarray(theta, dtype=np.float64)
    root = np.sqrt(ndim * laplacian_symbol(space_order, theta / math.sqrt(ndim)))
    if courant == 0:
        return root / theta - 1.0
    return 2.0 * np.arcsin(courant * root / 2.0) / (courant * theta) - 1.0


@dataclass(frozen=True)
class Suggestion:
    """A grid spacing, stencil order and time step for a required accuracy (see :func:`suggest`).

    Attributes
    ----------
    dh : float
        Grid spacing (m).
    space_order : int
    dt : float
        The propagation's step (s): the largest both stable (within :data:`COURANT_FRACTION`) and accurate,
        rounded down to 2 significant digits; with ``data_dt``, ``data_dt / substep``.
    substep : int or None
        With ``data_dt``: the fewest steps per data sample, ``r``, that make ``data_dt / r`` such a step.
    points_per_wavelength : float
        Grid points per shortest wavelength, ``vmin / (fmax dh)``.
    phase_error : float
        The largest relative phase-velocity error at this ``dh`` and ``dt`` or any smaller step.
    courant : float
        ``vmax dt / dh``.
    reason : str
        One line saying why (also ``str()`` of the suggestion).
    """

    dh: float
    space_order: int
    dt: float
    substep: int | None
    points_per_wavelength: float
    phase_error: float
    courant: float
    reason: str

    def __str__(self) -> str:
        return self.reason


def suggest(vmin: float, vmax: float, fmax: float, ndim: int | None = None, *, equation: Acoustic | None = None,
            tolerance: float = DEFAULT_TOLERANCE, space_orders: Iterable[int] = SPACE_ORDERS,
            data_dt: float | None = None,
            min_points_per_wavelength: float = MIN_POINTS_PER_WAVELENGTH) -> Suggestion:
    """The cheapest grid spacing, stencil order and time step whose phase-velocity error stays within
    ``tolerance`` for velocities ``vmin..vmax`` and frequencies up to ``fmax``.

    Accuracy: the relative phase-velocity error (:func:`phase_velocity_error`) is at most ``tolerance``
    for every velocity and direction, every frequency up to ``fmax``, at the returned ``dt`` and at any
    smaller step (a rounded one, ``data_dt / r``). The stencil makes waves lag, most at ``vmin`` and
    ``fmax`` along an axis, and the smaller the step the less leapfrog's lead offsets it: so ``dh`` is
    the largest (to 3 significant digits) at which that lag alone is within ``tolerance``, and at least
    ``min_points_per_wavelength`` points per shortest wavelength. ``dt`` is then the largest step within
    :data:`COURANT_FRACTION` of the stability limit (the equation's ``max_stable_dt`` for ``vmax``) at
    which the lead (largest at ``vmax`` along the diagonal) stays within ``tolerance`` too: it binds
    before stability only where ``vmax`` is close to ``vmin`` (at ``vmax`` the wavelength is then short).

    Cost model: ``(ndim * space_order + 1) / (dh^ndim * dt)``, i.e. cells per unit volume times steps per
    unit time times the points of the Laplacian's stencil each cell update reads; the absorbing layers
    and halos are left out (a few percent of a large grid). Of ``space_orders`` the cheapest wins (the
    lower order on a tie).

    Parameters
    ----------
    vmin, vmax : float
        Slowest and fastest velocity of the model (m/s), ``0 < vmin <= vmax``; for an inversion, the
        range the model may reach.
    fmax : float
        Highest frequency (Hz) the wavelet carries, e.g. :func:`sweep.signal.max_frequency`.
    ndim : {2, 3}, optional
        Dimensions of the grid. Default: the equation's, or 2.
    equation : Acoustic or Acoustic3D, optional
        Whose stability limit to use; its dimension must agree with ``ndim``. Default: the acoustic
        equation in ``ndim`` dimensions.
    tolerance : float
        Bound on the relative phase-velocity error, in (0, 1); default :data:`DEFAULT_TOLERANCE` (1%).
    space_orders : iterable of int
        Candidate orders, each one of (2, 4, 6, 8).
    data_dt : float, optional
        Sampling interval (s) of the data to model: the step is then ``data_dt / r`` for the smallest
        integer ``r``, returned as ``substep``.
    min_points_per_wavelength : float
        Floor on ``vmin / (fmax dh)``, >= 0. Default :data:`MIN_POINTS_PER_WAVELENGTH`, below which a
        propagation call warns: a suggestion made with the wavelet's ``max_frequency`` never warns. 0 lets
        orders 6 and 8 go coarser (at the default tolerance).

    Returns
    -------
    Suggestion

    Raises
    ------
    ValueError
        An argument out of range, named in the message.
    """
    vmin = _positive(vmin, "vmin")
    vmax = _positive(vmax, "vmax")
    if vmax < vmin:
        raise ValueError(f"vmax must be >= vmin, got vmax={plain(vmax)!r} and vmin={plain(vmin)!r} (m/s)")
    fmax = _positive(fmax, "fmax")
    equation = _equation(equation, ndim)
    ndim = equation.ndim
    if isinstance(tolerance, bool) or not (isinstance(tolerance, numbers.Real) and 0 < tolerance < 1):
        raise ValueError(f"tolerance must be a fraction in (0, 1), got {plain(tolerance)!r}")
    orders = _orders(space_orders)
    if data_dt is not None:
        data_dt = _positive(data_dt, "data_dt")
    if isinstance(min_points_per_wavelength, bool) or not (
            isinstance(min_points_per_wavelength, numbers.Real) and 0 <= min_points_per_wavelength < math.inf):
        raise ValueError(f"min_points_per_wavelength must be a finite number >= 0, got "
                         f"{plain(min_points_per_wavelength)!r}")

    plans = [_plan(order, equation, vmin, vmax, fmax, float(tolerance), data_dt, float(min_points_per_wavelength))
             for order in orders]
    best = min(plans, key=lambda p: p.cost)
    return _suggestion(best, plans, equation, vmin, vmax, fmax, float(tolerance), data_dt,
                       float(min_points_per_wavelength))


def _positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {plain(value)!r}")
    return float(value)


def _equation(equation: Acoustic | None, ndim: int | None) -> Acoustic:
    """The equation whose limit to use, checked against ``ndim``."""
    if ndim is not None and (isinstance(ndim, bool) or ndim not in (2, 3)):
        raise ValueError(f"ndim must be 2 or 3, got {plain(ndim)!r}")
    if equation is None:
        return Acoustic3D() if ndim == 3 else Acoustic()
    # The dispersion analysis is that of the acoustic scheme: another equation needs its own.
    if not isinstance(equation, Acoustic):
        raise ValueError(f"equation must be an Acoustic or Acoustic3D instance (or None), got {equation!r}")
    if ndim is not None and ndim != equation.ndim:
        raise ValueError(f"ndim={ndim} disagrees with equation={equation!r}, which is {equation.ndim}-D; "
                         "leave ndim out or make them agree")
    return equation


def _orders(space_orders: Iterable[int]) -> list[int]:
    try:
        orders = sorted({check_space_order(o) for o in space_orders})
    except (TypeError, ValueError):
        orders = []
    if not orders:
        raise ValueError(f"space_orders must be a non-empty collection of {SPACE_ORDERS}, got "
                         f"{plain(space_orders)!r}")
    return orders


def _lag(order: int, theta: float) -> float:
    """The stencil's phase lag (>= 0) along an axis at ``theta = k dh``, with no time error."""
    return float(-phase_velocity_error(order, theta))


def _lead(order: int, ndim: int, theta_max: float, courant: float) -> float:
    """The largest phase lead (or least lag) of any frequency up to the one at ``theta_max`` along an axis or
    the diagonal, at Courant number ``courant``: evaluated at ``vmax``, since for one frequency ``w dt``
    is fixed and the faster the wave the less of the stencil's lag offsets the step's lead."""
    theta = theta_max * _FREQUENCIES
    return max(float(phase_velocity_error(order, theta, courant, d).max()) for d in {1, ndim})


def _largest(ok, upper: float) -> float:
    """The largest ``x`` in ``(0, upper]`` with ``ok(x)``, for an ``ok`` that holds below some point only."""
    if ok(upper):
        return upper
    lo, hi = 0.0, upper
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


@dataclass(frozen=True)
class _Plan:
    """What one order needs: spacing and step, what bound them, the error and the cost they give."""

    order: int
    dh: float
    dt: float
    substep: int | None
    limit: float          # the equation's largest stable step at dh (s)
    floor_bound: bool     # dh set by the points-per-wavelength floor, not the tolerance
    lead_bound: bool      # dt set by the time-stepping error, not stability
    error: float
    cost: float


def _plan(order: int, equation: Acoustic, vmin: float, vmax: float, fmax: float, tolerance: float,
          data_dt: float | None, min_points: float) -> _Plan:
    ndim = equation.ndim
    # The lag grows with k dh up to Nyquist (2 points per wavelength), where it may still be within tolerance.
    theta = _largest(lambda t: _lag(order, t) <= tolerance, math.pi)
    dh_accurate = theta * vmin / (2.0 * math.pi * fmax)
    dh_floor = vmin / (fmax * min_points) if min_points > 0 else math.inf
    dh = round_down(min(dh_accurate, dh_floor), 3)

    limit = equation.max_stable_dt(vmax, dh, order)
    theta_vmax = 2.0 * math.pi * fmax * dh / vmax
    # The lead grows with the step: the largest stable step that keeps it within tolerance.
    dt_bound = _largest(lambda dt: _lead(order, ndim, theta_vmax, vmax * dt / dh) <= tolerance,
                        COURANT_FRACTION * limit)
    if data_dt is None:
        substep, dt = None, round_down(dt_bound, 2)
    else:
        substep = max(1, math.ceil(data_dt / dt_bound))
        if substep > 1 and data_dt / (substep - 1) <= dt_bound:  # the quotient rounded up past a whole number
            substep -= 1
        dt = data_dt / substep
    error = max(_lag(order, 2.0 * math.pi * fmax * dh / vmin), _lead(order, ndim, theta_vmax, vmax * dt / dh))
    return _Plan(order=order, dh=dh, dt=dt, substep=substep, limit=limit, floor_bound=dh_floor < dh_accurate,
                 lead_bound=dt_bound < COURANT_FRACTION * limit, error=error,
                 cost=(ndim * order + 1) / (dh ** ndim * dt))


def _suggestion(best: _Plan, plans: list[_Plan], equation: Acoustic, vmin: float, vmax: float, fmax: float,
                tolerance: float, data_dt: float | None, min_points: float) -> Suggestion:
    order, dh, dt, ndim = best.order, best.dh, best.dt, equation.ndim
    points = vmin / (fmax * dh)
    floor = f"the {min_points:g}-point floor; " if best.floor_bound else ""
    others = [p for p in plans if p is not best]
    runner_up = min(others, key=lambda p: p.cost) if others else None
    choice = "the only order tried"
    if runner_up:
        choice = (f"the cheapest of orders {', '.join(str(p.order) for p in plans)} by cells x steps x stencil "
                  f"points (order {runner_up.order} costs {runner_up.cost / best.cost:.2f}x)")
    limit = best.limit
    step = f"dt={_ms(dt)} is {dt / limit:.0%} of the stability limit {_ms(limit)} for vmax={vmax:g} m/s in {ndim}-D"
    if best.lead_bound:
        step += ", held down by the time-stepping error at vmax"
    if data_dt is not None:
        step += f", data_dt={_ms(data_dt)} in {best.substep} step{'s' if best.substep > 1 else ''}"
    reason = (f"order {order} at dh={dh:.3g} m ({points:.2f} points per {vmin / fmax:.3g} m shortest wavelength, "
              f"{vmin:g} m/s at {fmax:.4g} Hz: {floor}phase error {best.error:.2%} <= {tolerance * 100:g}%) is "
              f"{choice}; {step}")
    return Suggestion(dh=dh, space_order=order, dt=dt, substep=best.substep, points_per_wavelength=points,
                      phase_error=best.error, courant=vmax * dt / dh, reason=reason)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"
