"""One conformance suite for every registered stepper (``sweep.propagator.registry.registered()``): each
(equation, ndim, impl) is built through the registry on a tiny problem of its dimension and checked
through the stepper protocol (:mod:`sweep.memory.protocol`) and through PropTorch:

(a) adjoint: <F(x, f), (y, g)> = <x, F^T y> + <f, grad_f> for a block of steps (state and wavelet in,
    state and receivers out; float64, 1e-12), and the model gradient that ``adjoint`` accumulates from the
    snapshots ``advance`` kept equals central differences of ``advance`` in each model (1e-7; measured
    1e-15 and 2e-9), perturbed away from the rings of cells its gradient holds fixed (FIXED_RINGS);
(b) ``retreat`` from the last rebuild fields and the strips reproduces the forward's snapshots and
    rebuild fields (float64 1e-12, float32 1e-5 of their peak; measured 2.2e-15 and 1.3e-6) and returns
    the fields to zero at step 0;
(c) one thread or two: data and gradients bit for bit;
(d) every memory strategy against full storage, through PropTorch with that impl and dimension:
    chunk, Revolve and multistage (disk) checkpointing bit for bit; boundary saving on device / cpu / disk
    (fp32 strips of a float32 model) within 5e-6 (relative L2 and max|dg| / max|g|); the lossy strip
    codecs within their bounds (relative L2; measured values and bounds at STRATEGIES); ``skip_zero_strips``
    bit for bit; ``estimate_memory`` equal to the measured ``memory_report()`` buffer for buffer (upper
    bounds where sizes depend on the data); strategy='auto' under a budget full storage does not fit.

Every model of the equation is checked (``[vp]``; ``[vp, z]`` for VRZ). A stepper registered later (a new
back-end, or a new dimension of an equation) is picked up
with no change here; a new equation needs its entry in EQUATIONS and SUBSPACES, a new dimension its entry
in CASES (test_every_stepper_is_covered fails until they have them).
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from sweep.equations import Acoustic, Acoustic3D, AcousticVRZ, AcousticVRZ3D
from sweep.propagator import threads
from sweep.propagator.grid import PaddedGrid
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from sweep.propagator.registry import registered, stepper_class
from sweep.propagator.setup import build_problem
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker
from test_planning import summary

# Tiny, coarse grids keep the suite fast; none of these checks depends on dispersion.
pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")

STEPPERS = registered()
EQUATIONS = {("acoustic", 2): Acoustic, ("acoustic", 3): Acoustic3D,
             ("acoustic_vrz", 2): AcousticVRZ, ("acoustic_vrz", 3): AcousticVRZ3D}


def _impl_available(impl: str) -> str | None:
    """Why ``impl`` cannot run here, or None."""
    if impl != "c":
        return None
    from sweep.propagator.c import library_available, load_error

    return None if library_available() else f"impl='c' not built: {load_error()}"


def _params(keys):
    out = []
    for key in keys:
        why = _impl_available(key[2])
        marks = [pytest.mark.skip(reason=why)] if why else []
        out.append(pytest.param(key, id="-".join(map(str, key)), marks=marks))
    return out


KEYS = _params(STEPPERS)

# Problems by dimension: shape (nz, [ny,] nx), absorbing width, steps, and two shots of two sources each
# (the second shot's pair shares a cell, to exercise accumulation) with receivers on edges and corners,
# where the stencil reaches the halo. Locations are [x, z] / [x, y, z].
DH, DT, F0, DELAY = 10.0, 0.0012, 35.0, 0.02
CASES = {
    2: dict(shape=(14, 17), abcn=4, nt=60,
            sources=[[[3, 0], [15, 6]], [[8, 9], [8, 9]]],
            receivers=[[[0, 0], [7, 3], [16, 11], [12, 13]], [[2, 1], [16, 0], [9, 12], [4, 7]]]),
    3: dict(shape=(10, 11, 12), abcn=3, nt=36,
            sources=[[[2, 3, 0], [10, 7, 5]], [[6, 5, 4], [6, 5, 4]]],
            receivers=[[[0, 0, 0], [11, 10, 9], [6, 2, 8], [3, 9, 1]],
                       [[11, 0, 4], [5, 5, 9], [0, 10, 2], [8, 3, 3]]]),
}


def case(key) -> dict:
    return CASES[key[1]]


def geometry(key, nshots: int = 2) -> tuple[np.ndarray, np.ndarray]:
    c = case(key)
    return np.array(c["sources"])[:nshots], np.array(c["receivers"])[:nshots]


def models(key, dtype=torch.float64, bump: float = 0.0) -> list[torch.Tensor]:
    """The equation's models: a smooth velocity varying along every axis (m/s), plus a Gaussian ``bump`` in
    the middle; for VRZ also the impedance (kg m^-2 s^-1) of a density (kg/m^3) varying along every axis
    (a bump adds 10% density)."""
    shape = case(key)["shape"]
    axes = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in shape], indexing="ij")
    z, x = axes[0], axes[-1]
    vp = 1800.0 + 15.0 * z + 40.0 * torch.sin(x / 3.0)
    if len(shape) == 3:
        vp = vp + 25.0 * torch.cos(axes[1] / 4.0)
    r2 = sum((a - (n - 1) / 2) ** 2 for a, n in zip(axes, shape))
    gauss = torch.exp(-r2 / 8.0)
    vp = vp + bump * gauss
    if key[0] == "acoustic":
        return [vp.to(dtype)]
    rho = 1600.0 + 40.0 * z + 150.0 * torch.cos(x / 2.5) + 150.0 * torch.sin(axes[1] / 2.0)
    return [vp.to(dtype), (vp * rho * (1 + 0.1 * bump / 150.0 * gauss)).to(dtype)]


def wavelet(key, dtype=torch.float64, nt: int | None = None) -> torch.Tensor:
    nt = nt or case(key)["nt"]
    t = torch.arange(nt, dtype=torch.float64) * DT
    return torch.stack([torch.stack([ricker(t - DELAY - 0.003 * (2 * s + k), F0) for k in range(2)])
                        for s in range(2)]).to(dtype)


def test_every_stepper_is_covered():
    """A registered stepper of an equation or dimension this suite cannot build fails here, by name."""
    assert STEPPERS, "no stepper registered"
    for eq, ndim, impl in STEPPERS:
        assert (eq, ndim) in EQUATIONS and eq in SUBSPACES and ndim in CASES, (
            f"stepper ({eq!r}, {ndim}, {impl!r}) has no conformance case: add its equation to EQUATIONS, "
            "SUBSPACES and its dimension to CASES")
    assert ("acoustic", 2, "eager") in STEPPERS and ("acoustic", 3, "eager") in STEPPERS


# -- the protocol ---------------------------------------------------------------------------------
def make_stepper(key, dtype=torch.float64, free_surface: bool = False, ms: list[torch.Tensor] | None = None,
                 wav: torch.Tensor | None = None, **options):
    """The registered stepper of ``key`` built as PropTorch builds it: ``cls(problem, models, **options)`` (the
    C-PML fixed by pml_freq and pml_vmax, so that only the model passed in varies between builds)."""
    c = case(key)
    grid = PaddedGrid(c["shape"], c["abcn"], free_surface)
    src, rec = geometry(key)
    ms = models(key, dtype) if ms is None else ms
    if wav is None:  # a random wavelet: every sample matters to the dot products
        wav = torch.randn(2, 2, c["nt"], dtype=dtype, generator=torch.Generator().manual_seed(7))
    problem, _ = build_problem(grid=grid, dh=DH, dt=DT, nt=c["nt"], space_order=4, max_stable_dt=1.0,
                               velocity=ms[0], wavelet=wav, sources=src, receivers=rec, pml_freq=F0,
                               pml_vmax=2200.0)
    return stepper_class(*key)(problem, ms, **options)


def acoustic_subspace(stepper) -> torch.Tensor:
    """0/1 of a state's shape: the acoustic state (acoustic_layout.py: u_prev, u, then psi and zeta of every
    axis in reversed axis order) with the C-PML auxiliaries of an axis zero outside that axis's absorbing
    layers, where no back-end need keep them (the C kernels do not: a = 0, b = 1 there and they stay zero
    from any reachable state). Dot-product tests draw their random states in this subspace."""
    p = stepper.problem
    grid = p.grid
    shape = grid.padded_shape
    ones = torch.ones(shape, dtype=torch.float64)
    layers = []
    for i, axis in reversed(list(enumerate(grid.axes))):
        a, b = p.pml[f"a{axis}"], p.pml[f"b{axis}"]
        inside = (~((a == 0) & (b == 1))).double()
        view = [1] * len(shape)
        view[i] = -1
        layers.append(inside.view(view).expand(shape))
    mask = torch.stack([ones, ones, *layers, *layers]).unsqueeze(1)
    return mask.expand(stepper.state_shape)


SUBSPACES = {"acoustic": acoustic_subspace, "acoustic_vrz": acoustic_subspace}


def subspace(key, stepper) -> torch.Tensor:
    return SUBSPACES[key[0]](stepper)


#: Rings of cells a finite-difference check keeps fixed, by equation: the outermost (it sets the fixed padding);
#: for VRZ the stencil radius (the buoyancy's pair coefficients that reach past the physical grid are fixed too).
FIXED_RINGS = {"acoustic": 1, "acoustic_vrz": 2}


def physical_perturbation(key, gen: torch.Generator) -> torch.Tensor:
    """Random model perturbation, zero on the fixed rings of every face (FIXED_RINGS)."""
    shape = case(key)["shape"]
    ring = FIXED_RINGS[key[0]]
    dv = torch.zeros(shape, dtype=torch.float64)
    inner = tuple(slice(ring, n - ring) for n in shape)
    dv[inner] = torch.randn(dv[inner].shape, dtype=torch.float64, generator=gen)
    return dv


def checked_adjoint_block(st, mask: torch.Tensor, gen: torch.Generator, n0: int = 5, n1: int = 11):
    """The dot-product test of the block of steps n0 -> n1 of the float64 stepper ``st``, from random states x, y
    in ``mask`` (drawn from ``gen`` in that order, then the data adjoint g): <F(x, f), (y, g)> = <x, F^T(y, g)> +
    <f, grad_f> to 1e-12, and wavelet samples outside the block get no gradient. Returns ``(forward,
    grad_models)``: ``forward(stepper)`` is <F(x, f), (y, g)> through another stepper of the same problem (for
    finite differences of the model gradients ``grad_models``, which ``st`` accumulated from its snapshots)."""
    p = st.problem
    x = torch.randn(st.state_shape, dtype=torch.float64, generator=gen) * mask
    y = torch.randn(st.state_shape, dtype=torch.float64, generator=gen) * mask
    g = torch.randn((p.nshots, p.nt, p.nrec), dtype=torch.float64, generator=gen)

    def forward(stepper, keep=None) -> float:
        state, record = x.clone(), torch.zeros_like(g)
        stepper.advance(state, n0, n1, record=record, keep=keep)
        return float((state * y).sum() + (record[:, n0:n1] * g[:, n0:n1]).sum())

    kept = torch.empty((n1 - n0, *st.snapshot_shape), dtype=torch.float64)
    lhs = forward(st, kept)
    st.begin_adjoint(need_wavelet=True, need_model=True)
    adj = y.clone()
    st.adjoint(adj, kept, n0, n1, g)
    grad_wavelet, grad_models = st.end_adjoint()
    rhs = float((x * adj).sum() + (p.wavelet * grad_wavelet).sum())
    assert abs(lhs) > 0
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs), (lhs, rhs)
    # Wavelet samples outside the block do not enter it.
    assert grad_wavelet[:, :, :n0].abs().max() == 0 and grad_wavelet[:, :, n1:].abs().max() == 0
    return forward, grad_models


@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("key", KEYS)
def test_adjoint_dot_product(key, free_surface):
    """A block of steps n0 -> n1 from a random state: <F(x, f), (y, g)> = <x, F^T(y, g)> + <f, grad_f>
    (F is linear in the state and the wavelet together), and <dv, grad_v> from the kept snapshots equals
    the central difference of <F_{v + h dv}(x, f), (y, g)> (a polynomial in h of degree 2 (n1 - n0)).
    With h = 0.05 m/s on ~2000 m/s both the truncation error (h^2) and the rounding (float64 eps times
    |<F, (y, g)>| / h, the objective being ~1e5 times its derivative here) are near 1e-9 relative
    (measured in 3-D: 6.7e-9 at h = 0.1, 1.8e-9 at 0.01, 2.7e-7 at 1e-4); tolerance 1e-7."""
    st = make_stepper(key, free_surface=free_surface)
    p = st.problem
    gen = torch.Generator().manual_seed(11)
    forward, grad_models = checked_adjoint_block(st, subspace(key, st), gen)
    dv = physical_perturbation(key, gen)

    # Each model in turn, by a step of the same relative size (0.05 m/s on vp).
    base = models(key)
    for i, grad in enumerate(grad_models):
        h = 0.05 * float(base[i].mean() / base[0].mean())

        def moved(sign: float) -> float:
            ms = [m + sign * h * dv if j == i else m for j, m in enumerate(base)]
            return forward(make_stepper(key, free_surface=free_surface, ms=ms, wav=p.wavelet.clone()))

        fd = (moved(1.0) - moved(-1.0)) / (2 * h)
        got = float((dv * grad).sum())
        assert abs(fd) > 0
        assert abs(got - fd) <= 1e-7 * abs(fd), (i, got, fd)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("key", KEYS)
def test_retreat_reproduces_the_forward(key, free_surface, dtype, tol):
    """Forward 0 -> nt keeping snapshots and strips (and the rebuild fields at step m); ``retreat`` from the
    last rebuild fields, in two blocks, gives back every snapshot and the fields at m and at 0 (zero)."""
    wav = wavelet(key, dtype)
    st = make_stepper(key, dtype, free_surface, ms=models(key, dtype), wav=wav)
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
    peak_u, peak_s = float(fields.abs().max()), float(kept.abs().max())
    assert peak_u > 0 and strips.abs().max() > 0  # the wavefield reached the strips

    rebuilt = torch.full_like(kept, float("nan"))
    st.retreat(fields, strips[m:], m, nt, rebuilt[m:])
    assert float((fields - at_m).abs().max()) <= tol * peak_u
    st.retreat(fields, strips[:m], 0, m, rebuilt[:m])
    assert float((rebuilt - kept).abs().max()) <= tol * peak_s
    assert float(fields.abs().max()) <= tol * peak_u


# -- through PropTorch ------------------------------------------------------------------------------
def solver(key, memory: MemoryOptions, nt: int | None = None, **kw) -> PropTorch:
    c = case(key)
    eq, ndim, impl = key
    return PropTorch(EQUATIONS[eq, ndim](), c["shape"], DH, DT, nt or c["nt"], abcn=c["abcn"], impl=impl,
                     memory=memory, pml_freq=F0, **kw)


_observed: dict = {}


def observed(key, dtype, nshots):
    """Data of the model with a bump (full storage, no gradient): the misfit's target."""
    k = (key, dtype, nshots)
    if k not in _observed:
        src, rec = geometry(key, nshots)
        with torch.no_grad():
            _observed[k] = solver(key, FULL)(wavelet(key, dtype)[:nshots], src, rec, models(key, dtype, 150.0))
    return _observed[k]


def run(key, memory: MemoryOptions, dtype=torch.float32, nshots: int = 2, prop: PropTorch | None = None):
    """(data, (grad of each model), grad wavelet) of 0.5 |d(m) - d(m + bump)|^2 (a band-limited adjoint source, as in an
    inversion), and the propagator's memory report."""
    prop = prop or solver(key, memory)
    src, rec = geometry(key, nshots)
    ms = [m.requires_grad_(True) for m in models(key, dtype)]
    wav = wavelet(key, dtype)[:nshots].clone().requires_grad_(True)
    data = prop(wav, src, rec, ms)
    (0.5 * (data - observed(key, dtype, nshots)).pow(2).sum()).backward()
    return (data.detach(), tuple(m.grad for m in ms), wav.grad), prop.memory_report()


_references: dict = {}


def reference(key, dtype=torch.float32, nshots: int = 2):
    """Full storage's (data, (grad of each model), grad wavelet), computed once per key."""
    k = (key, dtype, nshots)
    if k not in _references:
        _references[k] = run(key, FULL, dtype, nshots)[0]
    return _references[k]


def errors(g: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """(relative L2, max |dg| / max |g|)."""
    return float((g - ref).norm() / ref.norm()), float((g - ref).abs().max() / ref.abs().max())


def assert_matches(g: torch.Tensor, ref: torch.Tensor, bound: float | None) -> None:
    """``g`` equals ``ref`` bit for bit (``bound`` None) or within ``bound`` in relative L2 and pointwise."""
    if bound is None:
        assert torch.equal(g, ref)
    else:
        l2, pointwise = errors(g, ref)
        assert l2 < bound and pointwise < bound, (l2, pointwise)


def threaded_modules(key) -> list:
    """The modules of the stepper class, its bases and their packages: where a C back-end may keep
    MIN_CELLS_PER_THREAD (the fewest cells per thread, which keeps tiny grids on one thread)."""
    names = set()
    for cls in stepper_class(*key).__mro__:
        parts = cls.__module__.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return [sys.modules[n] for n in sorted(names) if n in sys.modules]


@pytest.mark.parametrize("nshots", [1, 2])
@pytest.mark.parametrize("key", KEYS)
def test_thread_count_does_not_change_results(key, nshots, monkeypatch):
    """One thread or two: data, model and wavelet gradients bit for bit (one shot: a C back-end cuts it
    into bands of rows; two: one shot per thread, whose gradients are then summed). The thread governors
    are off, so that a busy machine does not quietly run both on one thread."""
    for governor in (threads.GOVERNOR, threads.TORCH_GOVERNOR):
        monkeypatch.setattr(governor, "enabled", False)
    for module in threaded_modules(key):
        if hasattr(module, "MIN_CELLS_PER_THREAD"):
            monkeypatch.setattr(module, "MIN_CELLS_PER_THREAD", 0)  # let the tiny grid really use two threads
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, _ = run(key, FULL, nshots=nshots)
        torch.set_num_threads(2)
        two, _ = run(key, FULL, nshots=nshots)
    finally:
        torch.set_num_threads(before)
    (data1, grads1, wav1), (data2, grads2, wav2) = one, two
    for a, b in zip((data1, *grads1, wav1), (data2, *grads2, wav2)):
        assert torch.equal(a, b)


FULL = MemoryOptions("full")


def boundary(storage="device", storage_dtype=None, **kw) -> MemoryOptions:
    return MemoryOptions("boundary", boundary=BoundaryOptions(storage=storage, storage_dtype=storage_dtype,
                                                              transfer_interval=kw.pop("transfer_interval", 4), **kw))


# name -> (memory options (a function of the tmp dir), bounds on (relative L2, max|dg|/max|g|) of the velocity
# gradient against full storage (None: bit for bit; a None pointwise bound: not checked), whether the
# prediction is exact (sizes that do not depend on the data)).
#
# Measured on these problems (float32, two shots; 2-D c, 2-D eager, 3-D eager), relative L2 / pointwise:
#   fp32 strips (lossless: the rebuild's round-off)   5.6e-7 / 3.4e-7, 6.1e-7 / 6.8e-7, 6.0e-7 / 4.4e-7
#   fp16 (per 256 values, 2^-11 relative steps)       4.7e-5, 4.6e-5, 3.3e-5
#   bf16 (8-bit mantissa)                             4.2e-4, 4.2e-4, 3.6e-4
#   int8 (per 32 values, 1/254 of the block's peak)   9.0e-4, 9.0e-4, 6.4e-4
#   zfp, tolerance 1e-4                               2.9e-6, 3.1e-6, 2.7e-6
# Bounds: fp32 5e-6 (8x); fp16 1e-4 and bf16 1e-3 (about 2x: on these tiny grids 60-75% of the cells are
# strip cells, so quantised strips weigh more than on a real shot; tests/test_boundary.py measures 8.5e-5
# and 6.7e-4 on its 24 x 30 grid); int8 2.5e-3; zfp 2e-5 (test_zfp.py bounds tol / 5 + 1e-5).
STRATEGIES = {
    "chunk": (lambda d: MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=7)), None, True),
    "revolve": (lambda d: MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=3)), None, True),
    "multistage": (lambda d: MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=2, disk_count=3,
                                                                    disk_dir=d)), None, True),
    **{f"boundary-{s}-fp32": (lambda d, s=s: boundary(s, "fp32", disk_dir=d), (5e-6, 5e-6), True)
       for s in ("device", "cpu", "disk")},
    "boundary-fp16": (lambda d: boundary("device", "fp16"), (1e-4, None), True),
    "boundary-bf16": (lambda d: boundary("device", "bf16"), (1e-3, None), True),
    "boundary-int8": (lambda d: boundary("cpu", "int8"), (2.5e-3, None), True),
    "boundary-zfp": (lambda d: boundary("device", "zfp", zfp_tolerance=1e-4), (2e-5, None), False),
}


@pytest.mark.parametrize("name", list(STRATEGIES))
@pytest.mark.parametrize("key", KEYS)
def test_memory_strategy_against_full_storage(key, name, tmp_path):
    make, bound, exact_prediction = STRATEGIES[name]
    memory = make(tmp_path)
    prop = solver(key, memory)
    src, rec = geometry(key)
    predicted = prop.estimate_memory(wavelet(key, torch.float32).requires_grad_(True), src, rec,
                                     [m.requires_grad_(True) for m in models(key, torch.float32)])
    (data, grads, grad_wav), report = run(key, memory, prop=prop)
    ref_data, ref_grads, ref_wav = reference(key)
    assert torch.equal(data, ref_data)  # the forward pass is the same whatever is kept
    if bound is None:
        assert all(torch.equal(g, ref) for g, ref in zip(grads, ref_grads)) and torch.equal(grad_wav, ref_wav)
    else:
        for spec, g, ref in zip(EQUATIONS[key[:2]].MODEL_SPECS, grads, ref_grads):
            l2, pointwise = errors(g, ref)
            print(f"{key} {name}: {spec.name} gradient relative L2 {l2:.3g}, max|dg|/max|g| {pointwise:.3g}")
            assert l2 < bound[0], (spec.name, l2, bound)
            if bound[1] is not None:
                assert pointwise < bound[1], (spec.name, pointwise, bound)
            if "fp32" not in name:
                assert not torch.equal(g, ref)  # a lossy codec that changed nothing did not run
        # The wavelet gradient needs no forward values: every strategy gives it bit for bit.
        assert torch.equal(grad_wav, ref_wav)
    if exact_prediction:
        assert summary(predicted) == summary(report)
    else:
        assert predicted.stored_bytes >= report.stored_bytes > 0
    assert predicted.predicted and not predicted.files
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("key", KEYS)
def test_skip_zero_strips_is_lossless(key):
    """Precursor skipping: the same gradients as boundary saving without it, bit for bit, in fewer bytes;
    its stored bytes depend on the data, so the prediction is an upper bound."""
    (_, plain_grads, plain_wav), plain_report = run(key, boundary())
    memory = boundary(skip_zero_strips=True)
    prop = solver(key, memory)
    src, rec = geometry(key)
    predicted = prop.estimate_memory(wavelet(key, torch.float32), src, rec, models(key, torch.float32),
                                     gradient=True)
    (_, grads, wav), report = run(key, memory, prop=prop)
    assert all(torch.equal(g, plain) for g, plain in zip(grads, plain_grads)) and torch.equal(wav, plain_wav)
    assert report.stored_bytes < plain_report.stored_bytes
    assert predicted.stored_bytes >= report.stored_bytes


@pytest.mark.parametrize("key", KEYS)
def test_estimate_of_full_storage_equals_report(key):
    prop = solver(key, FULL)
    src, rec = geometry(key)
    predicted = prop.estimate_memory(wavelet(key, torch.float32).requires_grad_(True), src, rec,
                                     [m.requires_grad_(True) for m in models(key, torch.float32)])
    _, report = run(key, FULL, prop=prop)
    assert summary(predicted) == summary(report)


@pytest.mark.parametrize("key", KEYS)
def test_auto_under_a_budget(key, tmp_path):
    """strategy='auto' with a budget one byte below full storage's peak (and disk: on grids this small full
    storage can be the smallest in-memory strategy): another strategy, within the budget, with full
    storage's gradient (bit for bit for checkpointing; within the lossless rebuild's round-off for
    boundary saving); no file left."""
    src, rec = geometry(key)
    full_peak = solver(key, FULL).estimate_memory(wavelet(key, torch.float32), src, rec,
                                                  models(key, torch.float32), gradient=True).peak_memory_bytes
    memory = MemoryOptions("auto", budget=full_peak - 1, disk_budget="64MiB",
                           boundary=BoundaryOptions(disk_dir=tmp_path), ckpt=CkptOptions(disk_dir=tmp_path))
    (data, grads, wav), report = run(key, memory)
    ref_data, ref_grads, ref_wav = reference(key)
    assert report.strategy != "full" and report.peak_memory_bytes <= full_peak - 1
    assert any("strategy='auto' chose" in note for note in report.notes)
    assert torch.equal(data, ref_data) and torch.equal(wav, ref_wav)
    for g, ref in zip(grads, ref_grads):
        if report.strategy.startswith("ckpt"):
            assert torch.equal(g, ref)
        else:
            assert max(errors(g, ref)) < 5e-6
    assert os.listdir(tmp_path) == []
