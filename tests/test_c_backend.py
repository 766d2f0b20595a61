"""The compiled CPU back-end (impl='c') against the eager reference, its own adjoint, finite differences,
checkpointing, thread-count independence, and the fallback when it is not built."""
import numpy as np
import pytest
import torch

import sweep.propagator.c as cmod
import sweep.propagator.c.library as clib
import sweep.propagator.c.stepper as cstep
import sweep.propagator.torch as torch_mod
from sweep.equations import Acoustic
from sweep.propagator.c import CAcousticStepper, library_available, load_error
from sweep.propagator.grid import PaddedGrid
from sweep.propagator.options import BoundaryOptions, MemoryOptions
from sweep.propagator.setup import build_problem
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker

NZ, NX, DH, DT, NT = 20, 26, 10.0, 0.001, 80
# Tiny, coarse grids keep the suite fast; agreement and exactness do not depend on dispersion.
pytestmark = [
    pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength"),
    pytest.mark.skipif(not library_available(), reason=f"impl='c' not built: {load_error()}"),
]
# Two shots, two sources each (one pair shares a cell, to exercise accumulation), sources and receivers
# on the top row and the side edges, where the free surface / halo are within the stencil.
SOURCES = np.array([[[4, 0], [20, 6]], [[12, 9], [12, 9]]])
RECEIVERS = np.array([[[0, 0], [7, 3], [25, 11], [13, 19]], [[2, 1], [18, 2], [9, 15], [25, 0]]])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def model(dtype: torch.dtype) -> torch.Tensor:
    z, x = torch.meshgrid(torch.arange(NZ, dtype=torch.float64), torch.arange(NX, dtype=torch.float64), indexing="ij")
    return (1800.0 + 15.0 * z + 40.0 * torch.sin(x / 3.0)).to(dtype)


def wavelets(dtype: torch.dtype) -> torch.Tensor:
    t = torch.arange(NT, dtype=torch.float64) * DT
    w = torch.stack([torch.stack([ricker(t - 0.015 - 0.004 * (2 * s + k), 40.0) for k in range(2)]) for s in range(2)])
    return w.to(dtype)


def run(impl: str, dtype: torch.dtype, free_surface: bool = False, space_order: int = 4, **kw):
    """(data, grad vp, grad wavelet) of a quadratic misfit against a fixed random target."""
    prop = PropTorch(Acoustic(), (NZ, NX), DH, DT, NT, abcn=kw.pop("abcn", 5), free_surface=free_surface,
                     space_order=space_order, impl=impl, **kw)
    vp = model(dtype).requires_grad_(True)
    wav = wavelets(dtype).requires_grad_(True)
    data = prop(wav, SOURCES, RECEIVERS, [vp])
    target = torch.randn(data.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    (0.5 * (data - 1e-3 * target) ** 2).sum().backward()
    return data.detach(), vp.grad, wav.grad


@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("space_order", [2, 4, 6, 8])
@pytest.mark.parametrize("dtype, tol_data, tol_grad", [(torch.float32, 1e-5, 1e-4), (torch.float64, 1e-12, 1e-10)])
def test_c_matches_eager(space_order, free_surface, dtype, tol_data, tol_grad):
    c = run("c", dtype, free_surface, space_order, use_ckpt=False)
    e = run("eager", dtype, free_surface, space_order, use_ckpt=False)
    assert c[0].dtype == dtype and c[1].dtype == dtype
    assert rel(c[0], e[0]) < tol_data
    assert rel(c[1], e[1]) < tol_grad
    assert rel(c[2], e[2]) < tol_grad



@pytest.mark.parametrize("nx, abcn, space_order", [(2, 3, 2), (8, 2, 8), (12, 4, 4), (7, 0, 6), (33, 6, 2), (40, 9, 8)])
@pytest.mark.parametrize("dtype, tol_data, tol_grad", [(torch.float32, 1e-5, 1e-4), (torch.float64, 1e-12, 1e-10)])
def test_row_layouts_match_eager(nx, abcn, space_order, dtype, tol_data, tol_grad):
    """The kernels compute a row's edge columns (within r of an edge or an x layer) from zero-padded copies
    and, on rows wide enough, as two vector-length blocks around a middle (acoustic_impl.h, xlayout): a
    narrow row (2 columns: one block in float32), overlapping blocks (8 and 12 columns), no layer, and layers
    wider than a vector, each against the eager stepper; boundary saving (whose rebuild must repeat the
    forward's rounding) against full storage."""
    nz, nt = 9, 60
    z, x = torch.meshgrid(torch.arange(nz, dtype=torch.float64), torch.arange(nx, dtype=torch.float64), indexing="ij")
    t = torch.arange(nt, dtype=torch.float64) * DT
    sources = np.array([[[nx // 2, 1]], [[0, nz - 1]]])
    receivers = np.array([[[0, 0], [nx - 1, 3], [nx // 3, nz - 1]]] * 2)
    out = {}
    for name, kw in (("eager", dict(impl="eager", use_ckpt=False)), ("c", dict(impl="c", use_ckpt=False)),
                     ("boundary", dict(impl="c", memory=MemoryOptions(strategy="boundary", boundary=BoundaryOptions())))):
        prop = PropTorch(Acoustic(), (nz, nx), DH, DT, nt, abcn=abcn, space_order=space_order, **kw)
        vp = (1800.0 + 15.0 * z + 40.0 * torch.sin(x / 3.0)).to(dtype).requires_grad_(True)
        wav = torch.stack([ricker(t - 0.015 - 0.004 * s, 40.0) for s in range(2)]).view(2, 1, nt).to(dtype)
        data = prop(wav, sources, receivers, [vp])
        (data**2).sum().backward()
        out[name] = (data.detach(), vp.grad)
    assert rel(out["c"][0], out["eager"][0]) < tol_data
    assert rel(out["c"][1], out["eager"][1]) < tol_grad
    assert torch.equal(out["boundary"][0], out["c"][0])
    assert float((out["boundary"][1] - out["c"][1]).abs().max() / out["c"][1].abs().max()) < tol_data


def make_stepper(dtype: torch.dtype, space_order: int, free_surface: bool) -> CAcousticStepper:
    grid = PaddedGrid((NZ, NX), 5, free_surface)
    wav = torch.randn(2, 2, NT, dtype=dtype, generator=torch.Generator().manual_seed(2))
    problem, _ = build_problem(grid=grid, dh=DH, dt=DT, nt=NT, space_order=space_order, max_stable_dt=1.0,
                               velocity=model(dtype), wavelet=wav, sources=SOURCES, receivers=RECEIVERS, pml_freq=30.0)
    return CAcousticStepper(problem, [model(dtype)])


def layer_masks(stepper: CAcousticStepper) -> torch.Tensor:
    """(6, 1, NZ, NX) 0/1: the subspace the kernels act on (auxiliaries only inside the absorbing layers)."""
    pml = stepper.problem.pml
    in_x = ~((pml["ax"] == 0) & (pml["bx"] == 1))
    in_z = ~((pml["az"] == 0) & (pml["bz"] == 1))
    shape = stepper.problem.grid.padded_shape
    ones = torch.ones(shape, dtype=torch.float64)
    mx, mz = in_x.view(1, -1).expand(shape).double(), in_z.view(-1, 1).expand(shape).double()
    return torch.stack([ones, ones, mx, mz, mx, mz]).unsqueeze(1)


def random_test_vectors(stepper: CAcousticStepper, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random float64 (state x, adjoint state y, data adjoint g) for dot-product tests, the states
    restricted to the kernels' subspace (see :func:`layer_masks`)."""
    mask = layer_masks(stepper)
    x = torch.randn(stepper.initial().shape, dtype=torch.float64, generator=gen) * mask
    y = torch.randn(x.shape, dtype=torch.float64, generator=gen) * mask
    g = torch.randn((2, NT, RECEIVERS.shape[1]), dtype=torch.float64, generator=gen)
    return x, y, g


@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("space_order", [2, 8])
def test_adjoint_dot_product(space_order, free_surface):
    """<F x, y> = <x, F^T y> for 5 steps of the c kernels (state and wavelet in, state and receivers out),
    float64, with random states in the kernels' subspace; the adjoint is one block call and needs no
    forward state (it gets no snapshots when no model gradient is asked for)."""
    st = make_stepper(torch.float64, space_order, free_surface)
    gen = torch.Generator().manual_seed(3)
    n0, n1 = 7, 12
    x, y, g = random_test_vectors(st, gen)

    state, record = x.clone(), torch.zeros_like(g)
    st.advance(state, n0, n1, record=record)
    lhs = float((state * y).sum() + (record[:, n0:n1] * g[:, n0:n1]).sum())

    st.begin_adjoint(need_wavelet=True, need_model=False)
    adj = y.clone()
    st.adjoint(adj, torch.empty(0), n0, n1, g)
    grad_wavelet, _ = st.end_adjoint()
    rhs = float((x * adj).sum() + (st.problem.wavelet * grad_wavelet).sum())
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    assert grad_wavelet[:, :, :n0].abs().max() == 0 and grad_wavelet[:, :, n1:].abs().max() == 0


@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("space_order", [2, 8])
def test_model_gradient_dot_product(space_order, free_surface):
    """The model gradient from the snapshots is the adjoint of the linearisation in w: for a physical
    perturbation dw, <d(state, record)/dw . dw, (y, g)> (by central differences of the forward, which is
    quadratic-free in w per step, so exact up to rounding over a few steps) = <dw, grad_w>."""
    st = make_stepper(torch.float64, space_order, free_surface)
    p, grid = st.problem, st.problem.grid
    gen = torch.Generator().manual_seed(5)
    n0, n1 = 3, 9
    x, y, g = random_test_vectors(st, gen)
    dw = torch.randn((NZ, NX), dtype=torch.float64, generator=gen)

    def objective(h: float) -> float:
        other = make_stepper(torch.float64, space_order, free_surface)
        other._w[grid.physical] += h * dw
        state, record = x.clone(), torch.zeros_like(g)
        other.advance(state, n0, n1, record=record)
        return float((state * y).sum() + (record[:, n0:n1] * g[:, n0:n1]).sum())

    h = 1e-4 * float(st.w_padded.abs().max())
    fd = (objective(h) - objective(-h)) / (2 * h)

    state = x.clone()
    keep = torch.empty((n1 - n0, *st.snapshot_shape), dtype=torch.float64)
    st.advance(state, n0, n1, keep=keep)
    st.begin_adjoint(need_wavelet=False, need_model=True)
    st.adjoint(y.clone(), keep, n0, n1, g)
    grad_w = st._grad_w.sum(0)
    st.end_adjoint()
    assert abs(float((dw * grad_w).sum()) - fd) <= 1e-6 * abs(fd)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-13)])
def test_snapshots_match_eager(dtype, tol):
    """Forward blocks keep S = du_next/dw on the physical grid, source terms included, as eager does."""
    from sweep.propagator.eager.acoustic import EagerAcousticStepper

    c = make_stepper(dtype, 4, True)
    e = EagerAcousticStepper(c.problem, [c.vp])
    assert c.snapshot_shape == e.snapshot_shape == (2, NZ, NX)
    kc = torch.empty((NT, *c.snapshot_shape), dtype=dtype)
    ke = torch.empty_like(kc)
    sc, se = c.initial(), e.initial()
    c.advance(sc, 0, 30, keep=kc[:30])
    c.advance(sc, 30, NT, keep=kc[30:])
    e.advance(se, 0, NT, keep=ke)
    assert rel(kc, ke) < tol
    assert rel(sc, se) < tol


def test_velocity_gradient_finite_differences():
    """float64 central differences (h = 0.05 m/s) of a misfit at interior cells away from the edges
    (which also set the fixed padding); the truncation error is ~1e-9 relative, tolerance 1e-6."""
    prop = PropTorch(Acoustic(), (NZ, NX), DH, DT, NT, abcn=5, space_order=4, impl="c", use_ckpt=False)
    wav = wavelets(torch.float64)
    target = torch.randn((2, NT, RECEIVERS.shape[1], 1), dtype=torch.float64,
                         generator=torch.Generator().manual_seed(4))

    def misfit(vp):
        return (0.5 * (prop(wav, SOURCES, RECEIVERS, [vp]) - 1e-3 * target) ** 2).sum()

    vp = model(torch.float64).requires_grad_(True)
    misfit(vp).backward()
    h = 0.05
    for z, x in [(5, 6), (10, 13), (14, 20)]:
        plus, minus = model(torch.float64), model(torch.float64)
        plus[z, x] += h
        minus[z, x] -= h
        with torch.no_grad():
            fd = float(misfit(plus) - misfit(minus)) / (2 * h)
        assert abs(fd) > 0
        assert abs(float(vp.grad[z, x]) - fd) <= 1e-6 * abs(fd), (z, x, float(vp.grad[z, x]), fd)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunk_checkpointing_equals_full_storage(dtype):
    """Replaying chunks (of a length that leaves a short last chunk) recomputes the states bit for bit."""
    full = run("c", dtype, use_ckpt=False)
    chunk = run("c", dtype, use_ckpt=True, ckpt_chunks=7)
    for a, b in zip(chunk, full):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_thread_count_does_not_change_results(dtype, monkeypatch):
    monkeypatch.setattr(cstep, "MIN_CELLS_PER_THREAD", 0)  # let the tiny grid really use two threads
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run("c", dtype, free_surface=True, use_ckpt=False)
        torch.set_num_threads(2)
        two = run("c", dtype, free_surface=True, use_ckpt=False)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_missing_library_raises_and_default_falls_back(monkeypatch):
    monkeypatch.setattr(cmod, "library_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"impl='c'.*pip install -e \."):
        PropTorch(Acoustic(), (NZ, NX), DH, DT, NT, impl="c")
    monkeypatch.setattr(torch_mod, "_warned_fallback", False)
    with pytest.warns(UserWarning, match="not available"):
        prop = PropTorch(Acoustic(), (NZ, NX), DH, DT, NT)
    assert prop.impl == "eager"


def test_broken_library_says_why(monkeypatch, tmp_path):
    """A library file that exists but cannot be loaded is reported with the loader's reason."""
    bogus = tmp_path / "_sweep_acoustic.so"
    bogus.write_bytes(b"not an ELF file")
    monkeypatch.setattr(clib, "_find_library", lambda: bogus)
    for name, value in (("_tried", False), ("_lib", None), ("_error", None)):
        monkeypatch.setattr(clib, name, value)
    assert cmod.library_available() is False
    assert "failed to load" in cmod.load_error() and str(bogus) in cmod.load_error()
    with pytest.raises(RuntimeError, match="failed to load"):
        PropTorch(Acoustic(), (NZ, NX), DH, DT, NT, impl="c")


def test_default_impl_is_c_when_built():
    assert PropTorch(Acoustic(), (NZ, NX), DH, DT, NT).impl == "c"
