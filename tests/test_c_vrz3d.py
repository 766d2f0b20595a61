"""The compiled back-end's 3-D variable-density acoustic stepper (impl='c', ``CAcousticVRZ3DStepper``: the 3-D
templates instantiated with SWEEP_VRZ): against the eager reference through PropTorch (data and both model
gradients), its exact adjoint, the reverse-time rebuild, the memory strategies, and thread counts bit for bit.
Tiny grids (10 x 11 x 12 with 3-cell layers): seconds."""
import numpy as np
import pytest
import torch

import sweep.propagator.c.stepper as cstep
from sweep.equations import AcousticVRZ3D
from sweep.propagator.c import library_available, load_error
from sweep.propagator.c.acoustic_vrz3d import CAcousticVRZ3DStepper
from sweep.propagator.eager.acoustic_vrz import EagerAcousticVRZStepper
from sweep.propagator.grid import PaddedGrid
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from sweep.propagator.registry import stepper_class
from sweep.propagator.setup import build_problem
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker
from test_c_boundary import forward
from test_conformance import acoustic_subspace, checked_adjoint_block

SHAPE, DH, DT, NT, ABCN, PML_FREQ = (10, 11, 12), 10.0, 0.001, 40, 3, 30.0
pytestmark = [
    pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength"),
    pytest.mark.skipif(not library_available(), reason=f"impl='c' not built: {load_error()}"),
]
# [x, y, z]: two shots of two sources (the second shot's pair shares a cell), one on the top plane; receivers
# on corners, edges and inside.
SOURCES = np.array([[[4, 3, 0], [11, 7, 6]], [[8, 5, 7], [8, 5, 7]]])
RECEIVERS = np.array([[[0, 0, 0], [7, 10, 3], [11, 6, 9], [9, 9, 5]],
                      [[2, 1, 1], [10, 10, 2], [9, 6, 8], [11, 0, 0]]])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def models(dtype: torch.dtype) -> list[torch.Tensor]:
    """[vp, z]: velocity and impedance (density times vp) varying along every axis, density by ~10%."""
    z, y, x = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in SHAPE), indexing="ij")
    vp = 1800.0 + 15.0 * z + 10.0 * y + 40.0 * torch.sin(x / 3.0)
    rho = 1000.0 + 20.0 * z + 60.0 * torch.cos(y / 2.0) + 40.0 * torch.sin(x / 4.0 + z / 3.0)
    return [vp.to(dtype), (rho * vp).to(dtype)]


def wavelets(dtype: torch.dtype) -> torch.Tensor:
    t = torch.arange(NT, dtype=torch.float64) * DT
    return torch.stack([torch.stack([ricker(t - 0.015 - 0.004 * (2 * s + k), 40.0) for k in range(2)])
                        for s in range(2)]).to(dtype)


def run(impl: str, dtype: torch.dtype, free_surface: bool = False, space_order: int = 4, nshots: int = 2, **kw):
    """(data, grad vp, grad z, grad wavelet) of a quadratic misfit against a fixed random target."""
    prop = PropTorch(AcousticVRZ3D(), SHAPE, DH, DT, NT, abcn=kw.pop("abcn", ABCN), free_surface=free_surface,
                     space_order=space_order, impl=impl, pml_freq=PML_FREQ, **kw)
    vp, z = (m.requires_grad_(True) for m in models(dtype))
    wav = wavelets(dtype)[:nshots].requires_grad_(True)
    data = prop(wav, SOURCES[:nshots], RECEIVERS[:nshots], [vp, z])
    target = torch.randn(data.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    (0.5 * (data - 1e-3 * target) ** 2).sum().backward()
    return data.detach(), vp.grad, z.grad, wav.grad


def stepper(dtype=torch.float64, space_order: int = 4, free_surface: bool = False, cls=CAcousticVRZ3DStepper,
            wav: torch.Tensor | None = None, vpz: list[torch.Tensor] | None = None):
    grid = PaddedGrid(SHAPE, ABCN, free_surface)
    vpz = models(dtype) if vpz is None else vpz
    if wav is None:  # random: every sample matters to the dot products
        wav = torch.randn(2, 2, NT, dtype=dtype, generator=torch.Generator().manual_seed(7))
    problem, _ = build_problem(grid=grid, dh=DH, dt=DT, nt=NT, space_order=space_order, max_stable_dt=1.0,
                               velocity=vpz[0], wavelet=wav, sources=SOURCES, receivers=RECEIVERS,
                               pml_freq=PML_FREQ, pml_vmax=2200.0)
    return cls(problem, vpz)


def test_registered():
    assert stepper_class("acoustic_vrz", 3, "c") is CAcousticVRZ3DStepper
    st = stepper()
    assert st.snapshot_shape == (2, 2, *SHAPE)
    assert PropTorch(AcousticVRZ3D(), SHAPE, DH, DT, NT).impl == "c"


@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("space_order", [2, 4, 6, 8])
@pytest.mark.parametrize("dtype, tol_data, tol_grad", [(torch.float32, 1e-5, 1e-4), (torch.float64, 1e-12, 1e-12)])
def test_c_matches_eager(space_order, free_surface, dtype, tol_data, tol_grad):
    c = run("c", dtype, free_surface, space_order, use_ckpt=False)
    e = run("eager", dtype, free_surface, space_order, use_ckpt=False)
    assert c[0].dtype == dtype and c[0].abs().max() > 0
    assert rel(c[0], e[0]) < tol_data
    for a, b in zip(c[1:], e[1:]):
        assert a.dtype == dtype and rel(a, b) < tol_grad


@pytest.mark.parametrize("abcn, space_order, interval", [(0, 6, 1), (1, 4, 1), (3, 4, 3)])
def test_layer_widths_and_gradient_sampling_match_eager(abcn, space_order, interval):
    """No layer, a layer thinner than the stencil, and gradient sampling (every third step imaged, boundary
    saving): data and gradients against eager, float64."""
    kw = dict(abcn=abcn, memory=MemoryOptions(strategy="boundary" if interval > 1 else "full",
                                              gradient_interval=interval))
    c = run("c", torch.float64, True, space_order, **kw)
    e = run("eager", torch.float64, True, space_order, **kw)
    for a, b in zip(c, e):
        assert rel(a, b) < 1e-12


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-14)])
def test_snapshots_and_strips_match_eager(dtype, tol):
    """Forward blocks keep (S, u_n) on the physical grid and u_{n-1} on the strip cells, as eager does."""
    out = []
    for cls in (CAcousticVRZ3DStepper, EagerAcousticVRZStepper):
        st = stepper(dtype, 4, True, cls=cls)
        keep = torch.empty((NT, *st.snapshot_shape), dtype=dtype)
        strips = torch.empty((NT, *st.strip_shape), dtype=dtype)
        state = st.initial()
        st.advance(state, 0, 15, keep=keep[:15], strips=strips[:15])
        st.advance(state, 15, NT, keep=keep[15:], strips=strips[15:])
        out.append((state, keep[:, 0], keep[:, 1], strips))
    for a, b in zip(*out):
        assert rel(a, b) < tol


@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("space_order", [2, 8])
def test_adjoint_dot_product(space_order, free_surface):
    """<F(x, f), (y, g)> = <x, F^T y> + <f, grad_f> for a block of steps, float64, random states in the kernels'
    subspace; and the model gradient (g_K, g_b) from the kept snapshots against central differences of the
    forward in vp and z (through the stepper's chain rule)."""
    st = stepper(torch.float64, space_order, free_surface)
    p = st.problem
    gen = torch.Generator().manual_seed(3)
    forward, (grad_vp, grad_z) = checked_adjoint_block(st, acoustic_subspace(st), gen)

    vp, z = models(torch.float64)
    # Away from the faces by the stencil's reach: the pairs reaching past the physical grid are held fixed (the
    # gradient's definition, acoustic_vrz.py), so a cell within r of a face has terms the gradient leaves out.
    r = st.r
    inner = tuple(slice(r, n - r) for n in SHAPE)
    # Fourth-order central differences: the objective is far from linear in z (b = vp / z), and its z derivative is
    # small against it (rounding), so a wide step without the h^2 error (measured 2e-11 .. 2e-8 relative).
    for which, grad, scale in ((0, grad_vp, 0.5), (1, grad_z, 2000.0)):
        d = torch.zeros(SHAPE, dtype=torch.float64)
        d[inner] = torch.randn(d[inner].shape, dtype=torch.float64, generator=gen)
        values = []
        for step in (1, -1, 2, -2):
            vpz = [vp.clone(), z.clone()]
            vpz[which] += step * scale * d
            values.append(forward(stepper(torch.float64, space_order, free_surface, wav=p.wavelet.clone(), vpz=vpz)))
        fd = (8 * (values[0] - values[1]) - (values[2] - values[3])) / (12 * scale)
        got = float((d * grad).sum())
        assert abs(fd) > 0 and abs(got - fd) <= 1e-7 * abs(fd), (which, got, fd)


@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("space_order", [2, 8])
@pytest.mark.parametrize("dtype, tol_s, tol_u", [(torch.float32, 1e-5, 3e-6), (torch.float64, 1e-12, 1e-12)])
def test_retreat_rebuilds_the_forward(space_order, free_surface, dtype, tol_s, tol_u):
    """From the forward's final fields and strips, retreat gives back each step's snapshot (S_n, u_n): the first
    rebuilt step's interior S bit for bit, every step to round-off (of each field's peak), and fields at step 0
    that vanish to round-off."""
    st = stepper(dtype, space_order, free_surface, wav=wavelets(dtype))
    state, keep, strips, peak = forward(st, [(0, 13), (13, NT)])
    fields = torch.empty(st.rebuild_shape, dtype=dtype)
    st.save_fields(state, fields)
    rebuilt = torch.empty_like(keep)
    for n0, n1 in ((13, NT), (0, 13)):
        st.retreat(fields, strips[n0:n1], n0, n1, rebuilt[n0:n1])
    inside = torch.ones(np.prod(SHAPE), dtype=torch.bool)
    inside[torch.from_numpy(st.strip_index)] = False
    inside = inside.view(SHAPE)
    assert keep[-1][0][:, inside].abs().max() > 0
    assert torch.equal(rebuilt[-1][:, :, inside], keep[-1][:, :, inside])
    for f in range(2):
        assert float((rebuilt[:, f] - keep[:, f]).abs().max() / keep[:, f].abs().max()) < tol_s, f
    assert float(fields.abs().max()) < tol_u * peak


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_memory_strategies(dtype):
    """Boundary saving (fp32 strips) within 5e-6 of full storage (relative L2 and max |dg| / max |g|); chunk
    checkpointing and Revolve bit for bit."""
    full = run("c", dtype, use_ckpt=False)
    boundary = run("c", dtype, memory=MemoryOptions(strategy="boundary",
                                                    boundary=BoundaryOptions(storage_dtype="fp32")))
    assert torch.equal(boundary[0], full[0])
    for a, b in zip(boundary[1:], full[1:]):
        assert rel(a, b) < 5e-6
        assert float((a - b).abs().max() / b.abs().max()) < 5e-6
    for kw in (dict(use_ckpt=True, ckpt_chunks=7),
               dict(memory=MemoryOptions(strategy="ckpt", ckpt=CkptOptions("recursive", count=3)))):
        out = run("c", dtype, **kw)
        for a, b in zip(out, full):
            assert torch.equal(a, b)


@pytest.mark.parametrize("nshots", [1, 2])
def test_thread_count_does_not_change_results(nshots, monkeypatch):
    """One thread or two (whole shots per thread, or a team pipelining one shot), full storage and boundary
    saving: data and gradients bit for bit."""
    monkeypatch.setattr(cstep, "MIN_CELLS_PER_THREAD", 0)
    before = torch.get_num_threads()
    try:
        for kw in (dict(use_ckpt=False), dict(memory=MemoryOptions(strategy="boundary", boundary=BoundaryOptions()))):
            out = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                out.append(run("c", torch.float32, True, 4, nshots=nshots, **kw))
            for a, b in zip(*out):
                assert torch.equal(a, b)
    finally:
        torch.set_num_threads(before)


def outputs(st, blocks):
    """A forward, a rebuild and an adjoint of ``st`` in ``blocks`` (for bit-for-bit comparisons)."""
    state, keep, strips, _ = forward(st, blocks)
    fields = torch.empty(st.rebuild_shape, dtype=st.problem.dtype)
    st.save_fields(state, fields)
    rebuilt = torch.empty_like(keep)
    for n0, n1 in reversed(blocks):
        st.retreat(fields, strips[n0:n1], n0, n1, rebuilt[n0:n1])
    g = torch.randn((2, NT, RECEIVERS.shape[1]), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    st.begin_adjoint(need_wavelet=True, need_model=True)
    adj = torch.zeros_like(state)
    for n0, n1 in reversed(blocks):
        st.adjoint(adj, keep[n0:n1], n0, n1, g.to(st.problem.dtype))
    grad_wavelet, grads = st.end_adjoint()
    return state, keep, strips, fields, rebuilt, adj, grad_wavelet, *grads


def test_splits_and_waves_are_bit_identical(monkeypatch):
    """Threads (whole shots or a team pipelining one shot's steps), waves of 1 to 3 steps, y-tiles of 3 and 5 rows,
    one block or ragged ones: every output bit for bit (float32, order 4, free surface)."""
    monkeypatch.setattr(cstep, "MIN_CELLS_PER_THREAD", 0)
    before = torch.get_num_threads()
    one_block, ragged = [(0, NT)], [(0, 7), (7, 8), (8, 23), (23, NT)]

    def make(wave: int, tile_y: int):
        st = stepper(torch.float32, 4, True, wav=wavelets(torch.float32))
        return CAcousticVRZ3DStepper(st.problem, models(torch.float32), wave=wave, tile_y=tile_y)

    try:
        torch.set_num_threads(1)
        ref = outputs(make(1, 1000), one_block)
        for threads, wave, tile_y, blocks in [(1, 0, 0, ragged), (2, 2, 3, ragged), (3, 3, 5, one_block)]:
            torch.set_num_threads(threads)
            for a, b in zip(ref, outputs(make(wave, tile_y), blocks)):
                assert torch.equal(a, b), (threads, wave, tile_y, blocks)
    finally:
        torch.set_num_threads(before)
