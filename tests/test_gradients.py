"""Gradients of the eager back-end against independent references: finite differences (gradcheck),
forward-mode linearisation (adjoint dot-product test) and full storage (for checkpointing)."""
import numpy as np
import pytest
import torch

from sweep.equations import Acoustic
from sweep.propagator.eager.acoustic import EagerAcousticStepper
from sweep.propagator.grid import PaddedGrid
from sweep.propagator.options import CkptOptions, MemoryOptions
from sweep.propagator.setup import build_problem
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker

NZ, NX, DH, DT, NT = 14, 16, 10.0, 0.001, 40
# Tiny, coarse grids keep the suite fast; gradient exactness does not depend on dispersion.
pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")
SOURCES = np.array([[5, 4], [10, 7]])
RECEIVERS = np.array([[[2, 2], [8, 10], [13, 3]], [[3, 11], [12, 12], [7, 1]]])


def model(dtype=torch.float64):
    z, x = torch.meshgrid(torch.arange(NZ, dtype=dtype), torch.arange(NX, dtype=dtype), indexing="ij")
    return 1800.0 + 15.0 * z + 20.0 * torch.sin(x / 3.0)


def wavelet(dtype=torch.float64):
    return ricker(torch.arange(NT, dtype=dtype) * DT - 0.012, 40.0)


def solver(memory=None, **kw):
    kw.setdefault("abcn", 4)
    return PropTorch(Acoustic(), (NZ, NX), DH, DT, NT, impl="eager", memory=memory or MemoryOptions("full"), **kw)


STRATEGIES = {
    "full": MemoryOptions("full"),
    "chunk7": MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=7)),
}


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("free_surface", [False, True])
def test_gradcheck_velocity_and_wavelet(strategy, free_surface):
    """float64 gradcheck of the velocity (cells away from the edges, which also set the fixed padding)
    and of the wavelet, through a random projection of the data so the Jacobian stays small."""
    prop = solver(STRATEGIES[strategy], free_surface=free_surface, space_order=4)
    base = model()
    projection = torch.randn(2, NT, 3, 1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def f(inner, wav):
        vp = base.clone()
        vp[1:-1, 1:-1] = inner
        return torch.einsum("stric,strik->k", prop(wav, SOURCES, RECEIVERS, [vp]).unsqueeze(-1), projection)

    inner = base[1:-1, 1:-1].clone().requires_grad_(True)
    wav = wavelet().requires_grad_(True)
    assert torch.autograd.gradcheck(f, (inner, wav), eps=1e-3, atol=1e-9, rtol=1e-5)


def born_forward(vp, dvp, problem):
    """J dvp by forward-mode AD through a functional loop over the eager step: independent of the
    driver, the schedules and reverse-mode autograd."""
    stepper = EagerAcousticStepper(problem, [vp])
    g = problem.grid

    def data(v):
        w = stepper.w.clone()
        w[g.physical] = v**2 * DT**2
        state, records = stepper.initial(), []
        for n in range(NT):
            state, rec, _ = stepper.step(state, w, problem.wavelet[:, :, n])
            records.append(rec)
        return torch.stack(records, dim=1)

    return torch.func.jvp(data, (vp,), (dvp,))[1]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("space_order", [2, 4, 6, 8])
def test_born_adjoint_dot_product(strategy, space_order):
    """<J dm, dd> = <dm, J^T dd> with J from forward-mode AD and J^T from the driver's backward."""
    gen = torch.Generator().manual_seed(space_order)
    vp = model()
    dvp = torch.randn(NZ, NX, dtype=torch.float64, generator=gen)
    dd = torch.randn(2, NT, 3, 1, dtype=torch.float64, generator=gen)
    prop = solver(STRATEGIES[strategy], space_order=space_order)
    grid = PaddedGrid((NZ, NX), 4, False)
    problem, _ = build_problem(grid=grid, dh=DH, dt=DT, nt=NT, space_order=space_order, max_stable_dt=1.0, velocity=vp,
                               wavelet=wavelet().numpy(), sources=SOURCES, receivers=RECEIVERS, pml_freq=None)
    j_dm = born_forward(vp, dvp, problem)
    v = vp.clone().requires_grad_(True)
    (prop(wavelet(), SOURCES, RECEIVERS, [v]) * dd).sum().backward()
    lhs = float((j_dm * dd[..., 0]).sum())
    rhs = float((dvp * v.grad).sum())
    assert abs(lhs) > 0
    assert abs(lhs - rhs) <= 1e-9 * max(abs(lhs), abs(rhs)), (lhs, rhs)


def test_wavelet_gradient_matches_finite_differences_float32():
    prop = solver()
    vp = model(torch.float32)
    wav = wavelet(torch.float32).expand(2, 2, NT).clone()
    weights = torch.randn(2, NT, 3, 1, generator=torch.Generator().manual_seed(3))
    w = wav.clone().requires_grad_(True)
    (prop(w, SOURCES[:, None, :].repeat(2, axis=1), RECEIVERS, [vp]) * weights).sum().backward()
    eps = 1.0  # the data are linear in the wavelet, so a large step has no truncation error
    for s, k, n in [(0, 0, 3), (1, 1, 10), (0, 1, 25), (1, 0, NT - 2)]:
        with torch.no_grad():
            plus, minus = wav.clone(), wav.clone()
            plus[s, k, n] += eps
            minus[s, k, n] -= eps
            srcs = SOURCES[:, None, :].repeat(2, axis=1)
            fd = ((prop(plus, srcs, RECEIVERS, [vp]) - prop(minus, srcs, RECEIVERS, [vp])) * weights).sum() / (2 * eps)
        assert abs(float(fd) - float(w.grad[s, k, n])) <= 1e-3 * abs(float(fd)) + 1e-9, (s, k, n)
    assert float(w.grad[:, :, NT - 1].abs().max()) == 0.0  # the last sample never reaches a recorded step


@pytest.mark.parametrize("chunks", [1, 7, 16, NT, 3 * NT])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunk_checkpointing_equals_full_storage(chunks, dtype):
    vp, wav = model(dtype), wavelet(dtype)
    weights = torch.randn(2, NT, 3, 1, dtype=dtype, generator=torch.Generator().manual_seed(1))
    grads = {}
    for name, memory in [("full", MemoryOptions("full")),
                         ("chunk", MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=chunks)))]:
        v, w = vp.clone().requires_grad_(True), wav.clone().requires_grad_(True)
        prop = solver(memory)
        data = prop(w, SOURCES, RECEIVERS, [v])
        (data * weights).sum().backward()
        grads[name] = (data.detach(), v.grad, w.grad)
        report = prop.memory_report()
        assert report.adjoint_steps == NT
        assert report.replayed_steps == (0 if name == "full" else NT)
    for full, chunk in zip(grads["full"], grads["chunk"]):
        assert torch.linalg.norm(chunk - full) <= 1e-6 * torch.linalg.norm(full)
        assert torch.allclose(chunk, full, rtol=0, atol=1e-6 * float(full.abs().max()))


def test_no_storage_without_grad():
    prop = solver()
    with torch.no_grad():
        prop(wavelet(), SOURCES, RECEIVERS, [model().requires_grad_(True)])
    assert prop.memory_report().buffers == [] and prop.memory_report().strategy == "none"
    prop(wavelet(), SOURCES, RECEIVERS, [model()])
    assert prop.memory_report().buffers == []
    prop(wavelet(), SOURCES, RECEIVERS, [model().requires_grad_(True)])
    assert prop.memory_report().total_bytes > 0


def test_padding_carries_no_gradient():
    """Perturbing an edge cell also moves the replicated padding, which by definition carries no gradient:
    so FD there differs from the gradient, while away from the edges it agrees."""
    prop = solver()
    vp = model()
    weights = torch.randn(2, NT, 3, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    v = vp.clone().requires_grad_(True)
    (prop(wavelet(), SOURCES, RECEIVERS, [v]) * weights).sum().backward()

    def fd(iz, ix, eps=1e-2):
        with torch.no_grad():
            out = []
            for sign in (1, -1):
                p = vp.clone()
                p[iz, ix] += sign * eps
                out.append(float((prop(wavelet(), SOURCES, RECEIVERS, [p]) * weights).sum()))
            return (out[0] - out[1]) / (2 * eps)

    inner = fd(6, 8)
    assert abs(inner - float(v.grad[6, 8])) <= 1e-6 * abs(inner)
    edge = fd(0, 8)
    assert abs(edge - float(v.grad[0, 8])) > 1e-3 * abs(edge)
