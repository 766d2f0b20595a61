"""Gradient sampling, ``MemoryOptions(gradient_interval=k)``, on every registered stepper (the conformance
suite's tiny problems, tests/test_conformance.py):

- through the protocol: the stepper built with ``image_interval=k`` keeps only the snapshots of the steps
  ``n % k == 0`` and its model gradient is k times the exact adjoint's imaging sum over those steps alone
  (the k = 1 stepper's, fed those snapshots and zeros elsewhere): float64, 1e-12;
- through PropTorch: chunk, Revolve, multistage (disk) checkpointing equal full storage at the same k bit
  for bit and fp32 boundary saving within 5e-6; the wavelet gradient equals the exact (k = 1) one bit for
  bit (it needs no snapshots); full storage stores ceil(nt / k) snapshots; estimate_memory equals the
  report; the sampled gradient stays close to the exact one on these well-sampled problems;
- bad values name the argument.
"""
from __future__ import annotations

import math

import pytest
import torch

from sweep.memory.protocol import imaged_steps
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from test_conformance import KEYS, case, errors, geometry, make_stepper, model, run, solver, wavelet
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
    vp = model(key)
    exact, sampled = make_stepper(key, vp=vp), make_stepper(key, vp=vp, image_interval=k)
    gen = torch.Generator().manual_seed(11)
    grad_record = torch.randn((2, nt, geometry(key)[1].shape[1]), generator=gen, dtype=torch.float64)

    all_kept = torch.zeros((nt, *exact.snapshot_shape), dtype=torch.float64)
    exact.advance(exact.initial(), 0, nt, keep=all_kept)
    some_kept = torch.zeros((math.ceil(nt / k), *exact.snapshot_shape), dtype=torch.float64)
    sampled.advance(sampled.initial(), 0, nt, keep=some_kept)
    assert torch.equal(some_kept, all_kept[::k])
    all_kept[torch.arange(nt) % k != 0] = 0  # the imaging sum over the imaged steps alone

    grads = []
    for stepper, kept in ((exact, all_kept), (sampled, some_kept)):
        stepper.begin_adjoint(need_wavelet=True, need_model=True)
        stepper.adjoint(torch.zeros(stepper.state_shape, dtype=torch.float64), kept, 0, nt, grad_record)
        grads.append(stepper.end_adjoint())
    (wav_exact, (vp_exact,)), (wav_sampled, (vp_sampled,)) = grads
    assert torch.equal(wav_sampled, wav_exact)
    assert torch.allclose(vp_sampled, k * vp_exact, rtol=1e-12, atol=1e-12 * float(vp_exact.abs().max()))


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
                                     [model(key, torch.float32).requires_grad_(True)])
    (data, vp, wav), report = run(key, memory, prop=prop)
    (ref_data, ref_vp, ref_wav), _ = run(key, FULL)
    assert torch.equal(data, ref_data) and torch.equal(wav, ref_wav)
    if bound is None:
        assert torch.equal(vp, ref_vp)
    else:
        l2, pointwise = errors(vp, ref_vp)
        assert l2 < bound and pointwise < bound, (l2, pointwise)
    if "segments" in name:
        assert predicted.stored_bytes >= report.stored_bytes
    else:
        assert summary(predicted) == summary(report)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", KEYS)
def test_full_storage_keeps_one_snapshot_in_k(key):
    nt = case(key)["nt"]
    (_, exact_vp, exact_wav), exact_report = run(key, MemoryOptions("full"))
    prop = solver(key, FULL)
    src, rec = geometry(key)
    predicted = prop.estimate_memory(wavelet(key, torch.float32), src, rec, [model(key, torch.float32)],
                                     gradient=True)
    (_, vp, wav), report = run(key, FULL, prop=prop)
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
