"""The 3-D acoustic equation (Acoustic3D) against independent references: the analytic 3-D Green's
function, finite differences of the velocity and wavelet gradients, the compiled back-end against the
eager one (when a 3-D ``impl='c'`` is registered) and Deepwave (when installed); errors for bad inputs
that name the argument; and the memory guard on a 3-D call.

Every registered 3-D back-end (``registry.impls('acoustic', 3)``) runs the physics and gradient checks.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from sweep.equations import Acoustic, Acoustic3D
from sweep.memory import InsufficientMemoryError, available
from sweep.memory.available import Available
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from sweep.propagator.registry import impls
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker

IMPLS_3D = impls("acoustic", 3)


def _c_reason() -> str | None:
    from sweep.propagator.c import library_available, load_error

    return None if library_available() else f"impl='c' not built: {load_error()}"


def impl_params():
    out = []
    for impl in IMPLS_3D:
        why = _c_reason() if impl == "c" else None
        out.append(pytest.param(impl, marks=[pytest.mark.skip(reason=why)] if why else []))
    return out


# -- (a) the analytic Green's function ------------------------------------------------------------
# p_tt - v^2 lap p = v^2 f(t) delta(x - xs) in a homogeneous medium: p = f(t - r/v) / (4 pi r), with no
# near-field term (the 3-D Green's function of the scalar wave equation is delta(t - r/v) / (4 pi r) at every
# r). The grid: v = 2000 m/s, dh = 10 m, a 10 Hz Ricker (5% of its spectral peak at 2.4 f0 = 24 Hz: 8.3
# points per shortest wavelength), space order 8, dt = 2 ms (Courant number 0.4).
V, G_DH, G_DT, G_F0, G_DELAY = 2000.0, 10.0, 0.002, 10.0, 0.12
G_N, G_ABCN, G_NT = 31, 10, 180
# Receiver offsets (cells) from the central source, along axes, face and body diagonals: r = 8 to 15.6 cells
# (0.4 to 0.8 of the peak wavelength; the farthest 3 cells from the layers).
G_OFFSETS = [(8, 0, 0), (0, -12, 0), (0, 0, 11), (7, 7, 0), (-6, 6, 6), (9, -9, 9)]
# Thresholds. Shape: correlation >= 0.999 over the arrival (the Ricker's +-1.5/f0) allows a 4.5% relative
# L2 misfit after the best scaling; what remains of the discretisation is far below it: the order-8 spatial
# error at 8 points per wavelength is ~1e-5 in phase velocity, the leapfrog's (w dt)^2 / 24 is 7e-4 at f0
# (a travel-time error of 5e-5 s at 156 m: 1 - corr ~ (2 pi f0 dt_err)^2 / 2 ~ 5e-6), and the C-PML
# reflects well below 1% (tests/test_physics.py measures that in 2-D). Amplitude: the least-squares gain
# <d, a> / <a, a> and the peak ratio within 2% of 1 (the 1/(4 pi r) spreading and the 1/dh^3 source
# scaling; a wrong source scaling is off by orders of magnitude, a 2-D-style 1/sqrt(r) decay by tens of
# percent). Measured (eager): correlation 0.99997-0.99999, gain within 5e-5 of 1, peak ratio within 5e-4;
# against the reference of a 3% faster medium the correlation is 0.988-0.997 (1%: 0.9989-0.9997).
G_MIN_CORR, G_AMPLITUDE = 0.999, 0.02


def greens_traces(impl: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data (nt, nrec), distances r (m), times t) of the central point source in the homogeneous cube."""
    c = G_N // 2
    receivers = np.array([[[c + dx, c + dy, c + dz] for dx, dy, dz in G_OFFSETS]])
    prop = PropTorch(Acoustic3D(), (G_N, G_N, G_N), G_DH, G_DT, G_NT, abcn=G_ABCN, space_order=8, impl=impl)
    t = np.arange(G_NT) * G_DT
    with torch.no_grad():
        data = prop(ricker(t - G_DELAY, G_F0), np.array([[c, c, c]]), receivers,
                    [torch.full((G_N,) * 3, V, dtype=torch.float64)])[0, :, :, 0].numpy()
    r = G_DH * np.linalg.norm(np.array(G_OFFSETS, dtype=np.float64), axis=1)
    return data, r, t


def compare_with_analytic(data: np.ndarray, r: np.ndarray, t: np.ndarray, v: float = V):
    """Per receiver (correlation, least-squares gain, peak ratio) against f(t - r/v) / (4 pi r) over the
    arrival, t within 1.5 / f0 of r/v + delay (all inside the record)."""
    out = []
    for i, ri in enumerate(r):
        expected = ricker(t - ri / v - G_DELAY, G_F0) / (4 * np.pi * ri)
        window = np.abs(t - ri / V - G_DELAY) <= 1.5 / G_F0
        assert window[-1] == False  # noqa: E712  the whole arrival is recorded
        d, e = data[window, i], expected[window]
        out.append((float(d @ e / np.linalg.norm(d) / np.linalg.norm(e)), float(d @ e / (e @ e)),
                    float(np.abs(d).max() / np.abs(e).max())))
    return out


@pytest.mark.parametrize("impl", impl_params())
def test_point_source_matches_the_analytic_greens_function(impl):
    data, r, t = greens_traces(impl)
    for ri, (corr, gain, peak) in zip(r, compare_with_analytic(data, r, t)):
        where = f"r = {ri:.1f} m: correlation {corr:.6f}, gain {gain:.5f}, peak ratio {peak:.5f}"
        print(where)
        assert corr >= G_MIN_CORR, where
        assert abs(gain - 1) <= G_AMPLITUDE and abs(peak - 1) <= G_AMPLITUDE, where
    # The comparison can fail: against the Green's function of a 3% faster medium it does.
    wrong = compare_with_analytic(data, r, t, 1.03 * V)
    assert max(corr for corr, _, _ in wrong) < G_MIN_CORR


# -- small problem for gradients, the c back-end, errors and the guard ----------------------------
SHAPE, DH, DT, NT, ABCN = (10, 11, 12), 10.0, 0.001, 40, 3  # (nz, ny, nx)
NZ, NY, NX = SHAPE
# Two shots of two sources ([x, y, z]); the second shot's pair shares a cell. Receivers on faces and corners.
SOURCES = np.array([[[2, 3, 0], [10, 7, 5]], [[6, 5, 4], [6, 5, 4]]])
RECEIVERS = np.array([[[0, 0, 0], [11, 10, 9], [6, 2, 8], [3, 9, 1]],
                      [[11, 0, 4], [5, 5, 9], [0, 10, 2], [8, 3, 3]]])
small_grid = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")


def model(dtype=torch.float64) -> torch.Tensor:
    z, y, x = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in SHAPE], indexing="ij")
    return (1800.0 + 15.0 * z + 40.0 * torch.sin(x / 3.0) + 25.0 * torch.cos(y / 4.0)).to(dtype)


def wavelets(dtype=torch.float64) -> torch.Tensor:
    t = torch.arange(NT, dtype=torch.float64) * DT
    return torch.stack([torch.stack([ricker(t - 0.02 - 0.003 * (2 * s + k), 35.0) for k in range(2)])
                        for s in range(2)]).to(dtype)


def solver(impl: str = "eager", **kw) -> PropTorch:
    kw.setdefault("abcn", ABCN)
    return PropTorch(Acoustic3D(), SHAPE, DH, DT, kw.pop("nt", NT), impl=impl, **kw)


def observed(prop: PropTorch, dtype=torch.float64) -> torch.Tensor:
    """Data of the model with a Gaussian bump (150 m/s) in the middle: a misfit's target, so that the adjoint
    source is band-limited and of the data's scale, as in an inversion."""
    axes = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in SHAPE], indexing="ij")
    bump = 150.0 * torch.exp(-sum((a - (n - 1) / 2) ** 2 for a, n in zip(axes, SHAPE)) / 8.0)
    with torch.no_grad():
        return prop(wavelets(dtype), SOURCES, RECEIVERS, [(model() + bump).to(dtype)])


# -- (b) velocity gradient vs finite differences ----------------------------------------------------
@small_grid
@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("impl", impl_params())
def test_velocity_gradient_matches_finite_differences(impl, free_surface):
    """float64 finite differences of a least-squares misfit, pml_vmax given so the absorbing layer does not
    move with the model: along a random direction over all cells but the outermost (which set the fixed,
    edge-replicated padding) and at single cells next to that ring and inside, to 1e-6. The fourth-order
    central difference with h = 0.2 m/s (1e-4 relative) makes truncation negligible and keeps rounding
    (about 100 float64 eps of the misfit, over h) small even at the weakest cell checked, the top-face one
    under a free surface (gradient 3e-5 of the largest): measured below 1e-8 at the inner cells and 7e-8 at
    the top-face one, eager and c (the second-order difference at h = 0.1 is off by 2e-6 at (1, 1, 1), at
    h = 0.01 by 2e-6 at the top-face cell). An outermost cell's FD includes its copies in the padding,
    which by definition carry no gradient, so there FD differs (measured 9e-4 to 5 relative) -- except on
    the top face under a free surface, which is not padded."""
    prop = solver(impl, free_surface=free_surface, space_order=4, pml_vmax=2200.0, pml_freq=35.0,
                  memory=MemoryOptions("full"))
    wav, goal = wavelets(), observed(prop)

    def misfit(vp):
        return (0.5 * (prop(wav, SOURCES, RECEIVERS, [vp]) - goal) ** 2).sum()

    vp = model().requires_grad_(True)
    misfit(vp).backward()
    grad = vp.grad

    def fd(dv, h=0.2):
        with torch.no_grad():
            f = [float(misfit(model() + k * h * dv)) for k in (-2, -1, 1, 2)]
        return (8 * (f[2] - f[1]) - (f[3] - f[0])) / (12 * h)

    dv = torch.zeros(SHAPE, dtype=torch.float64)
    inner = (slice(1, -1),) * 3
    dv[inner] = torch.randn(dv[inner].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    along, got = fd(dv), float((grad * dv).sum())
    assert abs(along) > 0 and abs(got - along) <= 1e-6 * abs(along), (got, along)
    for cell in [(1, 1, 1), (NZ - 2, NY - 2, NX - 2), (1, 5, 6), (5, 6, 7)]:
        one = torch.zeros(SHAPE, dtype=torch.float64)
        one[cell] = 1.0
        want = fd(one)
        assert abs(want) > 0 and abs(float(grad[cell]) - want) <= 1e-6 * abs(want), (cell, float(grad[cell]), want)
    for cell, padded in [((0, 5, 6), not free_surface), ((5, 0, 6), True), ((NZ - 1, 5, 6), True)]:
        one = torch.zeros(SHAPE, dtype=torch.float64)
        one[cell] = 1.0
        want = fd(one)
        close = abs(float(grad[cell]) - want) <= 1e-6 * abs(want)
        assert close != padded, (cell, float(grad[cell]), want)


# -- (c) wavelet gradient vs finite differences -----------------------------------------------------
@small_grid
@pytest.mark.parametrize("impl", impl_params())
def test_wavelet_gradient_matches_finite_differences(impl):
    """pml_freq given, the data are linear in the wavelet and the misfit quadratic: central differences are
    exact up to rounding at any step (eps = 1). Single samples of every shot and source and a random
    direction, float64, to 1e-9; the last sample never reaches a recorded step."""
    prop = solver(impl, space_order=4, pml_freq=35.0, memory=MemoryOptions("full"))
    vp, goal = model(), observed(prop)

    def misfit(w):
        return (0.5 * (prop(w, SOURCES, RECEIVERS, [vp]) - goal) ** 2).sum()

    wav = wavelets().requires_grad_(True)
    misfit(wav).backward()
    grad = wav.grad

    def fd(dw, eps=1.0):
        with torch.no_grad():
            return float(misfit(wavelets() + eps * dw) - misfit(wavelets() - eps * dw)) / (2 * eps)

    for s, k, n in [(0, 0, 3), (0, 1, 17), (1, 0, 25), (1, 1, NT - 12)]:
        one = torch.zeros_like(grad)
        one[s, k, n] = 1.0
        want = fd(one)
        assert abs(want) > 0 and abs(float(grad[s, k, n]) - want) <= 1e-9 * abs(want), (s, k, n)
    dw = torch.randn(grad.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    want = fd(dw)
    assert abs(float((grad * dw).sum()) - want) <= 1e-9 * abs(want)
    assert float(grad[:, :, NT - 1].abs().max()) == 0.0
    # The two sources of shot 1 share a cell: their gradients are the same.
    assert torch.equal(grad[1, 0], grad[1, 1])


# -- (d) errors naming the argument ---------------------------------------------------------------
def call(prop: PropTorch, sources=SOURCES, receivers=RECEIVERS, models=None):
    return prop(wavelets(torch.float32), sources, receivers, models or [model(torch.float32)])


def test_shape_and_equation_must_agree():
    with pytest.raises(ValueError, match=re.escape("shape must be (nz, ny, nx) for Acoustic3D, got (10, 12) "
                                                   "(2 axes: a 2-D grid needs Acoustic)")):
        PropTorch(Acoustic3D(), (10, 12), DH, DT, NT)
    with pytest.raises(ValueError, match=re.escape("shape must be (nz, nx) for Acoustic, got (10, 11, 12) "
                                                   "(3 axes: a 3-D grid needs Acoustic3D)")):
        PropTorch(Acoustic(), (10, 11, 12), DH, DT, NT)


def test_locations_need_three_components():
    prop = solver()
    with pytest.raises(ValueError, match=re.escape("sources must have shape (nshots, 3) or (nshots, n, 3) of "
                                                   "[x, y, z] indices, got (2, 2)")):
        call(prop, sources=np.array([[2, 3], [6, 5]]))
    with pytest.raises(ValueError, match=re.escape("receivers must have shape (nshots, n, 3) of [x, y, z] "
                                                   "indices, got (2, 4, 2)")):
        call(prop, receivers=RECEIVERS[..., :2])


def test_locations_off_the_grid_are_named():
    prop = solver()
    bounds = f"[x, y, z] must satisfy 0 <= x < {NX} and 0 <= y < {NY} and 0 <= z < {NZ}"
    bad = RECEIVERS.copy()
    bad[1, 2] = [3, NY, 2]  # y one past the last cell
    with pytest.raises(ValueError, match=re.escape(f"receivers[1, 2] = [3, {NY}, 2] is off the grid: {bounds}")):
        call(prop, receivers=bad)
    bad = SOURCES.copy()
    bad[0, 1] = [NX, 0, 0]
    with pytest.raises(ValueError, match=re.escape(f"sources[0, 1] = [{NX}, 0, 0] is off the grid")):
        call(prop, sources=bad)
    bad[0, 1] = [1, 1, -1]
    with pytest.raises(ValueError, match=re.escape("sources[0, 1] = [1, 1, -1] is off the grid")):
        call(prop, sources=bad)


@pytest.mark.parametrize("axis, shape", [("y", (10, 7, 12)), ("x", (10, 11, 3)), ("z", (7, 11, 12))])
def test_grid_thinner_than_the_strips_is_refused_at_construction(axis, shape):
    """space_order=8 (r = 4) needs 8 cells on an axis with two absorbing faces; 4 on the depth axis under a
    free surface (one face); none without a layer."""
    n = shape["zyx".index(axis)]
    with pytest.raises(ValueError, match=re.escape(f"shape {shape}: axis {axis} has {n} cells, fewer than the 4 "
                                                   "cells per absorbing face that space_order=8 needs")):
        PropTorch(Acoustic3D(), shape, DH, DT, NT, abcn=3, space_order=8)
    PropTorch(Acoustic3D(), shape, DH, DT, NT, abcn=0, space_order=8)
    if axis == "z":
        PropTorch(Acoustic3D(), shape, DH, DT, NT, abcn=3, space_order=8, free_surface=True)


def test_models_of_the_wrong_shape_are_named():
    prop = solver()
    for wrong in [(10, 12), (10, 12, 11), (1, 10, 11, 12)]:
        with pytest.raises(ValueError, match=re.escape(f"models: vp must have shape {SHAPE} (nz, ny, nx), "
                                                       f"got {wrong}")):
            call(prop, models=[torch.full(wrong, 2000.0)])


# -- (e) c against eager --------------------------------------------------------------------------
C_3D = ("acoustic", 3, "c")


@small_grid
@pytest.mark.skipif("c" not in IMPLS_3D, reason="no 3-D impl='c' registered (registry has "
                                                 f"{sorted(IMPLS_3D)} for the 3-D acoustic equation)")
@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("space_order", [2, 4, 6, 8])
@pytest.mark.parametrize("dtype, tol_data, tol_grad", [(torch.float32, 1e-5, 1e-4), (torch.float64, 1e-12, 1e-10)])
def test_c_matches_eager(space_order, free_surface, dtype, tol_data, tol_grad):
    why = _c_reason()
    if why:
        pytest.skip(why)
    out = {}
    for impl in ("c", "eager"):
        prop = solver(impl, free_surface=free_surface, space_order=space_order, memory=MemoryOptions("full"))
        vp = model(dtype).requires_grad_(True)
        wav = wavelets(dtype).requires_grad_(True)
        data = prop(wav, SOURCES, RECEIVERS, [vp])
        (0.5 * (data - observed(prop, dtype)) ** 2).sum().backward()
        out[impl] = (data.detach(), vp.grad, wav.grad)
    rel = [float((c - e).norm() / e.norm()) for c, e in zip(out["c"], out["eager"])]
    print(f"c vs eager, order {space_order}, free surface {free_surface}, {dtype}: data {rel[0]:.3g}, "
          f"velocity gradient {rel[1]:.3g}, wavelet gradient {rel[2]:.3g}")
    assert out["c"][0].dtype == dtype and out["c"][1].dtype == dtype
    assert rel[0] < tol_data and rel[1] < tol_grad and rel[2] < tol_grad


# -- (f) Deepwave -----------------------------------------------------------------------------------
# Deepwave (deepwave.scalar) on the same grid, space order and layer width, same dt (so it does not
# resample: step_ratio 1). Its conventions: locations [z, y, x] (slowest first; sweep's are [x, y, z]); the
# source term is -v^2 dt^2 f with no 1/dh^3 (scalar.py), so its data are -dh^3 times sweep's, sample for
# sample (receivers record the field at t = n dt in both: lag 0). The two differ in the C-PML profiles only.
# Measured (eager, float32): gather correlation -(1 - 4e-7), least-squares gain -999.996 against -1000;
# shifted by one step the correlation falls to 0.9975, so 0.999 checks the time alignment too.
DW_SHAPE, DW_ABCN, DW_ORDER, DW_DT, DW_NT, DW_F0, DW_DELAY = (25, 27, 29), 10, 8, 0.001, 320, 10.0, 0.12


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("impl", impl_params())
def test_gather_matches_deepwave(impl):
    try:
        import deepwave
    except ImportError:
        print("Deepwave is not installed (the optional bench extra: pip install -e '.[bench]'): comparison skipped")
        pytest.skip("Deepwave is the optional bench extra (pip install -e '.[bench]'), not installed")
    z, y, x = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in DW_SHAPE], indexing="ij")
    vp = 1900.0 + 8.0 * z + 30.0 * torch.sin(x / 5.0) + 20.0 * torch.cos(y / 6.0)
    src = np.array([[[12, 13, 5]]])  # [x, y, z]
    rec = np.array([[[xx, 8, 3] for xx in range(0, DW_SHAPE[2], 3)]
                    + [[20, yy, 18] for yy in range(0, DW_SHAPE[1], 4)]])
    wav = torch.from_numpy(ricker(np.arange(DW_NT) * DW_DT - DW_DELAY, DW_F0)).float()
    prop = PropTorch(Acoustic3D(), DW_SHAPE, DH, DW_DT, DW_NT, abcn=DW_ABCN, space_order=DW_ORDER, impl=impl,
                     pml_freq=DW_F0)
    with torch.no_grad():
        ours = prop(wav, src, rec, [vp])[0, :, :, 0].numpy()  # (nt, nrec)
        out = deepwave.scalar(vp, DH, DW_DT, source_amplitudes=wav.view(1, 1, DW_NT),
                              source_locations=torch.from_numpy(src[..., ::-1].copy()),
                              receiver_locations=torch.from_numpy(rec[..., ::-1].copy()),
                              accuracy=DW_ORDER, pml_width=DW_ABCN, pml_freq=DW_F0)
    theirs = out.receiver_amplitudes[0].T.numpy()  # (nrec, nt) -> (nt, nrec)
    assert theirs.shape == ours.shape
    expected = -DH**3 * ours
    corr = correlation(theirs, expected)
    gain = float((theirs * expected).sum() / (expected * expected).sum())
    shifted = correlation(theirs[1:], expected[:-1])
    print(f"Deepwave vs sweep ({impl}): gather correlation {corr:.7f}, gain {gain:.6f}, one step off {shifted:.5f}")
    assert corr >= 0.999 and abs(gain - 1) < 0.01
    assert shifted < 0.999  # the comparison sees a one-step misalignment
    per_trace = [correlation(theirs[:, i], expected[:, i]) for i in range(ours.shape[1])]
    assert min(per_trace) >= 0.999, per_trace


# -- (g) the memory guard ---------------------------------------------------------------------------
SUGGESTABLE = {"MemoryOptions": MemoryOptions, "BoundaryOptions": BoundaryOptions, "CkptOptions": CkptOptions}


@small_grid
def test_memory_guard_refuses_a_3d_call_and_names_what_fits(monkeypatch):
    """Host memory (faked) one byte short of full storage's predicted footprint: the 3-D call is refused
    before it allocates, and the error names a strategy that fits; that strategy then passes the guard."""
    nt = 200  # long enough for other strategies to be smaller than full storage on this tiny grid
    t = torch.arange(nt, dtype=torch.float32) * DT
    args = (ricker(t - 0.02, 35.0), SOURCES, RECEIVERS)
    full = solver(nt=nt, memory=MemoryOptions("full")).estimate_memory(
        *args, [model(torch.float32).requires_grad_(True)]).process_bytes_estimate
    monkeypatch.setattr(available, "host_memory", lambda root="/": Available(full - 1, "fake MemAvailable"))

    def reached(*a, **k):
        raise AssertionError("the call went on to allocate")

    with monkeypatch.context() as m:
        m.setattr("sweep.propagator.torch.propagate", reached)
        with pytest.raises(InsufficientMemoryError) as err:
            solver(nt=nt, memory=MemoryOptions("full"))(*args, [model(torch.float32).requires_grad_(True)])
    text = str(err.value)
    assert f"host: predicted {full / 2**20:,.2f} MiB" in text and "fake MemAvailable" in text
    assert "fastest exact strategy that fits what is available: " in text
    assert err.value.needed == {"host": full}
    suggestion = eval(re.search(r"memory=(MemoryOptions\(.*\)) \(predicted", text).group(1), SUGGESTABLE)
    assert suggestion.strategy != "full"
    prop = solver(nt=nt, memory=suggestion)
    vp = model(torch.float32).requires_grad_(True)
    prop(*args, [vp]).pow(2).sum().backward()  # passes the guard under the same fake memory
    assert prop.memory_report().adjoint_steps == nt and torch.isfinite(vp.grad).all()
