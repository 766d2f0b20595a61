"""Gradient sampling, ``MemoryOptions(gradient_interval=k)``, on every registered stepper (the conformance
suite's tiny problems, tests/test_conformance.py):

- through the protocol: the stepper built with ``image_interval=k`` keeps only the snapshots of the steps
  ``n % k == 0`` and its model gradient is k times the exact adjoint's imaging sum over those steps alone
  (the k = 1 stepper's, fed those snapshots and zeros elsewhere): float64, 1e-12;
- through PropTorch: chunk, Revolve, multistage (disk) checkpointing equal full storage at the same k bit
  for bit and fp32 boundary saving within 5e-6; the wavelet gradient equals the exact (k = 1) one bit for
  bit (it needs no snapshots); full storage stores ceil(nt / k) snapshots; estimate_memory equals the
  report; the sampled gradient stays close to the exact one on these well-sampled problems;
- the error of the sampled imaging sum is within a bound derived from the fields' bandwidth (their
  spectra above the data's Nyquist), and every back-end's sampled gradient differs from its exact one by
  exactly that error;
- bad values name the argument.
"""
from __future__ import annotations

import math

import pytest
import torch

from sweep.memory.protocol import imaged_steps
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from test_conformance import (DT, KEYS, _impl_available, assert_matches, case, errors, geometry, make_stepper,
                              models, run, solver, wavelet)
from test_planning import summary

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")


def test_imaged_steps_counts_the_multiples_of_k():
    for k in (1, 2, 3, 7):
        for n0 in range(0, 12):
            for n1 in range(n0, 20):
                assert imaged_steps(k, n0, n1) == sum(1 for n in range(n0, n1) if n % k == 0)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("key", KEYS)
def test_stepper_images_only_every_kth_step(key, k):
    nt = case(key)["nt"]
    ms = models(key)
    exact, sampled = make_stepper(key, ms=ms), make_stepper(key, ms=ms, image_interval=k)
    gen = torch.Generator().manual_seed(11)
    grad_record = torch.randn((2, nt, geometry(key)[1].shape[1]), generator=gen, dtype=torch.float64)

    all_kept = torch.zeros((nt, *exact.snapshot_shape), dtype=torch.float64)
    exact.advance(exact.initial(), 0, nt, keep=all_kept)
    some_kept = torch.zeros((math.ceil(nt / k), *exact.snapshot_shape), dtype=torch.float64)
    sampled.advance(sampled.initial(), 0, nt, keep=some_kept)
    assert torch.equal(some_kept, all_kept[::k])
    # The imaging sum over the imaged steps alone: their snapshots, zeros elsewhere, and (VRZ images the
    # wavelet at the sources too) the wavelet's samples of the other steps zero; the adjoint recursion does not
    # read the wavelet.
    all_kept[torch.arange(nt) % k != 0] = 0
    imaged_wavelet = exact.problem.wavelet.clone()
    imaged_wavelet[..., torch.arange(nt) % k != 0] = 0
    reference = make_stepper(key, ms=ms, wav=imaged_wavelet)

    grads = []
    for stepper, kept in ((reference, all_kept), (sampled, some_kept)):
        stepper.begin_adjoint(need_wavelet=True, need_model=True)
        stepper.adjoint(torch.zeros(stepper.state_shape, dtype=torch.float64), kept, 0, nt, grad_record)
        grads.append(stepper.end_adjoint())
    (wav_exact, model_exact), (wav_sampled, model_sampled) = grads
    assert torch.equal(wav_sampled, wav_exact)
    for g_sampled, g_exact in zip(model_sampled, model_exact):
        assert torch.allclose(g_sampled, k * g_exact, rtol=1e-12, atol=1e-12 * float(g_exact.abs().max()))


def sampled(memory: MemoryOptions, k: int) -> MemoryOptions:
    return MemoryOptions(memory.strategy, boundary=memory.boundary, ckpt=memory.ckpt, gradient_interval=k)


K = 3
FULL = MemoryOptions("full", gradient_interval=K)
STRATEGIES = {
    "chunk": (lambda d: MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=7), gradient_interval=K), None),
    "revolve": (lambda d: MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=3), gradient_interval=K), None),
    "multistage": (lambda d: MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=2, disk_count=3, disk_dir=d),
                                           gradient_interval=K), None),
    "boundary-fp32": (lambda d: MemoryOptions("boundary", boundary=BoundaryOptions(storage_dtype="fp32",
                                                                                   transfer_interval=4),
                                              gradient_interval=K), 5e-6),
    "boundary-segments": (lambda d: MemoryOptions("boundary", boundary=BoundaryOptions(
        storage_dtype="fp32", transfer_interval=4, skip_zero_strips=True), gradient_interval=K), 5e-6),
}


@pytest.mark.parametrize("name", list(STRATEGIES))
@pytest.mark.parametrize("key", KEYS)
def test_strategies_match_full_storage_at_the_same_interval(key, name, tmp_path):
    make, bound = STRATEGIES[name]
    memory = make(tmp_path)
    prop = solver(key, memory)
    src, rec = geometry(key)
    predicted = prop.estimate_memory(wavelet(key, torch.float32).requires_grad_(True), src, rec,
                                     [m.requires_grad_(True) for m in models(key, torch.float32)])
    (data, grads, wav), report = run(key, memory, prop=prop)
    (ref_data, ref_grads, ref_wav), _ = run(key, FULL)
    assert torch.equal(data, ref_data) and torch.equal(wav, ref_wav)
    for g, ref in zip(grads, ref_grads):
        assert_matches(g, ref, bound)
    if "segments" in name:
        assert predicted.stored_bytes >= report.stored_bytes
    else:
        assert summary(predicted) == summary(report)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", KEYS)
def test_full_storage_keeps_one_snapshot_in_k(key):
    nt = case(key)["nt"]
    (_, (exact_vp, *_), exact_wav), exact_report = run(key, MemoryOptions("full"))
    prop = solver(key, FULL)
    src, rec = geometry(key)
    predicted = prop.estimate_memory(wavelet(key, torch.float32), src, rec, models(key, torch.float32),
                                     gradient=True)
    (_, (vp, *_), wav), report = run(key, FULL, prop=prop)
    assert summary(predicted) == summary(report)
    assert any(f"images every {K}th" in note for note in report.notes)
    assert report.stored_bytes * nt == exact_report.stored_bytes * math.ceil(nt / K)
    assert torch.equal(wav, exact_wav)  # the wavelet gradient needs no snapshot: exact
    l2, _ = errors(vp, exact_vp)
    print(f"{key}: gradient sampling k={K}: velocity gradient relative L2 {l2:.3g} from the exact one")
    # These problems sample their 35 Hz Ricker 24 times a period, so imaging every 3rd step still samples the
    # forward x adjoint product finely: measured 1.7e-4 (2-D) and 5.2e-3 (3-D); the bound is 10x the larger.
    assert 0 < l2 < 0.05


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_interval_names_the_argument(bad):
    with pytest.raises(ValueError, match="gradient_interval"):
        MemoryOptions("full", gradient_interval=bad)


def _band_norms(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per series along axis 0: (its L2 norm, the L2 norm of its DTFT above 1/(2k) cycles per step), the band
    integral by Parseval on a 16x zero-padded FFT."""
    m = 16 * x.shape[0]
    energy = torch.fft.rfft(x, n=m, dim=0).abs() ** 2
    weight = torch.full((energy.shape[0],), 2.0 / m, dtype=x.dtype)
    weight[0] = weight[-1] = 1.0 / m  # m is even: DC and Nyquist once
    high = (torch.arange(energy.shape[0], dtype=x.dtype) / m > 0.5 / k).to(x.dtype)
    shape = (-1,) + (1,) * (x.dim() - 1)
    return (weight.view(shape) * energy).sum(0).sqrt(), (weight.view(shape) * high.view(shape) * energy).sum(0).sqrt()


@pytest.mark.parametrize("ndim", [2, 3])
def test_sampling_error_is_within_the_bound_of_the_fields_bandwidth(ndim):
    """The error of imaging every k-th step, derived: with g_n = a_n S_n (adjoint field times snapshot at a
    cell), k sum_{n % k = 0} g_n - sum_n g_n = sum_{j=1}^{k-1} G(j/k) (G the DTFT of g), and G at those
    frequencies takes, by Cauchy-Schwarz on the convolution of the two spectra, at most
    |A_high| |S| + |A| |S_high|, where _high is the part above 1/(2k) cycles per step: the data's Nyquist
    when k = r. Fields band-limited by the data (the wavelet and the residual resampled from it) have
    little there, so the sampled sum is nearly exact; only the records' ends leak.

    Checked per shot and cell on the sub-stepped conformance problem (r = k = 2, float64): the eager
    stepper's series give the error and its bound; the bound holds everywhere, and the sampled gradient
    of every registered stepper of the dimension differs from its exact one by exactly that error."""
    from sweep.propagator.acoustic_layout import U
    from sweep.propagator.registry import registered
    from sweep.resampling import upsample
    from test_substep import R, data_wavelet, sub_solver

    key = ("acoustic", ndim, "eager")
    nt, k = case(key)["nt"], R
    src, rec = geometry(key)
    (vp,), wav = models(key), upsample(data_wavelet(key), R)  # the internal wavelet
    with torch.no_grad():  # a residual of the data's band: two models' data, at the data's dt
        residual = (sub_solver(key)(data_wavelet(key), src, rec, [vp]) -
                    sub_solver(key)(data_wavelet(key), src, rec, models(key, torch.float64, 150.0)))[..., 0]
    grad_record = (upsample(residual.transpose(1, 2), R) / R).transpose(1, 2).contiguous()  # as PropTorch's

    stepper = make_stepper(key, ms=[vp], wav=wav)
    snapshots = torch.zeros((nt, *stepper.snapshot_shape), dtype=torch.float64)
    stepper.advance(stepper.initial(), 0, nt, keep=snapshots)
    stepper.begin_adjoint(need_wavelet=False, need_model=True)
    adj, adjoint_field = torch.zeros(stepper.state_shape, dtype=torch.float64), torch.zeros_like(snapshots)
    for n in range(nt - 1, -1, -1):  # a_n: what step n's imaging multiplies its snapshot by
        adjoint_field[n] = stepper.physical(adj[U])
        stepper.adjoint(adj, snapshots[n:n + 1], n, n + 1, grad_record)
    g = adjoint_field * snapshots  # (nt, nshots, *shape)
    error = k * g[::k].sum(0) - g.sum(0)
    (a_norm, a_high), (s_norm, s_high) = _band_norms(adjoint_field, k), _band_norms(snapshots, k)
    bound = (k - 1) * (a_high * s_norm + a_norm * s_high)
    assert bool((error.abs() <= 1.01 * bound + 1e-300).all())
    exact_sum, share = g.sum(0).sum(0), float((error.abs() / bound).max())
    print(f"{ndim}-D: sampling error {float(error.sum(0).norm() / exact_sum.norm()):.2g} relative L2, bound "
          f"{float(bound.sum(0).norm() / exact_sum.norm()):.2g}, at most {share:.2g} of it")

    chain = 2.0 * DT**2 * vp  # grad_vp = 2 dt^2 vp grad_w (DT: the internal step)
    impls = [i for (eq, nd, i) in registered() if eq == "acoustic" and nd == ndim and _impl_available(i) is None]
    for impl in impls:
        grads = []
        for interval in (1, k):
            s = make_stepper((*key[:2], impl), ms=[vp], wav=wav, image_interval=interval)
            keep = torch.zeros((math.ceil(nt / interval), *s.snapshot_shape), dtype=torch.float64)
            s.advance(s.initial(), 0, nt, keep=keep)
            s.begin_adjoint(need_wavelet=False, need_model=True)
            s.adjoint(torch.zeros(s.state_shape, dtype=torch.float64), keep, 0, nt, grad_record)
            grads.append(s.end_adjoint()[1][0])
        expected = chain * error.sum(0)
        assert torch.allclose(grads[1] - grads[0], expected, rtol=0, atol=1e-9 * float(grads[0].abs().max())), impl
