"""Time sub-stepping, ``PropTorch(..., substep=...)``, on every registered stepper (the conformance suite's
tiny problems, tests/test_conformance.py): the wavelet and the data at the data's ``dt``, ``r`` internal
steps per sample.

- the sub-stepped call is the run at the internal dt on the upsampled wavelet, its data downsampled: bit
  for bit (the resampling happens once, outside the memory strategies);
- at the same r, chunk, Revolve and multistage checkpointing equal full storage bit for bit and fp32
  boundary saving is within 5e-6 (relative L2 and pointwise);
- gradients through the resampling: the wavelet-to-data map's dot product (float64, 1e-12) and central
  differences of the misfit in the velocity (outer ring untouched, pml_vmax given) and the wavelet;
- r is fixed once ('auto' from pml_vmax or the first call) and a model needing more raises; an unstable
  dt without sub-stepping names the option; bad values and an aliased wavelet are errors naming the
  argument; the report says r and counts internal steps, and estimate_memory predicts it.
"""
from __future__ import annotations

import pytest
import torch

from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from sweep.propagator.torch import PropTorch
from sweep.resampling import downsample, upsample
from sweep.signal import ricker
from test_conformance import DH, DT, EQUATIONS, F0, KEYS, assert_matches, case, geometry, models, solver
from test_planning import summary

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")

R = 2  # internal steps per data sample: data at 2 DT, steps at DT (the conformance suite's)
FULL = MemoryOptions("full")


def data_nt(key) -> int:
    return case(key)["nt"] // R


def data_wavelet(key, dtype=torch.float64) -> torch.Tensor:
    """The conformance suite's two shots of two delayed Rickers, sampled at the data's dt = R DT."""
    t = torch.arange(data_nt(key), dtype=torch.float64) * DT * R
    return torch.stack([torch.stack([ricker(t - 0.02 - 0.003 * (2 * s + k), F0) for k in range(2)])
                        for s in range(2)]).to(dtype)


def sub_solver(key, memory=FULL, substep=R, dt=DT * R, **kw) -> PropTorch:
    c = case(key)
    eq, ndim, impl = key
    return PropTorch(EQUATIONS[eq, ndim](), c["shape"], DH, dt, data_nt(key), abcn=c["abcn"], impl=impl,
                     memory=memory, pml_freq=F0, substep=substep, **kw)


def misfit_run(key, memory, dtype=torch.float32):
    """(data, (grad of each model), grad wavelet) of 0.5 |d(m) - d(m + bump)|^2 with sub-stepping, and the
    report."""
    src, rec = geometry(key)
    with torch.no_grad():
        target = sub_solver(key)(data_wavelet(key, dtype), src, rec, models(key, dtype, 150.0))
    prop = sub_solver(key, memory)
    ms = [m.requires_grad_(True) for m in models(key, dtype)]
    wav = data_wavelet(key, dtype).requires_grad_(True)
    data = prop(wav, src, rec, ms)
    (0.5 * (data - target).pow(2).sum()).backward()
    return (data.detach(), tuple(m.grad for m in ms), wav.grad), prop.memory_report()


@pytest.mark.parametrize("key", KEYS)
def test_the_call_is_the_internal_run_resampled(key):
    src, rec = geometry(key)
    wav, ms = data_wavelet(key, torch.float32), models(key, torch.float32)
    with torch.no_grad():
        got = sub_solver(key)(wav, src, rec, ms)
        internal = solver(key, FULL)(upsample(wav, R), src, rec, ms)  # steps of DT, nt = R * data nt
    expected = downsample(internal[..., 0].transpose(1, 2), R).transpose(1, 2)
    assert got.shape == (2, data_nt(key), rec.shape[1], 1)
    assert torch.equal(got[..., 0], expected)


STRATEGIES = {
    "chunk": (MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=7)), None),
    "revolve": (MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=3)), None),
    "boundary-fp32": (MemoryOptions("boundary", boundary=BoundaryOptions(storage_dtype="fp32")), 5e-6),
}


@pytest.mark.parametrize("name", list(STRATEGIES))
@pytest.mark.parametrize("key", KEYS)
def test_strategies_match_full_storage_at_the_same_ratio(key, name):
    memory, bound = STRATEGIES[name]
    (data, grads, wav), report = misfit_run(key, memory)
    (ref_data, ref_grads, ref_wav), ref_report = misfit_run(key, FULL)
    assert report.forward_steps == ref_report.forward_steps == case(key)["nt"]  # internal steps
    assert torch.equal(data, ref_data) and torch.equal(wav, ref_wav)
    for g, ref in zip(grads, ref_grads):
        assert_matches(g, ref, bound)


def test_multistage_on_disk_matches_full_storage(tmp_path):
    key = KEYS[0].values[0]
    memory = MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=2, disk_count=3, disk_dir=tmp_path))
    (data, grads, wav), (ref_data, ref_grads, ref_wav) = misfit_run(key, memory)[0], misfit_run(key, FULL)[0]
    assert all(torch.equal(a, b) for a, b in zip((data, *grads, wav), (ref_data, *ref_grads, ref_wav)))


@pytest.mark.parametrize("key", KEYS)
def test_wavelet_to_data_dot_product(key):
    """<J f, d> = <f, J^T d> for the linear map wavelet -> data through upsampling, propagation and
    downsampling (float64; pml_freq fixes the layer, so the map is linear)."""
    src, rec = geometry(key)
    gen = torch.Generator().manual_seed(3)
    t = torch.arange(data_nt(key), dtype=torch.float64) * DT * R
    delays = 0.015 + 0.01 * torch.rand(2, 2, 3, 1, generator=gen, dtype=torch.float64)
    amplitudes = torch.randn(2, 2, 3, 1, generator=gen, dtype=torch.float64)
    f = (amplitudes * ricker(t - delays, F0)).sum(2).requires_grad_(True)  # random, yet band-limited
    data = sub_solver(key)(f, src, rec, models(key))
    d = torch.randn(data.shape, generator=gen, dtype=torch.float64)
    (data * d).sum().backward()
    lhs, rhs = float((data.detach() * d).sum()), float((f.detach() * f.grad).sum())
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), abs(rhs)), (lhs, rhs)


@pytest.mark.parametrize("key", [k for k in KEYS if k.values[0][1] == 2])
def test_gradients_pass_finite_differences(key):
    """Central differences of the misfit (float64) at an interior cell of the velocity and at one wavelet
    sample."""
    src, rec = geometry(key)
    prop = sub_solver(key, pml_vmax=2400.0)
    with torch.no_grad():
        target = prop(data_wavelet(key), src, rec, models(key, torch.float64, 150.0))
    others = models(key)[1:]  # held fixed

    def misfit(vp, wav):
        return 0.5 * (prop(wav, src, rec, [vp, *others]) - target).pow(2).sum()

    vp, wav = models(key)[0].requires_grad_(True), data_wavelet(key).requires_grad_(True)
    misfit(vp, wav).backward()
    cell, sample, h = (5, 8), (1, 0, 9), 1e-3
    for tensor, where, grad in ((vp, cell, vp.grad), (wav, sample, wav.grad)):
        plus, minus = tensor.detach().clone(), tensor.detach().clone()
        plus[where] += h
        minus[where] -= h
        args = lambda t: (t, wav.detach()) if tensor is vp else (vp.detach(), t)  # noqa: E731
        with torch.no_grad():
            fd = float(misfit(*args(plus)) - misfit(*args(minus))) / (2 * h)
        assert abs(fd - float(grad[where])) <= 1e-6 * abs(fd) + 1e-14, (where, fd, float(grad[where]))


def test_auto_fixes_the_ratio_once():
    key = KEYS[0].values[0]
    src, rec = geometry(key)
    vp = models(key)[0]
    limit = PropTorch(EQUATIONS["acoustic", 2](), case(key)["shape"], DH, DT, 4).max_stable_dt(float(vp.max()))
    dt = 1.5 * limit  # needs r = 2
    prop = sub_solver(key, substep="auto", dt=dt)
    assert prop.step_ratio is None
    with torch.no_grad():
        prop(data_wavelet(key), src, rec, [vp])
    assert prop.step_ratio == 2 and any("2 internal steps" in n for n in prop.memory_report().notes)
    with torch.no_grad():
        prop(data_wavelet(key), src, rec, [vp * 1.2])  # dt / 2 still stable: the same r
        with pytest.raises(ValueError, match=r"needs at least 4 internal steps.*substep=4"):
            prop(data_wavelet(key), src, rec, [vp * 2.5])
    fixed = sub_solver(key, substep="auto", dt=dt, pml_vmax=2.5 * float(vp.max()))
    assert fixed.step_ratio == 4  # from pml_vmax, before any call


def test_unstable_dt_names_the_option():
    key = KEYS[0].values[0]
    src, rec = geometry(key)
    vp = models(key)[0]
    dt = 1.5 * PropTorch(EQUATIONS["acoustic", 2](), case(key)["shape"], DH, DT, 4).max_stable_dt(float(vp.max()))
    with pytest.raises(ValueError, match=r"is unstable.*substep='auto'.*dt/2"):
        sub_solver(key, substep=None, dt=dt)(data_wavelet(key), src, rec, [vp])
    with pytest.raises(ValueError, match=r"needs at least 2 internal steps.*substep=2"):
        sub_solver(key, substep=1, dt=dt)(data_wavelet(key), src, rec, [vp])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "fast", "2"])
def test_bad_substep_names_the_argument(bad):
    key = KEYS[0].values[0]
    with pytest.raises(ValueError, match="substep must be"):
        sub_solver(key, substep=bad)


def test_aliased_wavelet_is_an_error():
    """White noise at the data rate has as much energy at Nyquist as anywhere: upsampling it is not
    meaningful, and the call says which argument."""
    key = KEYS[0].values[0]
    src, rec = geometry(key)
    noise = torch.randn(2, 2, data_nt(key), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="wavelet"):
        sub_solver(key)(noise, src, rec, models(key))


@pytest.mark.parametrize("key", KEYS)
def test_estimate_memory_predicts_the_sub_stepped_call(key):
    src, rec = geometry(key)
    memory = MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=7))
    prop = sub_solver(key, memory)
    ms = [m.requires_grad_(True) for m in models(key, torch.float32)]
    wav = data_wavelet(key, torch.float32).requires_grad_(True)
    predicted = prop.estimate_memory(wav, src, rec, ms)
    prop(wav, src, rec, ms).sum().backward()
    assert summary(predicted) == summary(prop.memory_report())
    assert any(f"{R} internal steps" in n for n in predicted.notes)
