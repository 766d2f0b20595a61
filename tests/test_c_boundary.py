"""Boundary saving in the compiled CPU back-end (impl='c'): the strips gathered by the forward kernel
against the eager stepper's, and the reverse-time rebuild (``retreat``) against the forward it undoes."""
import numpy as np
import pytest
import torch

import sweep.propagator.c.stepper as cstep
from sweep.propagator.c import CAcousticStepper, library_available, load_error
from sweep.propagator.eager.acoustic import EagerAcousticStepper
from sweep.propagator.grid import PaddedGrid
from sweep.propagator.setup import build_problem
from sweep.signal import ricker

NZ, NX, DH, DT, NT, ABCN = 30, 40, 10.0, 0.001, 120, 6
pytestmark = [
    pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength"),
    pytest.mark.skipif(not library_available(), reason=f"impl='c' not built: {load_error()}"),
]
# Two shots, two sources each, as (x, z): on the top row (a strip cell, or an interior one below a free
# surface), on a side strip, and twice on one interior cell (accumulation in a fixed order).
SOURCES = np.array([[[4, 0], [1, 15]], [[12, 9], [12, 9]]])
RECEIVERS = np.array([[[0, 0], [7, 3], [25, 11]], [[2, 1], [18, 2], [39, 29]]])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def make_problem(dtype: torch.dtype, space_order: int = 4, free_surface: bool = False, abcn: int = ABCN):
    grid = PaddedGrid((NZ, NX), abcn, free_surface)
    z, x = torch.meshgrid(torch.arange(NZ, dtype=torch.float64), torch.arange(NX, dtype=torch.float64), indexing="ij")
    vp = (1800.0 + 15.0 * z + 40.0 * torch.sin(x / 3.0)).to(dtype)
    t = torch.arange(NT, dtype=torch.float64) * DT
    wav = torch.stack([torch.stack([ricker(t - 0.015 - 0.004 * (2 * s + k), 40.0) for k in range(2)])
                       for s in range(2)]).to(dtype)
    problem, _ = build_problem(grid=grid, dh=DH, dt=DT, nt=NT, space_order=space_order, max_stable_dt=1.0, velocity=vp,
                               wavelet=wav, sources=SOURCES, receivers=RECEIVERS, pml_freq=30.0)
    return problem, [vp]


def c_stepper(*args, **kw) -> CAcousticStepper:
    return CAcousticStepper(*make_problem(*args, **kw))


def forward(st, blocks=None):
    """(final state, kept snapshots, strips, max |u| at the block ends) of a forward run of all ``st``'s steps in
    ``blocks`` (default one)."""
    dtype, nt = st.problem.dtype, st.nt
    blocks = blocks or ((0, nt),)
    state = st.initial()
    keep = torch.empty((nt, *st.snapshot_shape), dtype=dtype)
    strips = torch.empty((nt, *st.strip_shape), dtype=dtype)
    peak = 0.0
    for n0, n1 in blocks:
        st.advance(state, n0, n1, keep=keep[n0:n1], strips=strips[n0:n1])
        peak = max(peak, float(state[1].abs().max()))
    return state, keep, strips, peak


def rebuild(st, state, strips, blocks=((0, NT),)):
    """(fields at step 0, rebuilt snapshots) of a retreat from ``state`` at step NT, blocks in reverse."""
    fields = torch.empty(st.rebuild_shape, dtype=st.problem.dtype)
    st.save_fields(state, fields)
    keep = torch.empty((NT, *st.snapshot_shape), dtype=st.problem.dtype)
    for n0, n1 in reversed(blocks):
        st.retreat(fields, strips[n0:n1], n0, n1, keep[n0:n1])
    return fields, keep


def interior_mask(st) -> torch.Tensor:
    mask = torch.ones(NZ * NX, dtype=torch.bool)
    mask[torch.from_numpy(st.strip_index)] = False
    return mask.view(NZ, NX)


@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("space_order", [2, 4, 6, 8])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-13)])
def test_strips_match_eager(space_order, free_surface, dtype, tol):
    """advance(strips=) stores u_{n-1} on grid.strip_cells() as the eager stepper does (tolerances of
    test_c_backend's snapshot comparison); save_fields likewise."""
    problem, models = make_problem(dtype, space_order, free_surface)
    c, e = CAcousticStepper(problem, models), EagerAcousticStepper(problem, models)
    assert c.strip_shape == e.strip_shape and c.rebuild_shape == e.rebuild_shape == (2, 2, NZ, NX)
    sc, _, stc, _ = forward(c)
    se, _, ste, _ = forward(e)
    assert ste.abs().max() > 0
    assert rel(stc, ste) < tol
    fc, fe = torch.empty(c.rebuild_shape, dtype=dtype), torch.empty(e.rebuild_shape, dtype=dtype)
    c.save_fields(sc, fc)
    e.save_fields(se, fe)
    assert rel(fc, fe) < tol


# Measured on this grid over 120 steps (orders 2, 4, 6, 8, both surfaces, gcc 12 -march=native with FMA):
# rebuilt snapshots within 1.2e-6 (float32) and 2.4e-15 (float64) of the forward's, relative to max |S|;
# fields at step 0 within 3.2e-7 and 6.6e-16 of zero, relative to the forward's peak |u|. The bounds
# leave about 10x.
@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("space_order", [2, 8])
@pytest.mark.parametrize("dtype, tol_s, tol_u", [(torch.float32, 1e-5, 3e-6), (torch.float64, 2e-14, 6e-15)])
def test_retreat_rebuilds_the_forward(space_order, free_surface, dtype, tol_s, tol_u):
    """From the forward's final fields and strips, retreat gives back each step's snapshot: the first
    rebuilt step's interior S bit for bit (same u_n, same arithmetic), every step to round-off, and
    fields at step 0 that vanish to round-off (the forward starts from rest)."""
    st = c_stepper(dtype, space_order, free_surface)
    state, keep, strips, peak = forward(st, [(n, n + 1) for n in range(NT)])
    fields, rebuilt = rebuild(st, state, strips)
    inside = interior_mask(st)
    assert keep[-1][:, inside].abs().max() > 0
    assert torch.equal(rebuilt[-1][:, inside], keep[-1][:, inside])
    assert float((rebuilt - keep).abs().max() / keep.abs().max()) < tol_s
    assert float(fields.abs().max()) < tol_u * peak


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_retreat_without_absorbing_layer(dtype):
    """abcn = 0: no strip cells; the forward gives the edge cells no (zero) C-PML terms, so the rebuild's
    first S is still the forward's bit for bit everywhere."""
    st = c_stepper(dtype, 8, abcn=0)
    assert st.strip_shape == (2, 0)
    state, keep, strips, _ = forward(st)
    _, rebuilt = rebuild(st, state, strips)
    assert torch.equal(rebuilt[-1], keep[-1])
    assert float((rebuilt - keep).abs().max() / keep.abs().max()) < (1e-5 if dtype == torch.float32 else 2e-14)


@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blocks_equal_one_block(free_surface, dtype):
    """Forward strips and the rebuild in blocks of odd and even lengths equal one block bit for bit
    (the slot swap at the end of an odd block restores the layout)."""
    st = c_stepper(dtype, 4, free_surface)
    blocks = ((0, 37), (37, 77), (77, NT))
    state1, keep1, strips1, _ = forward(st)
    state3, keep3, strips3, _ = forward(st, blocks)
    assert torch.equal(strips3, strips1) and torch.equal(state3, state1)
    fields1, rebuilt1 = rebuild(st, state1, strips1)
    fields3, rebuilt3 = rebuild(st, state1, strips1, blocks)
    assert torch.equal(fields3, fields1) and torch.equal(rebuilt3, rebuilt1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_thread_count_does_not_change_rebuild(dtype, monkeypatch):
    monkeypatch.setattr(cstep, "MIN_CELLS_PER_THREAD", 0)  # let the tiny grid really use two threads
    st = c_stepper(dtype, 6, True)
    before = torch.get_num_threads()
    out = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            state, keep, strips, _ = forward(st)
            out.append((state, keep, strips, *rebuild(st, state, strips)))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*out):
        assert torch.equal(a, b)


def test_bad_inputs_name_the_argument():
    st = c_stepper(torch.float64)
    state, keep, strips, _ = forward(st)
    fields = torch.zeros(st.rebuild_shape, dtype=torch.float64)
    with pytest.raises(ValueError, match="strips"):
        st.advance(st.initial(), 0, 5, strips=strips[:4])
    with pytest.raises(ValueError, match="strips"):
        st.advance(st.initial(), 0, 5, strips=strips[:5].float())
    with pytest.raises(ValueError, match="out"):
        st.save_fields(state, fields[:1])
    with pytest.raises(ValueError, match="fields"):
        st.retreat(fields[:, :1], strips[:5], 0, 5, keep[:5])
    with pytest.raises(ValueError, match="strips"):
        st.retreat(fields, strips[:5, :, :-1], 0, 5, keep[:5])
    with pytest.raises(ValueError, match="strips"):
        st.retreat(fields, strips[:5].transpose(1, 2).contiguous().transpose(1, 2), 0, 5, keep[:5])
    with pytest.raises(ValueError, match="keep"):
        st.retreat(fields, strips[:5], 0, 5, keep[:4])
    with pytest.raises(ValueError, match="n0"):
        st.retreat(fields, strips[:5], 5, 0, keep[:5])
