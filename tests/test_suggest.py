"""``sweep.equations.suggest``: the step it returns is stable, the spacing the largest within the phase
error it promises (checked over velocities, frequencies and directions densely, not at the points it
evaluates), the order the cheapest by its cost model; and its dispersion relation against the stencils
applied on a grid and leapfrog run on a periodic grid."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sweep.equations import Acoustic, Acoustic3D, Suggestion, suggest
from sweep.equations.sampling import (COURANT_FRACTION, DEFAULT_TOLERANCE, MIN_POINTS_PER_WAVELENGTH,
                                      phase_velocity_error)
from sweep.equations.stencils import SECOND_DERIVATIVE, SPACE_ORDERS, laplacian_symbol

# Marmousi-II (vp 1028-4700 m/s) with the seed shot's 5 Hz Ricker (highest frequency 11.75 Hz), a 3-D
# model, and a low-contrast one in which the time-stepping error rather than stability limits the step.
CASES = [(1028.0, 4700.0, 11.75, 2), (1500.0, 4000.0, 9.4, 3), (1500.0, 4500.0, 30.0, 2)]
LOW_CONTRAST = dict(vmin=1500.0, vmax=1600.0, fmax=15.0, ndim=3, min_points_per_wavelength=0)


def equation(ndim: int) -> Acoustic:
    return Acoustic3D() if ndim == 3 else Acoustic()


def worst_error(order: int, ndim: int, dh: float, dt: float, vmin: float, vmax: float, fmax: float) -> float:
    """Largest |relative phase-velocity error| over 9 velocities, 100 frequencies and 120 directions (random
    ones with the axis and the diagonal), from the plane-wave relation summed over each direction's axes."""
    directions = np.random.default_rng(0).normal(size=(120, ndim))
    directions = np.vstack([np.eye(ndim)[:1], np.full((1, ndim), 1.0), directions])
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    worst = 0.0
    for v in np.geomspace(vmin, vmax, 9):
        theta = 2 * np.pi * fmax * np.linspace(0.01, 1, 100) * dh / v                    # (F,)
        symbol = laplacian_symbol(order, theta[:, None, None] * directions[None]).sum(-1)  # (F, D)
        courant = v * dt / dh
        if courant == 0:
            error = np.sqrt(symbol) / theta[:, None] - 1
        else:
            error = 2 * np.arcsin(courant * np.sqrt(symbol) / 2) / (courant * theta[:, None]) - 1
        worst = max(worst, float(np.abs(error).max()))
    return worst


@pytest.mark.parametrize("vmin, vmax, fmax, ndim", CASES)
def test_dt_is_stable_and_the_stated_fraction_of_the_limit(vmin, vmax, fmax, ndim):
    s = suggest(vmin, vmax, fmax, ndim)
    limit = equation(ndim).max_stable_dt(vmax, s.dh, s.space_order)
    assert s.dt <= COURANT_FRACTION * limit
    # Rounding down to 2 significant digits gives up less than a tenth of the step.
    assert s.dt > COURANT_FRACTION * limit / 1.1
    assert f"is {s.dt / limit:.0%} of the stability limit" in s.reason and str(s) == s.reason
    assert s.courant == pytest.approx(vmax * s.dt / s.dh) and s.substep is None


@pytest.mark.parametrize("order", SPACE_ORDERS)
@pytest.mark.parametrize("vmin, vmax, fmax, ndim", CASES[:2])
def test_dh_is_the_largest_within_the_tolerance(order, vmin, vmax, fmax, ndim):
    s = suggest(vmin, vmax, fmax, ndim, space_orders=(order,), min_points_per_wavelength=0)
    errors = [worst_error(order, ndim, s.dh, step, vmin, vmax, fmax)
              for step in (s.dt, s.dt / 2, s.dt / 10, 0.0)]   # the returned step and smaller ones
    assert max(errors) <= DEFAULT_TOLERANCE * (1 + 1e-3)
    assert s.phase_error == pytest.approx(max(errors), rel=1e-3)
    assert worst_error(order, ndim, 1.05 * s.dh, 0.0, vmin, vmax, fmax) > DEFAULT_TOLERANCE
    assert s.points_per_wavelength == pytest.approx(vmin / fmax / s.dh)


def test_the_points_per_wavelength_floor_binds_high_orders():
    vmin, vmax, fmax, ndim = CASES[0]
    for order in (6, 8):   # within 1% below 5 points: the floor, not the tolerance, sets dh
        s = suggest(vmin, vmax, fmax, ndim, space_orders=(order,))
        assert s.points_per_wavelength >= MIN_POINTS_PER_WAVELENGTH
        assert vmin / fmax / (1.01 * s.dh) < MIN_POINTS_PER_WAVELENGTH   # dh to 3 significant digits
        assert f"the {MIN_POINTS_PER_WAVELENGTH:g}-point floor" in s.reason
        assert s.phase_error < DEFAULT_TOLERANCE


def test_the_warning_threshold_is_where_order_4_reaches_the_default_tolerance():
    lag = -phase_velocity_error(4, 2 * np.pi / MIN_POINTS_PER_WAVELENGTH)
    assert DEFAULT_TOLERANCE < lag < 1.25 * DEFAULT_TOLERANCE
    from sweep.propagator.setup import MIN_POINTS_PER_WAVELENGTH as warned_below
    assert warned_below is MIN_POINTS_PER_WAVELENGTH


@pytest.mark.parametrize("min_points", [MIN_POINTS_PER_WAVELENGTH, 0.0])
@pytest.mark.parametrize("vmin, vmax, fmax, ndim", CASES)
def test_the_order_is_the_cheapest_by_the_cost_model(vmin, vmax, fmax, ndim, min_points):
    s = suggest(vmin, vmax, fmax, ndim, min_points_per_wavelength=min_points)
    each = {o: suggest(vmin, vmax, fmax, ndim, space_orders=(o,), min_points_per_wavelength=min_points)
            for o in SPACE_ORDERS}
    cost = {o: (ndim * o + 1) / (e.dh ** ndim * e.dt) for o, e in each.items()}
    assert s.space_order == min(cost, key=cost.get)
    assert (s.dh, s.dt) == (each[s.space_order].dh, each[s.space_order].dt)
    runner_up = min((o for o in cost if o != s.space_order), key=cost.get)
    assert f"(order {runner_up} costs {cost[runner_up] / cost[s.space_order]:.2f}x)" in s.reason


def test_low_contrast_step_is_held_down_by_the_time_error():
    s = suggest(**LOW_CONTRAST, space_orders=(8,))
    args = (8, 3, s.dh)
    limit = Acoustic3D().max_stable_dt(LOW_CONTRAST["vmax"], s.dh, 8)
    assert s.dt < 0.9 * COURANT_FRACTION * limit and "held down by the time-stepping error" in s.reason
    bounds = (LOW_CONTRAST["vmin"], LOW_CONTRAST["vmax"], LOW_CONTRAST["fmax"])
    assert worst_error(*args, s.dt, *bounds) <= DEFAULT_TOLERANCE * (1 + 1e-3)
    assert worst_error(*args, 1.1 * s.dt, *bounds) > DEFAULT_TOLERANCE   # beyond the rounding


def test_3d_takes_a_smaller_step_and_the_equation_sets_the_dimension():
    two, three = suggest(1500.0, 4500.0, 20.0, 2), suggest(1500.0, 4500.0, 20.0, 3)
    assert three.dh == two.dh and three.dt < two.dt and "in 3-D" in three.reason
    assert suggest(1500.0, 4500.0, 20.0, equation=Acoustic3D()) == three
    assert suggest(1500.0, 4500.0, 20.0, 3, equation=Acoustic3D()) == three
    with pytest.raises(ValueError, match=r"^ndim=2 disagrees with equation=Acoustic3D"):
        suggest(1500.0, 4500.0, 20.0, 2, equation=Acoustic3D())


@pytest.mark.parametrize("data_dt", [0.004, 0.0016, 0.001, 0.0123])
def test_data_dt_is_split_into_the_fewest_stable_steps(data_dt):
    vmin, vmax, fmax, ndim = CASES[0]
    s = suggest(vmin, vmax, fmax, ndim, data_dt=data_dt)
    bound = COURANT_FRACTION * Acoustic().max_stable_dt(vmax, s.dh, s.space_order)
    r = s.substep
    assert s.dt == data_dt / r and data_dt / r <= bound
    assert r == 1 or data_dt / (r - 1) > bound
    assert f"data_dt={data_dt * 1e3:.3g} ms in {r} step" in s.reason


@pytest.mark.parametrize("order", SPACE_ORDERS)
def test_symbol_is_the_stencil_applied_to_a_plane_wave(order):
    c = SECOND_DERIVATIVE[order]
    n = 64
    for m in (1, 5, 13, 32):   # periodic plane waves up to Nyquist
        theta = 2 * np.pi * m / n
        u = np.exp(1j * theta * np.arange(n))
        applied = c[0] * u + sum(ck * (np.roll(u, k) + np.roll(u, -k)) for k, ck in enumerate(c) if k)
        np.testing.assert_allclose(applied, -laplacian_symbol(order, theta) * u, rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("order", [2, 8])
def test_leapfrog_plane_wave_travels_at_the_predicted_phase_velocity(order, ndim):
    """A cosine along an axis (1) or the diagonal (2) of a periodic grid, started on the predicted
    numerical phase velocity, stays a travelling cosine at that velocity to round-off; started on the
    true one it does not (the error tested is not negligible)."""
    n, m, courant, steps = 32, 4, 0.5, 200                  # dh = v = 1, dt = courant
    c = SECOND_DERIVATIVE[order]
    kk = 2 * np.pi * m / n                                   # per-axis wavenumber: a whole number of waves
    theta = kk * math.sqrt(ndim)                             # k dh along the direction of travel
    phase = kk * sum(np.meshgrid(*[np.arange(n)] * ndim, indexing="ij"))

    def laplacian(u):
        return sum(c[0] * u + sum(ck * (np.roll(u, k, a) + np.roll(u, -k, a)) for k, ck in enumerate(c) if k)
                   for a in range(ndim))

    def run(speed):
        omega = speed * theta                                # v = dh = 1: w = c k
        prev, u = np.cos(phase + omega * courant), np.cos(phase)
        for _ in range(steps):
            prev, u = u, 2 * u - prev + courant ** 2 * laplacian(u)
        return np.abs(u - np.cos(phase - omega * courant * steps)).max()

    assert run(1 + phase_velocity_error(order, theta, courant, ndim)) < 1e-9
    assert run(1.0) > 1e-3


@pytest.mark.parametrize("kwargs, message", [
    (dict(vmin=0.0), "vmin must be a positive finite number, got 0.0"),
    (dict(vmin=float("nan")), "vmin must be a positive finite number"),
    (dict(vmax=1000.0), "vmax must be >= vmin, got vmax=1000.0 and vmin=1500.0"),
    (dict(fmax=-5), "fmax must be a positive finite number, got -5"),
    (dict(ndim=4), "ndim must be 2 or 3, got 4"),
    (dict(ndim=True), "ndim must be 2 or 3, got True"),
    (dict(equation="acoustic"), "equation must be an Acoustic or Acoustic3D instance"),
    (dict(tolerance=1.0), r"tolerance must be a fraction in \(0, 1\), got 1.0"),
    (dict(tolerance=0), r"tolerance must be a fraction in \(0, 1\), got 0"),
    (dict(space_orders=(4, 3)), r"space_orders must be a non-empty collection of \(2, 4, 6, 8\), got \(4, 3\)"),
    (dict(space_orders=()), "space_orders must be a non-empty collection"),
    (dict(data_dt=np.float32(0.0)), "data_dt must be a positive finite number, got 0.0"),
    (dict(min_points_per_wavelength=-1), "min_points_per_wavelength must be a finite number >= 0, got -1"),
])
def test_bad_inputs_name_the_argument(kwargs, message):
    args = dict(vmin=1500.0, vmax=4500.0, fmax=20.0) | kwargs
    with pytest.raises(ValueError, match="^" + message):
        suggest(**args)


def test_suggestion_is_frozen():
    s = suggest(1500.0, 4500.0, 20.0)
    assert isinstance(s, Suggestion)
    with pytest.raises(AttributeError):
        s.dt = 1.0
