"""The compiled back-end's 3-D acoustic stepper (impl='c', ``CAcoustic3DStepper``): against the eager reference,
its own exact adjoint, the reverse-time rebuild, every work split and wave schedule bit for bit, the memory
strategies, argument checks, and 64-bit offsets (a real kernel call past 2**31 time samples)."""
import mmap
import sys

import numpy as np
import pytest
import torch

import sweep.propagator.c.stepper as cstep
from sweep.equations import Acoustic, Acoustic3D
from sweep.propagator.c import CAcoustic3DStepper, CAcousticStepper, library_available, load_error
from sweep.propagator.eager.acoustic import EagerAcousticStepper
from sweep.propagator.grid import PaddedGrid
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from sweep.propagator.registry import stepper_class
from sweep.propagator.setup import Problem, build_problem
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker

NZ, NY, NX, DH, DT, NT, ABCN = 12, 14, 16, 10.0, 0.001, 60, 4
SHAPE = (NZ, NY, NX)
pytestmark = [
    pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength"),
    pytest.mark.skipif(not library_available(), reason=f"impl='c' not built: {load_error()}"),
]
# [x, y, z]: two shots, two sources each (one pair shares a cell: accumulation in a fixed order), on the top
# plane and near the side faces; receivers on corners, edges and inside.
SOURCES = np.array([[[4, 3, 0], [15, 7, 6]], [[8, 5, 9], [8, 5, 9]]])
RECEIVERS = np.array([[[0, 0, 0], [7, 13, 3], [15, 6, 11], [9, 9, 5]],
                      [[2, 1, 1], [14, 12, 2], [9, 6, 10], [15, 0, 0]]])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def model(dtype: torch.dtype) -> torch.Tensor:
    z, y, x = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in SHAPE), indexing="ij")
    return (1800.0 + 15.0 * z + 10.0 * y + 40.0 * torch.sin(x / 3.0)).to(dtype)


def wavelets(dtype: torch.dtype, nt: int = NT) -> torch.Tensor:
    t = torch.arange(nt, dtype=torch.float64) * DT
    return torch.stack([torch.stack([ricker(t - 0.015 - 0.004 * (2 * s + k), 40.0) for k in range(2)])
                        for s in range(2)]).to(dtype)


def run(impl: str, dtype: torch.dtype, free_surface: bool = False, space_order: int = 4, **kw):
    """(data, grad vp, grad wavelet) of a quadratic misfit against a fixed random target."""
    prop = PropTorch(Acoustic3D(), SHAPE, DH, DT, NT, abcn=kw.pop("abcn", ABCN), free_surface=free_surface,
                     space_order=space_order, impl=impl, **kw)
    vp = model(dtype).requires_grad_(True)
    wav = wavelets(dtype).requires_grad_(True)
    data = prop(wav, SOURCES, RECEIVERS, [vp])
    target = torch.randn(data.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    (0.5 * (data - 1e-3 * target) ** 2).sum().backward()
    return data.detach(), vp.grad, wav.grad


def make_problem(dtype: torch.dtype, space_order: int = 4, free_surface: bool = False, abcn: int = ABCN,
                 nt: int = NT, wavelet: torch.Tensor | None = None) -> Problem:
    grid = PaddedGrid(SHAPE, abcn, free_surface)
    wav = wavelets(dtype, nt) if wavelet is None else wavelet
    problem, _ = build_problem(grid=grid, dh=DH, dt=DT, nt=nt, space_order=space_order, max_stable_dt=1.0,
                               velocity=model(dtype), wavelet=wav, sources=SOURCES, receivers=RECEIVERS,
                               pml_freq=30.0)
    return problem


def stepper(dtype: torch.dtype, space_order: int = 4, free_surface: bool = False, abcn: int = ABCN,
            **kw) -> CAcoustic3DStepper:
    return CAcoustic3DStepper(make_problem(dtype, space_order, free_surface, abcn), [model(dtype)], **kw)


def test_registered_and_shapes():
    assert stepper_class("acoustic", 3, "c") is CAcoustic3DStepper
    st = stepper(torch.float32)
    assert st.state_shape == (8, 2, NZ + 2 * ABCN, NY + 2 * ABCN, NX + 2 * ABCN)
    assert st.snapshot_shape == (2, *SHAPE) and st.rebuild_shape == (2, 2, *SHAPE)
    assert st.strip_shape == (2, len(st.problem.grid.strip_cells(2)))
    assert PropTorch(Acoustic3D(), SHAPE, DH, DT, NT).impl == "c"


@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("space_order", [2, 4, 8])
@pytest.mark.parametrize("dtype, tol_data, tol_grad", [(torch.float32, 1e-5, 1e-4), (torch.float64, 1e-12, 1e-10)])
def test_c_matches_eager(space_order, free_surface, dtype, tol_data, tol_grad):
    c = run("c", dtype, free_surface, space_order, use_ckpt=False)
    e = run("eager", dtype, free_surface, space_order, use_ckpt=False)
    assert c[0].dtype == dtype and c[1].dtype == dtype and c[0].abs().max() > 0
    assert rel(c[0], e[0]) < tol_data
    assert rel(c[1], e[1]) < tol_grad
    assert rel(c[2], e[2]) < tol_grad


@pytest.mark.parametrize("abcn, space_order", [(0, 6), (1, 4), (6, 2)])
def test_layer_widths_match_eager(abcn, space_order):
    """No layer, a layer thinner than the stencil, a wider one: forward and gradient against eager."""
    c = run("c", torch.float64, True, space_order, abcn=abcn, use_ckpt=False)
    e = run("eager", torch.float64, True, space_order, abcn=abcn, use_ckpt=False)
    assert rel(c[0], e[0]) < 1e-12 and rel(c[1], e[1]) < 1e-10 and rel(c[2], e[2]) < 1e-10


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-13)])
def test_snapshots_and_strips_match_eager(dtype, tol):
    """Forward blocks keep S = du_next/dw on the physical grid and u_{n-1} on the strip cells, as eager does."""
    p = make_problem(dtype, 4, True)
    c, e = CAcoustic3DStepper(p, [model(dtype)]), EagerAcousticStepper(p, [model(dtype)])
    out = []
    for st in (c, e):
        keep = torch.empty((NT, *st.snapshot_shape), dtype=dtype)
        strips = torch.empty((NT, *st.strip_shape), dtype=dtype)
        state = st.initial()
        st.advance(state, 0, 25, keep=keep[:25], strips=strips[:25])
        st.advance(state, 25, NT, keep=keep[25:], strips=strips[25:])
        out.append((state, keep, strips))
    for a, b in zip(*out):
        assert rel(a, b) < tol


def layer_masks(st: CAcoustic3DStepper) -> torch.Tensor:
    """(8, 1, *padded) 0/1: the subspace the kernels act on (auxiliaries only inside their axis's layers)."""
    pml, shape = st.problem.pml, st.problem.grid.padded_shape
    masks = {}
    for axis, dim in (("z", 0), ("y", 1), ("x", 2)):
        inside = (~((pml[f"a{axis}"] == 0) & (pml[f"b{axis}"] == 1))).double()
        view = [1, 1, 1]
        view[dim] = -1
        masks[axis] = inside.view(view).expand(shape)
    ones = torch.ones(shape, dtype=torch.float64)
    return torch.stack([ones, ones, masks["x"], masks["y"], masks["z"], masks["x"], masks["y"], masks["z"]]).unsqueeze(1)


def random_vectors(st: CAcoustic3DStepper, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    mask = layer_masks(st)
    x = torch.randn(st.state_shape, dtype=torch.float64, generator=gen) * mask
    y = torch.randn(st.state_shape, dtype=torch.float64, generator=gen) * mask
    g = torch.randn((2, NT, RECEIVERS.shape[1]), dtype=torch.float64, generator=gen)
    return x, y, g


@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("space_order", [2, 8])
def test_adjoint_dot_product(space_order, free_surface):
    """<F x, y> = <x, F^T y> for 5 steps of the kernels (state and wavelet in, state and receivers out), float64,
    random states in the kernels' subspace; the adjoint is one block call and needs no forward state."""
    st = stepper(torch.float64, space_order, free_surface)
    x, y, g = random_vectors(st, torch.Generator().manual_seed(3))
    n0, n1 = 7, 12
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
    """The model gradient from the snapshots is the adjoint of the linearisation in w (central differences of
    the forward, affine in w per step up to second order, against <dw, grad_w>)."""
    st = stepper(torch.float64, space_order, free_surface)
    gen = torch.Generator().manual_seed(5)
    x, y, g = random_vectors(st, gen)
    dw = torch.randn(SHAPE, dtype=torch.float64, generator=gen)
    n0, n1 = 3, 9

    def objective(h: float) -> float:
        other = stepper(torch.float64, space_order, free_surface)
        other._w[st.problem.grid.physical] += h * dw
        state, record = x.clone(), torch.zeros_like(g)
        other.advance(state, n0, n1, record=record)
        return float((state * y).sum() + (record[:, n0:n1] * g[:, n0:n1]).sum())

    h = 1e-4 * float(st.w_padded.abs().max())
    fd = (objective(h) - objective(-h)) / (2 * h)
    keep = torch.empty((n1 - n0, *st.snapshot_shape), dtype=torch.float64)
    st.advance(x.clone(), n0, n1, keep=keep)
    st.begin_adjoint(need_wavelet=False, need_model=True)
    st.adjoint(y.clone(), keep, n0, n1, g)
    grad_w = st._grad_w.sum(0)
    st.end_adjoint()
    assert abs(float((dw * grad_w).sum()) - fd) <= 1e-6 * abs(fd)


def forward(st, blocks=((0, NT),)):
    """(final state, kept snapshots, strips, record, peak |u| at the block ends) of a forward run in blocks."""
    dtype = st.problem.dtype
    state = st.initial()
    keep = torch.empty((NT, *st.snapshot_shape), dtype=dtype)
    strips = torch.empty((NT, *st.strip_shape), dtype=dtype)
    record = torch.zeros((2, NT, RECEIVERS.shape[1]), dtype=dtype)
    peak = 0.0
    for n0, n1 in blocks:
        st.advance(state, n0, n1, record=record, keep=keep[n0:n1], strips=strips[n0:n1])
        peak = max(peak, float(state[1].abs().max()))
    return state, keep, strips, record, peak


def rebuild(st, state, strips, blocks=((0, NT),)):
    """(fields at step 0, rebuilt snapshots) of a retreat from ``state`` at step NT, blocks in reverse."""
    fields = torch.empty(st.rebuild_shape, dtype=st.problem.dtype)
    st.save_fields(state, fields)
    keep = torch.empty((NT, *st.snapshot_shape), dtype=st.problem.dtype)
    for n0, n1 in reversed(blocks):
        st.retreat(fields, strips[n0:n1], n0, n1, keep[n0:n1])
    return fields, keep


# Bounds as in test_c_boundary (measured: float32 rebuilt snapshots within ~1e-6 of the forward's, relative to
# max |S|; fields at step 0 within ~3e-7 of zero relative to the peak |u|).
@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("space_order", [2, 8])
@pytest.mark.parametrize("dtype, tol_s, tol_u", [(torch.float32, 1e-5, 3e-6), (torch.float64, 2e-14, 6e-15)])
def test_retreat_rebuilds_the_forward(space_order, free_surface, dtype, tol_s, tol_u):
    """From the forward's final fields and strips, retreat gives back each step's snapshot: the first rebuilt
    step's interior S bit for bit, every step to round-off, and fields at step 0 that vanish to round-off."""
    st = stepper(dtype, space_order, free_surface)
    state, keep, strips, _, peak = forward(st, [(n, n + 1) for n in range(NT)])
    fields, rebuilt = rebuild(st, state, strips)
    inside = torch.ones(NZ * NY * NX, dtype=torch.bool)
    inside[torch.from_numpy(st.strip_index)] = False
    inside = inside.view(SHAPE)
    assert keep[-1][:, inside].abs().max() > 0
    assert torch.equal(rebuilt[-1][:, inside], keep[-1][:, inside])
    assert float((rebuilt - keep).abs().max() / keep.abs().max()) < tol_s
    assert float(fields.abs().max()) < tol_u * peak


def test_retreat_without_absorbing_layer():
    """abcn = 0: no strip cells, and the rebuild's first S is the forward's bit for bit everywhere."""
    st = stepper(torch.float32, 8, abcn=0)
    assert st.strip_shape == (2, 0)
    state, keep, strips, _, _ = forward(st)
    _, rebuilt = rebuild(st, state, strips)
    assert torch.equal(rebuilt[-1], keep[-1])
    assert float((rebuilt - keep).abs().max() / keep.abs().max()) < 1e-5


def outputs(st, blocks):
    """Everything a forward, a rebuild and an adjoint of ``st`` produce (for bit-for-bit comparisons)."""
    state, keep, strips, record, _ = forward(st, blocks)
    fields, rebuilt = rebuild(st, state, strips, blocks)
    g = torch.randn(record.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(record.dtype)
    st.begin_adjoint(need_wavelet=True, need_model=True)
    adj = torch.zeros_like(state)
    for n0, n1 in reversed(blocks):
        st.adjoint(adj, keep[n0:n1], n0, n1, g)
    grad_wavelet, (grad_vp,) = st.end_adjoint()
    return state, keep, strips, record, fields, rebuilt, adj, grad_wavelet, grad_vp


@pytest.mark.parametrize("dtype, free_surface, space_order", [(torch.float32, False, 4), (torch.float64, True, 8),
                                                              (torch.float32, True, 2)])
def test_splits_and_waves_are_bit_identical(dtype, free_surface, space_order, monkeypatch):
    """1, 2 and 3 threads (2 shots: whole shots per thread, or a team of threads pipelining one shot's steps),
    waves of 1 to 3 steps, y-tiles of 3 and 5 rows and the automatic ones, one block or ragged ones: every
    output bit for bit."""
    monkeypatch.setattr(cstep, "MIN_CELLS_PER_THREAD", 0)  # let the tiny grid really use several threads
    before = torch.get_num_threads()
    one_block, ragged = [(0, NT)], [(0, 7), (7, 8), (8, 33), (33, NT)]
    try:
        torch.set_num_threads(1)
        ref = outputs(stepper(dtype, space_order, free_surface, wave=1, tile_y=1000), one_block)
        for threads, wave, tile_y, blocks in [(1, 0, 0, ragged), (2, 0, 0, one_block), (2, 2, 3, ragged),
                                              (3, 1, 5, one_block), (3, 3, 0, ragged), (2, 3, 5, one_block)]:
            torch.set_num_threads(threads)
            out = outputs(stepper(dtype, space_order, free_surface, wave=wave, tile_y=tile_y), blocks)
            for a, b in zip(ref, out):
                assert torch.equal(a, b), (threads, wave, tile_y, blocks)
    finally:
        torch.set_num_threads(before)


def one_shot_run(threads: int, **kw):
    """(data, grad vp, grad wavelet) of one shot with `threads` threads (a team: the pipelined split)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        prop = PropTorch(Acoustic3D(), SHAPE, DH, DT, NT, abcn=ABCN, space_order=4, impl="c", **kw)
        vp = model(torch.float32).requires_grad_(True)
        wav = wavelets(torch.float32)[:1, :1].requires_grad_(True)
        data = prop(wav, SOURCES[:1, :1], RECEIVERS[:1], [vp])
        (data**2).sum().backward()
        return data.detach(), vp.grad, wav.grad
    finally:
        torch.set_num_threads(before)


def test_one_shot_on_two_threads_is_bit_identical(monkeypatch):
    """One shot, two threads (the team split, with banded calls of the governor's thread count), against one
    thread: full storage, boundary saving and Revolve."""
    monkeypatch.setattr(cstep, "MIN_CELLS_PER_THREAD", 0)
    for kw in (dict(use_ckpt=False), dict(memory=MemoryOptions(strategy="boundary", boundary=BoundaryOptions())),
               dict(memory=MemoryOptions(strategy="ckpt", ckpt=CkptOptions("recursive", count=3)))):
        one, two = one_shot_run(1, **kw), one_shot_run(2, **kw)
        for a, b in zip(one, two):
            assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_memory_strategies(dtype):
    """Boundary saving equals full storage (data bit for bit, gradient within 5e-6 relative: the rebuild
    repeats the forward to round-off); chunk checkpointing and Revolve equal it bit for bit."""
    full = run("c", dtype, use_ckpt=False)
    boundary = run("c", dtype, memory=MemoryOptions(strategy="boundary", boundary=BoundaryOptions()))
    assert torch.equal(boundary[0], full[0])
    for a, b in zip(boundary[1:], full[1:]):
        assert float((a - b).abs().max() / b.abs().max()) < 5e-6
    for kw in (dict(use_ckpt=True, ckpt_chunks=7),
               dict(memory=MemoryOptions(strategy="ckpt", ckpt=CkptOptions("recursive", count=4)))):
        for a, b in zip(run("c", dtype, **kw), full):
            assert torch.equal(a, b)


def test_bad_inputs_name_the_argument():
    st = stepper(torch.float64)
    state, keep, strips, _, _ = forward(st)
    fields = torch.zeros(st.rebuild_shape, dtype=torch.float64)
    with pytest.raises(ValueError, match="state"):
        st.advance(state[:, :1], 0, 5)
    with pytest.raises(ValueError, match="state"):
        st.advance(state.float(), 0, 5)
    with pytest.raises(ValueError, match="n0"):
        st.advance(st.initial(), 5, 2)
    with pytest.raises(ValueError, match="nt"):
        st.advance(st.initial(), 0, NT + 1)
    with pytest.raises(ValueError, match="record"):
        st.advance(st.initial(), 0, 5, record=torch.zeros(2, NT, 3))
    with pytest.raises(ValueError, match="keep"):
        st.advance(st.initial(), 0, 5, keep=keep[:4])
    with pytest.raises(ValueError, match="keep"):
        st.advance(st.initial(), 0, 5, keep=keep[:5, :, :, :, :-1])
    with pytest.raises(ValueError, match="strips"):
        st.advance(st.initial(), 0, 5, strips=strips[:5].float())
    with pytest.raises(ValueError, match="out"):
        st.save_fields(state, fields[:1])
    with pytest.raises(ValueError, match="fields"):
        st.retreat(fields[:, :1], strips[:5], 0, 5, keep[:5])
    with pytest.raises(ValueError, match="strips"):
        st.retreat(fields, strips[:5, :, :-1], 0, 5, keep[:5])
    with pytest.raises(ValueError, match="adj_state"):
        st.begin_adjoint(True, True)
        st.adjoint(state[:7], keep[:5], 0, 5, torch.zeros(2, NT, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="grad_record"):
        st.adjoint(torch.zeros_like(state), keep[:5], 0, 5, torch.zeros(2, NT, 3, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="begin_adjoint"):
        stepper(torch.float64).adjoint(torch.zeros_like(state), keep[:5], 0, 5, torch.zeros(2, NT, 4))
    with pytest.raises(ValueError, match="wave"):
        stepper(torch.float64, wave=-1)
    with pytest.raises(ValueError, match="tile_y"):
        stepper(torch.float64, tile_y=1.5)
    grid2d = PaddedGrid((8, 9), 2, False)
    problem2d, _ = build_problem(grid=grid2d, dh=DH, dt=DT, nt=10, space_order=4, max_stable_dt=1.0,
                                 velocity=torch.full((8, 9), 2000.0), wavelet=torch.zeros(10),
                                 sources=np.array([[1, 1]]), receivers=np.array([[[2, 2]]]), pml_freq=30.0)
    with pytest.raises(ValueError, match="3-D"):
        CAcoustic3DStepper(problem2d, [torch.full((8, 9), 2000.0)])


# ---- 64-bit offsets ---------------------------------------------------------------------------------------

BIG = 2**31  # steps n0 .. n1 of the big call lie beyond this many time samples
# Python adds mmap.MAP_NORESERVE in 3.13; Linux's value before that.
MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000 if sys.platform.startswith("linux") else 0)


def lazy_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A zero tensor backed by a private anonymous mapping that reserves no memory: only the pages written
    get allocated. Skips the test when the mapping cannot be made."""
    size = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
    try:
        buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE)
    except (OSError, ValueError, OverflowError) as exc:
        pytest.skip(f"cannot map {size} bytes lazily ({exc}): the 64-bit offset test needs it")
    return torch.frombuffer(buf, dtype=dtype, count=int(np.prod(shape))).view(shape)  # keeps buf alive


def huge_nt_problem(small: Problem, nt: int, wavelet: torch.Tensor) -> Problem:
    """``small`` with ``nt`` steps and ``wavelet`` (nshots, nsrc, nt), built by hand (no validation pass over
    the wavelet's 2**31 samples)."""
    return Problem(grid=small.grid, dh=small.dh, dt=small.dt, nt=nt, space_order=small.space_order,
                   nshots=small.nshots, dtype=small.dtype, device=small.device, wavelet=wavelet, src=small.src,
                   rec=small.rec, pml=small.pml)


@pytest.mark.parametrize("ndim", [2, 3])
def test_offsets_beyond_2_to_the_31(ndim):
    """A real kernel call whose wavelet and record offsets exceed 2**31 elements (nt = 2**31 + 64, both backed by
    lazily allocated mappings): steps 2**31 + 8 .. 2**31 + 24 from rest record, bit for bit, what a small-nt
    stepper records at steps 8 .. 24 from the same samples."""
    dtype, steps = torch.float32, (8, 24)
    small_nt = 64
    t = torch.arange(small_nt, dtype=torch.float64) * DT
    samples = torch.zeros((2, 2, small_nt), dtype=dtype)
    samples[:, :, steps[0]:steps[1]] = torch.stack([ricker(t - 0.01 - 0.002 * k, 60.0)
                                                   for k in range(4)]).view(2, 2, small_nt)[:, :, steps[0]:steps[1]].to(dtype)
    if ndim == 3:
        small = make_problem(dtype, 4, True, nt=small_nt, wavelet=samples)
        cls, models = CAcoustic3DStepper, [model(dtype)]
    else:
        grid = PaddedGrid((20, 26), 5, True)
        vp = torch.full((20, 26), 2000.0, dtype=dtype)
        small, _ = build_problem(grid=grid, dh=DH, dt=DT, nt=small_nt, space_order=4, max_stable_dt=1.0,
                                 velocity=vp, wavelet=samples, sources=SOURCES[..., ::2].copy(),
                                 receivers=RECEIVERS[..., ::2].copy(), pml_freq=30.0)
        cls, models = CAcousticStepper, [vp]
    nt = BIG + small_nt
    wavelet = lazy_tensor((2, 2, nt), dtype)
    record = lazy_tensor((2, nt, small.nrec), dtype)
    wavelet[:, :, BIG + steps[0]:BIG + steps[1]] = samples[:, :, steps[0]:steps[1]]
    big = cls(huge_nt_problem(small, nt, wavelet), models)
    state = big.initial()
    big.advance(state, BIG + steps[0], BIG + steps[1], record=record)
    ref = cls(small, models)
    ref_state, ref_record = ref.initial(), torch.zeros((2, small_nt, small.nrec), dtype=dtype)
    ref.advance(ref_state, steps[0], steps[1], record=ref_record)
    assert ref_record[:, steps[0] + 1:steps[1]].abs().max() > 0
    assert torch.equal(record[:, BIG + steps[0]:BIG + steps[1]], ref_record[:, steps[0]:steps[1]])
    assert torch.equal(state, ref_state)
    assert record[:, BIG:BIG + steps[0]].abs().max() == 0  # nothing written before the block
