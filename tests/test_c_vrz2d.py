"""The compiled 2-D variable-density acoustic (VRZ) kernels (``impl='c'``, sweep/propagator/c/acoustic_vrz2d.py)
against the eager stepper, the spec (sweep/propagator/eager/acoustic_vrz.py):

(a) data and the gradients w.r.t. vp and z through PropTorch, c vs eager: float64 within 1e-12, float32 data
    1e-5 and gradients 1e-4 (max |diff| / max |eager|), space orders 2..8, with and without a free surface;
(b) the exact discrete adjoint of a block of steps (float64 dot product, 1e-12) and its model gradient against
    central differences in vp and z;
(c) ``retreat`` reproduces the forward's snapshots (S_n, u_n) (float64 1e-12, float32 1e-5 of their peak), S_n
    bit for bit away from the strips;
(d) boundary saving (fp32 strips) within 5e-6 of full storage, chunk and Revolve checkpointing bit for bit;
(e) one thread or two: bit for bit.
Tiny grids: the whole file runs in seconds.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sweep.equations import AcousticVRZ
from sweep.propagator import threads
from sweep.propagator.c import library_available, load_error
from sweep.propagator.grid import PaddedGrid
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from sweep.propagator.registry import stepper_class
from sweep.propagator.setup import build_problem
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker
from test_conformance import acoustic_subspace, checked_adjoint_block

pytestmark = [pytest.mark.skipif(not library_available(), reason=f"impl='c' not built: {load_error()}"),
              pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")]

SHAPE, ABCN, NT = (14, 17), 4, 60
DH, DT, F0, DELAY = 10.0, 0.0012, 35.0, 0.02
# Two shots of two sources ([x, z]); the second shot's pair shares a cell. Receivers on edges and corners.
SOURCES = np.array([[[3, 0], [15, 6]], [[8, 9], [8, 9]]])
RECEIVERS = np.array([[[0, 0], [7, 3], [16, 11], [12, 13]], [[2, 1], [16, 0], [9, 12], [4, 7]]])


def models(dtype=torch.float64, bump: float = 0.0) -> list[torch.Tensor]:
    """[vp, z]: a smooth vp varying along both axes and a density with a sharp step (1.1 -> 2.0 g/cc) across
    a dipping interface, so that the buoyancy varies cell to cell; ``bump`` a Gaussian vp anomaly."""
    z, x = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in SHAPE], indexing="ij")
    vp = 1800.0 + 15.0 * z + 40.0 * torch.sin(x / 3.0)
    vp = vp + bump * torch.exp(-((z - 6.5) ** 2 + (x - 8) ** 2) / 8.0)
    rho = 1100.0 + 300.0 * torch.cos(x / 4.0 + z / 5.0) ** 2 + 600.0 * (z > 5 + x / 4).double()
    return [vp.to(dtype), (vp * rho).to(dtype)]


def wavelet(dtype=torch.float64) -> torch.Tensor:
    t = torch.arange(NT, dtype=torch.float64) * DT
    return torch.stack([torch.stack([ricker(t - DELAY - 0.003 * (2 * s + k), F0) for k in range(2)])
                        for s in range(2)]).to(dtype)


def propagate(impl, dtype, memory=None, free_surface=False, space_order=4, nshots=2):
    """(data, grad vp, grad z, grad wavelet) of a data misfit, through PropTorch."""
    prop = PropTorch(AcousticVRZ(), SHAPE, DH, DT, NT, abcn=ABCN, impl=impl, pml_freq=F0, free_surface=free_surface,
                     space_order=space_order, memory=memory or MemoryOptions("full"))
    vp, z = (m.requires_grad_(True) for m in models(dtype))
    wav = wavelet(dtype)[:nshots].clone().requires_grad_(True)
    data = prop(wav, SOURCES[:nshots], RECEIVERS[:nshots], [vp, z])
    with torch.no_grad():
        target = prop(wavelet(dtype)[:nshots], SOURCES[:nshots], RECEIVERS[:nshots], models(dtype, 150.0))
    (0.5 * (data - target).pow(2).sum()).backward()
    return data.detach(), vp.grad, z.grad, wav.grad


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("space_order", [2, 4, 6, 8])
@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("dtype, tol_data, tol_grad", [(torch.float64, 1e-12, 1e-12), (torch.float32, 1e-5, 1e-4)])
def test_c_matches_eager(space_order, free_surface, dtype, tol_data, tol_grad):
    c = propagate("c", dtype, free_surface=free_surface, space_order=space_order)
    ref = propagate("eager", dtype, free_surface=free_surface, space_order=space_order)
    assert rel(c[0], ref[0]) <= tol_data, rel(c[0], ref[0])
    for got, want in zip(c[1:], ref[1:]):
        assert want.abs().max() > 0
        assert rel(got, want) <= tol_grad, rel(got, want)


def make_stepper(dtype=torch.float64, free_surface=False, ms=None, wav=None, space_order=4):
    """The registered C stepper, built as PropTorch builds it (the C-PML fixed by pml_freq and pml_vmax)."""
    grid = PaddedGrid(SHAPE, ABCN, free_surface)
    ms = models(dtype) if ms is None else ms
    if wav is None:  # a random wavelet: every sample matters to the dot products
        wav = torch.randn(2, 2, NT, dtype=dtype, generator=torch.Generator().manual_seed(7))
    problem, _ = build_problem(grid=grid, dh=DH, dt=DT, nt=NT, space_order=space_order, max_stable_dt=1.0,
                               velocity=ms[0], wavelet=wav, sources=SOURCES, receivers=RECEIVERS, pml_freq=F0,
                               pml_vmax=3000.0)
    return stepper_class("acoustic_vrz", 2, "c")(problem, ms)


@pytest.mark.parametrize("space_order", [2, 8])
@pytest.mark.parametrize("free_surface", [False, True])
def test_adjoint_dot_product(free_surface, space_order):
    st = make_stepper(free_surface=free_surface, space_order=space_order)
    p = st.problem
    gen = torch.Generator().manual_seed(11)
    forward, grads = checked_adjoint_block(st, acoustic_subspace(st), gen)

    # The model gradient: central differences in vp and z; the perturbations are zero within r cells of every
    # face, whose pairs with cells past the physical grid (the fixed padding, or beyond a free surface) the
    # gradient holds fixed. The objective is a polynomial in h, h small against the models.
    ms = models()
    r = st.r
    for i, h in ((0, 0.2), (1, 300.0)):
        dm = torch.zeros(SHAPE, dtype=torch.float64)
        dm[r:-r, r:-r] = torch.randn((SHAPE[0] - 2 * r, SHAPE[1] - 2 * r), dtype=torch.float64, generator=gen)
        plus, minus = list(ms), list(ms)
        plus[i], minus[i] = ms[i] + h * dm, ms[i] - h * dm
        fd = (forward(make_stepper(free_surface=free_surface, ms=plus, wav=p.wavelet.clone(), space_order=space_order))
              - forward(make_stepper(free_surface=free_surface, ms=minus, wav=p.wavelet.clone(),
                                     space_order=space_order))) / (2 * h)
        got = float((dm * grads[i]).sum())
        assert abs(fd) > 0
        assert abs(got - fd) <= 1e-6 * abs(fd), (i, got, fd)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("free_surface", [False, True])
def test_retreat_reproduces_the_forward(free_surface, dtype, tol):
    st = make_stepper(dtype, free_surface, ms=models(dtype), wav=wavelet(dtype))
    nt, m = st.nt, st.nt // 3
    kept = torch.empty((nt, *st.snapshot_shape), dtype=dtype)
    strips = torch.empty((nt, *st.strip_shape), dtype=dtype)
    state = st.initial()
    at_m = torch.empty(st.rebuild_shape, dtype=dtype)
    st.advance(state, 0, m, keep=kept[:m], strips=strips[:m])
    st.save_fields(state, at_m)
    st.advance(state, m, nt, keep=kept[m:], strips=strips[m:])
    fields = torch.empty(st.rebuild_shape, dtype=dtype)
    st.save_fields(state, fields)
    peak_u = float(fields.abs().max())
    assert peak_u > 0 and strips.abs().max() > 0
    rebuilt = torch.full_like(kept, float("nan"))
    st.retreat(fields, strips[m:], m, nt, rebuilt[m:])
    assert float((fields - at_m).abs().max()) <= tol * peak_u
    st.retreat(fields, strips[:m], 0, m, rebuilt[:m])
    for f in range(2):  # S_n, then u_n
        peak = float(kept[:, f].abs().max())
        assert float((rebuilt[:, f] - kept[:, f]).abs().max()) <= tol * peak, f
    assert float(fields.abs().max()) <= tol * peak_u


@pytest.mark.parametrize("space_order", [2, 4, 6, 8])
@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_retreat_repeats_the_forward_rounding(free_surface, dtype, space_order):
    """One rebuilt step from the forward's fields: u_n and, away from the strips, S_n bit for bit."""
    st = make_stepper(dtype, free_surface, ms=models(dtype), wav=wavelet(dtype), space_order=space_order)
    kept = torch.empty((NT, *st.snapshot_shape), dtype=dtype)
    strips = torch.empty((NT, *st.strip_shape), dtype=dtype)
    state = st.initial()
    st.advance(state, 0, NT, keep=kept, strips=strips)
    fields = torch.empty(st.rebuild_shape, dtype=dtype)
    st.save_fields(state, fields)
    rebuilt = torch.empty_like(kept[-1:])
    st.retreat(fields, strips[-1:], NT - 1, NT, rebuilt)
    interior = torch.ones(SHAPE, dtype=torch.bool).view(-1)
    interior[torch.from_numpy(st.strip_index)] = False
    interior = interior.view(SHAPE)
    assert torch.equal(rebuilt[0, 1], kept[-1, 1])
    assert torch.equal(rebuilt[0, 0][:, interior], kept[-1, 0][:, interior])


def boundary(**kw) -> MemoryOptions:
    return MemoryOptions("boundary", boundary=BoundaryOptions(**kw))


@pytest.mark.parametrize("free_surface", [False, True])
def test_memory_strategies_against_full_storage(free_surface):
    ref = propagate("c", torch.float32, free_surface=free_surface)
    for memory in (MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=7)),
                   MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=3))):
        got = propagate("c", torch.float32, memory, free_surface=free_surface)
        for a, b in zip(got, ref):
            assert torch.equal(a, b)
    got = propagate("c", torch.float32, boundary(storage_dtype="fp32"), free_surface=free_surface)
    for a, b in zip(got, ref):
        l2 = float((a - b).norm() / b.norm())
        assert l2 < 5e-6 and rel(a, b) < 5e-6, (l2, rel(a, b))


@pytest.mark.parametrize("nshots", [1, 2])
def test_thread_count_does_not_change_results(nshots, monkeypatch):
    from sweep.propagator.c import stepper

    for governor in (threads.GOVERNOR, threads.TORCH_GOVERNOR):
        monkeypatch.setattr(governor, "enabled", False)
    monkeypatch.setattr(stepper, "MIN_CELLS_PER_THREAD", 0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = propagate("c", torch.float32, nshots=nshots)
        torch.set_num_threads(2)
        two = propagate("c", torch.float32, nshots=nshots)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two):
        assert torch.equal(a, b)
