"""The gradient's definition, shown by finite differences on both back-ends.

The gradient holds fixed the edge-replicated padding (it copies the physical edge cells but carries no
gradient) and the absorbing layer's profile (damping from the model's peak velocity or ``pml_vmax``,
frequency shift from the wavelet's peak frequency or ``pml_freq``). Each test below perturbs the
inputs either within those conditions, where finite differences agree with the gradient, or against
one of them, where they do not.
"""
from typing import Callable

import numpy as np
import pytest
import torch

from sweep.equations import Acoustic
from sweep.propagator.grid import PaddedGrid
from sweep.propagator.options import MemoryOptions
from sweep.propagator.setup import build_problem
from sweep.propagator.torch import PropTorch
from sweep.signal import peak_frequency, ricker

NZ, NX, DH, DT, NT, ABCN = 14, 16, 10.0, 0.001, 40, 4
# Tiny, coarse grids keep the suite fast; gradient exactness does not depend on dispersion.
pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")
both_impls = pytest.mark.parametrize("impl", ["eager", "c"])
SOURCES = np.array([[5, 4], [10, 7]])
RECEIVERS = np.array([[[2, 2], [8, 10], [13, 3]], [[3, 11], [12, 12], [7, 1]]])
PEAK = (6, 8)
"""The model's peak-velocity cell, (z, x): interior, so that moving it is separate from moving the ring."""
PEAK_VP = 2100.0
EPS = 1e-2
"""Finite-difference step, m/s per unit of direction: truncation and round-off both stay near 1e-9."""
AGREE = 1e-6
"""Relative mismatch below which finite differences agree with the gradient (measured: ~1e-9)."""


def model() -> torch.Tensor:
    """Smooth vp (m/s, peak 1950 on the bottom row) with a single faster interior cell at PEAK."""
    z, x = torch.meshgrid(torch.arange(NZ, dtype=torch.float64), torch.arange(NX, dtype=torch.float64),
                          indexing="ij")
    vp = 1800.0 + 10.0 * z + 20.0 * torch.sin(x / 3.0)
    vp[PEAK] = PEAK_VP
    return vp


def wavelet() -> torch.Tensor:
    return ricker(torch.arange(NT, dtype=torch.float64) * DT - 0.012, 40.0)


WEIGHTS = torch.randn(2, NT, 3, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
"""Fixed random weights: the objective is sum(data * WEIGHTS)."""


def solver(impl: str, **kw) -> PropTorch:
    return PropTorch(Acoustic(), (NZ, NX), DH, DT, NT, abcn=ABCN, impl=impl, memory=MemoryOptions("full"), **kw)


def objective(prop: PropTorch, vp: torch.Tensor, wav: torch.Tensor) -> torch.Tensor:
    return (prop(wav, SOURCES, RECEIVERS, [vp]) * WEIGHTS).sum()


def mismatch(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, direction: torch.Tensor,
             eps: float = EPS) -> float:
    """|FD - <grad, direction>| / |<grad, direction>| for the scalar ``f`` at ``x`` (central difference)."""
    xg = x.clone().requires_grad_(True)
    f(xg).backward()
    exact = float((xg.grad * direction).sum())
    with torch.no_grad():
        fd = (float(f(x + eps * direction)) - float(f(x - eps * direction))) / (2.0 * eps)
    assert exact != 0.0
    return abs(fd - exact) / abs(exact)


def vp_mismatch(prop: PropTorch, direction: torch.Tensor) -> float:
    return mismatch(lambda vp: objective(prop, vp, wavelet()), model(), direction)


def interior_direction() -> torch.Tensor:
    """Random on the interior, zero on the outermost ring, and +1 on the peak cell so it moves the peak."""
    d = torch.zeros(NZ, NX, dtype=torch.float64)
    d[1:-1, 1:-1] = torch.randn(NZ - 2, NX - 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    d[PEAK] = 1.0
    return d


def replicated_ring(free_surface: bool) -> torch.Tensor:
    """1 on the physical cells the padding copies: first and last columns, last row, and the first row
    unless there is a free surface (whose top has no padding, see PaddedGrid.top)."""
    d = torch.zeros(NZ, NX, dtype=torch.float64)
    d[:, 0] = d[:, -1] = d[-1, :] = 1.0
    if not free_surface:
        d[0, :] = 1.0
    return d


@both_impls
@pytest.mark.parametrize("free_surface", [False, True])
def test_interior_perturbation_agrees_only_with_pml_vmax(impl, free_surface):
    """Condition (b): the perturbation raises the peak velocity, so it moves the layer's damping unless
    ``pml_vmax`` pins it."""
    vp, d = model(), interior_direction()
    for sign in (1.0, -1.0):  # the peak stays on PEAK and moves with the step: the case is what it claims
        moved = vp + sign * EPS * d
        assert int(moved.argmax()) == PEAK[0] * NX + PEAK[1] and float(moved.max()) != PEAK_VP
    pinned = vp_mismatch(solver(impl, free_surface=free_surface, pml_vmax=PEAK_VP), d)
    moving = vp_mismatch(solver(impl, free_surface=free_surface), d)
    assert pinned < AGREE, pinned
    assert moving > 100 * pinned and moving > 1e-5, (moving, pinned)


@both_impls
@pytest.mark.parametrize("free_surface", [False, True])
def test_ring_perturbation_disagrees(impl, free_surface):
    """Condition (a): the padding moves with the ring it copies in the forward model, not in the gradient."""
    ring = vp_mismatch(solver(impl, free_surface=free_surface, pml_vmax=PEAK_VP), replicated_ring(free_surface))
    assert ring > 1000 * AGREE, ring  # the interior agrees to AGREE (test above)


@both_impls
def test_top_row_is_replicated_only_without_free_surface(impl):
    """Under a free surface the top row has no padding above it, so it is free to perturb."""
    top = torch.zeros(NZ, NX, dtype=torch.float64)
    top[0, 1:-1] = 1.0  # the corners also belong to the (replicated) first and last columns
    free = vp_mismatch(solver(impl, free_surface=True, pml_vmax=PEAK_VP), top)
    absorbing = vp_mismatch(solver(impl, free_surface=False, pml_vmax=PEAK_VP), top)
    assert free < AGREE, free
    assert absorbing > 1000 * AGREE, absorbing


@both_impls
def test_wavelet_perturbation_agrees_only_with_pml_freq(impl):
    """Condition (c): a wavelet whose spectrum has nearly equal peaks at 25 and 50 Hz; the step along a
    100 Hz Ricker tips its peak frequency, and so the layer's frequency shift, unless ``pml_freq`` pins it."""
    t = torch.arange(NT, dtype=torch.float64) * DT - 0.015
    base, d, eps = ricker(t, 30.0) + 2.45 * ricker(t, 100.0), ricker(t, 100.0), 0.05
    before, after = (peak_frequency((base + s * eps * d).numpy(), DT) for s in (-1.0, 1.0))
    assert (before, after, peak_frequency(base.numpy(), DT)) == (25.0, 50.0, 25.0)
    vp = model()
    pinned, moving = (mismatch(lambda w: objective(prop, vp, w), base, d, eps)
                      for prop in (solver(impl, pml_freq=25.0), solver(impl)))
    assert pinned < 1e-10, pinned  # the data are linear in the wavelet: no truncation error at all
    assert moving > 1e-3, moving


@both_impls
def test_data_linear_in_wavelet_with_pml_freq(impl):
    t = torch.arange(NT, dtype=torch.float64) * DT - 0.015
    w1, w2, a, b = ricker(t, 30.0), ricker(t, 100.0), 0.7, -1.9
    prop, vp = solver(impl, pml_freq=40.0), model()
    run = lambda w: prop(w, SOURCES, RECEIVERS, [vp])  # noqa: E731
    combined, separate = run(a * w1 + b * w2), a * run(w1) + b * run(w2)
    assert float((combined - separate).abs().max()) <= 1e-12 * float(separate.abs().max())


@both_impls
def test_pml_vmax_default_is_the_model_peak(impl):
    """``pml_vmax=None`` is the old behaviour, bit for bit."""
    vp = model()
    default = solver(impl)(wavelet(), SOURCES, RECEIVERS, [vp])
    explicit = solver(impl, pml_vmax=float(vp.max()))(wavelet(), SOURCES, RECEIVERS, [vp])
    assert torch.equal(default, explicit)


def test_pml_vmax_makes_the_layer_independent_of_the_model():
    grid = PaddedGrid((NZ, NX), ABCN, False)
    layers = [build_problem(grid=grid, dh=DH, dt=DT, nt=NT, space_order=4, max_stable_dt=1.0, velocity=vp,
                            wavelet=wavelet(), sources=SOURCES, receivers=RECEIVERS, pml_freq=None,
                            pml_vmax=3000.0)[0].pml for vp in (model(), 0.9 * model())]
    assert all(torch.equal(layers[0][k], layers[1][k]) for k in layers[0])


@pytest.mark.parametrize("bad", [0.0, -2000.0, float("inf"), float("nan"), True, "2000"])
def test_pml_vmax_validation(bad):
    with pytest.raises(ValueError, match="pml_vmax must be a positive finite number"):
        solver("eager", pml_vmax=bad)
