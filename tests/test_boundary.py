"""Boundary saving x store x codec on both back-ends, pointwise against full storage, and the
bytes it reports.

The misfit is a least-squares one against data of a perturbed model (as in an inversion), so that the
adjoint field is band-limited like the data. Bounds (relative L2, max|dg| / max|g|) against full
storage, about twice the largest measured on this problem (both back-ends, with and without a free
surface, float32 and float64) given in brackets:

- lossless strips (None, fp32 on float32): 1e-5, 1e-5 [1.9e-6, 3.0e-6]: rebuild round-off (the
  reverse-time steps repeat the forward's operations; on the strip cells S comes from the second time
  difference);
- fp16 (scaled per 256 values; 2^-11 relative quantisation): 2e-4, 6e-4 [8.5e-5, 3.1e-4];
- bf16 (8-bit mantissa): 1.5e-3, 4e-3 [6.7e-4, 1.7e-3];
- int8 (symmetric, per 32 values; half a step is 1/254 of the block's peak): 4e-3, 8e-3 [2.0e-3, 3.5e-3].

Quantisation errors enter the gradient through the strips (boundary values of the rebuild and the
second time difference there); they are white in time, so a band-limited adjoint averages them out.
On this 24 x 30 grid a third of the cells are strip cells; on the notebook shot (3% strip cells) the
errors are 3-10x smaller (docs/memory.md).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from sweep.equations import Acoustic
from sweep.memory.codecs import FP16_BLOCK, INT8_BLOCK
from sweep.propagator.options import BoundaryOptions, CkptOptions, EagerOptions, MemoryOptions
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker


def _c_available() -> bool:
    from sweep.propagator.c import library_available

    return library_available()


IMPLS = ["eager", pytest.param("c", marks=pytest.mark.skipif(not _c_available(), reason="impl='c' not built"))]
NZ, NX, DH, DT, NT, ABCN = 24, 30, 10.0, 0.001, 140, 6
BOUNDS = {None: (1e-5, 1e-5), "fp32": (1e-5, 1e-5), "fp16": (2e-4, 6e-4), "bf16": (1.5e-3, 4e-3),
          "int8": (4e-3, 8e-3)}
pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")


def model(dtype=torch.float32, perturb: float = 0.0) -> torch.Tensor:
    z, x = torch.meshgrid(torch.arange(NZ, dtype=torch.float64), torch.arange(NX, dtype=torch.float64), indexing="ij")
    vp = 1800.0 + 20.0 * z + 60.0 * torch.sin(x / 4.0)
    vp = vp + perturb * torch.exp(-((z - 14) ** 2 + (x - 15) ** 2) / 12.0)
    return vp.to(dtype)


def geometry(nshots: int = 2):
    src = np.array([[[6 + 9 * s, 2], [24 - 5 * s, 1 + s]] for s in range(nshots)])  # (nshots, 2 sources, [x, z])
    rec = np.array([[[x, 3] for x in range(0, NX, 3)] + [[NX - 1, z] for z in range(4, NZ, 4)]] * nshots)
    return src, rec


def solver(impl: str, memory: MemoryOptions, free_surface: bool = False, **kw) -> PropTorch:
    return PropTorch(Acoustic(), (NZ, NX), DH, DT, kw.pop("nt", NT), abcn=ABCN, free_surface=free_surface,
                     impl=impl, memory=memory, **kw)


def wavelet(nt: int = NT, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(ricker(np.arange(nt) * DT - 0.03, 30.0)).to(dtype)


def gradients(prop: PropTorch, dtype=torch.float32, nshots: int = 2, wavelet_grad: bool = False):
    """(vp gradient, wavelet gradient or None) of 0.5 |d(vp) - d(vp + bump)|^2."""
    src, rec = geometry(nshots)
    with torch.no_grad():
        observed = prop(wavelet(prop.nt, dtype), src, rec, [model(dtype, 150.0)])
    vp = model(dtype).requires_grad_()
    wav = wavelet(prop.nt, dtype).requires_grad_(wavelet_grad)
    (0.5 * (prop(wav, src, rec, [vp]) - observed).pow(2).sum()).backward()
    return vp.grad, wav.grad


def errors(g: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """(relative L2, max |dg| / max |g|)."""
    return float((g - ref).norm() / ref.norm()), float((g - ref).abs().max() / ref.abs().max())


def boundary(storage="device", storage_dtype=None, **kw) -> MemoryOptions:
    return MemoryOptions("boundary", boundary=BoundaryOptions(storage=storage, storage_dtype=storage_dtype, **kw))


FULL = MemoryOptions("full")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("storage_dtype", [None, "fp32", "fp16", "bf16", "int8"])
def test_boundary_codecs_match_full_storage(impl, free_surface, storage_dtype):
    ref, _ = gradients(solver(impl, FULL, free_surface))
    got, _ = gradients(solver(impl, boundary(storage_dtype=storage_dtype, transfer_interval=5), free_surface))
    l2, pointwise = errors(got, ref)
    assert l2 < BOUNDS[storage_dtype][0] and pointwise < BOUNDS[storage_dtype][1], (l2, pointwise)
    if storage_dtype not in (None, "fp32"):  # the codec is really lossy: not the lossless result
        lossless, _ = gradients(solver(impl, boundary(transfer_interval=5), free_surface))
        assert not torch.equal(got, lossless)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("storage", ["gpu", "cpu", "disk"])
@pytest.mark.parametrize("storage_dtype", [None, "int8"])
def test_boundary_stores_agree_bit_for_bit(impl, storage, storage_dtype, tmp_path):
    """Where the strips live changes nothing in the result: every store returns the bytes it was given."""
    ref, _ = gradients(solver(impl, boundary("device", storage_dtype, transfer_interval=3)))
    got, _ = gradients(solver(impl, boundary(storage, storage_dtype, transfer_interval=3, disk_dir=tmp_path)))
    assert torch.equal(got, ref)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("impl", IMPLS)
def test_float64_storage_dtypes(impl):
    """A float64 model: the default (None) and 'fp64' keep strips in float64 (rebuild round-off only);
    'fp32' rounds them to float32 (about 1e-8 relative); lossy codecs behave as for float32."""
    ref, _ = gradients(solver(impl, FULL), torch.float64)
    native, _ = gradients(solver(impl, boundary()), torch.float64)
    fp64, _ = gradients(solver(impl, boundary(storage_dtype="fp64")), torch.float64)
    fp32, _ = gradients(solver(impl, boundary(storage_dtype="fp32")), torch.float64)
    fp16, _ = gradients(solver(impl, boundary(storage_dtype="fp16")), torch.float64)
    assert torch.equal(native, fp64)
    assert max(errors(native, ref)) < 1e-12
    assert 1e-12 < max(errors(fp32, ref)) < 1e-6
    assert all(e < b for e, b in zip(errors(fp16, ref), BOUNDS["fp16"]))


@pytest.mark.parametrize("impl", IMPLS)
def test_lossless_strategies_bit_identical(impl, tmp_path):
    """Checkpointing replays the same kernels: chunk, Revolve and multistage give the full-storage
    gradients bit for bit; the wavelet gradient needs no forward values, so every strategy, boundary
    saving with a lossy codec included, gives it bit for bit."""
    ref_vp, ref_wav = gradients(solver(impl, FULL), wavelet_grad=True)
    for memory in (MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=17, storage="disk", disk_dir=tmp_path)),
                   MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=5)),
                   MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=2, storage="cpu", disk_count=3,
                                                          disk_dir=tmp_path))):
        vp_grad, wav_grad = gradients(solver(impl, memory), wavelet_grad=True)
        assert torch.equal(vp_grad, ref_vp), memory
        assert torch.equal(wav_grad, ref_wav), memory
    _, wav_grad = gradients(solver(impl, boundary(storage_dtype="int8")), wavelet_grad=True)
    assert torch.equal(wav_grad, ref_wav)
    assert os.listdir(tmp_path) == []


def strip_cells(free_surface: bool, r: int = 2) -> int:
    top = 0 if free_surface else r
    return NZ * NX - (NZ - top - r) * (NX - 2 * r)


@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("nshots", [1, 3])
@pytest.mark.parametrize("storage_dtype, bytes_per_step", [
    (None, lambda n: 4 * n), ("fp16", lambda n: -(-n // FP16_BLOCK) * (2 * FP16_BLOCK + 4)),
    ("bf16", lambda n: 2 * n), ("int8", lambda n: -(-n // INT8_BLOCK) * (INT8_BLOCK + 4))])
def test_stored_bytes_formula(free_surface, nshots, storage_dtype, bytes_per_step):
    """Stored bytes = nt * nshots * (encoded strip of ``cells`` values) + the two float32 fields, with
    cells = nz*nx - (nz - r*top - r*bottom) * (nx - r*left - r*right)."""
    prop = solver("eager", boundary(storage_dtype=storage_dtype), free_surface)
    gradients(prop, nshots=nshots)
    rep = prop.memory_report()
    cells = strip_cells(free_surface)
    assert rep.stored_bytes == NT * nshots * bytes_per_step(cells) + 2 * nshots * NZ * NX * 4
    assert (rep.forward_steps, rep.replayed_steps, rep.rebuilt_steps, rep.adjoint_steps) == (NT, 0, NT, NT)
    assert rep.bytes_by_location("stored") == {"device": rep.stored_bytes}


def test_notebook_strip_cells():
    """The issue's count for the notebook shot (141 x 681, order 4): 3,272 cells, 1,918 with a free surface."""
    from sweep.propagator.grid import PaddedGrid

    assert PaddedGrid((141, 681), 20, False).strip_cells(2).size == 3272
    assert PaddedGrid((141, 681), 20, True).strip_cells(2).size == 1918
    assert PaddedGrid((141, 681), 0, False).strip_cells(2).size == 0  # no absorbing layer: nothing to keep


@pytest.mark.parametrize("impl", IMPLS)
def test_use_compile_boundary(impl):
    if impl == "c":
        pytest.skip("use_compile is an eager option")
    ref, _ = gradients(solver("eager", FULL))
    got, _ = gradients(solver("eager", boundary(), eager_options=EagerOptions(use_compile=True)))
    assert all(e < b for e, b in zip(errors(got, ref), BOUNDS[None]))


def test_rebuilt_wavefield_matches_forward():
    """Eager reverse-time rebuild, stepper level: snapshots rebuilt from the strips and the last fields
    agree with the forward's to round-off (measured 2.4e-6 of max|S| in float32, 5e-15 in float64), the
    interior of the first rebuilt step bit for bit, and the fields return to zero at step 0."""
    from sweep.propagator.eager.acoustic import EagerAcousticStepper
    from sweep.propagator.setup import build_problem

    src, rec = geometry()
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-13)):
        prop = solver("eager", FULL)
        problem, _ = build_problem(grid=prop.grid, dh=DH, dt=DT, nt=NT, space_order=4, max_stable_dt=1.0,
                                   velocity=model(dtype), wavelet=wavelet(dtype=dtype), sources=src, receivers=rec,
                                   pml_freq=None)
        st = EagerAcousticStepper(problem, [model(dtype)])
        state = st.initial()
        kept = torch.empty((NT, *st.snapshot_shape), dtype=dtype)
        strips = torch.empty((NT, *st.strip_shape), dtype=dtype)
        st.advance(state, 0, NT, keep=kept, strips=strips)
        fields = torch.empty(st.rebuild_shape, dtype=dtype)
        st.save_fields(state, fields)
        peak_u = float(fields.abs().max())
        rebuilt = torch.empty_like(kept)
        st.retreat(fields, strips[NT - 7:], NT - 7, NT, rebuilt[NT - 7:])
        st.retreat(fields, strips[:NT - 7], 0, NT - 7, rebuilt[:NT - 7])
        interior = torch.ones(NZ * NX, dtype=torch.bool)
        interior[st.strip_cells] = False
        last = (rebuilt[-1].reshape(2, -1)[:, interior], kept[-1].reshape(2, -1)[:, interior])
        assert torch.equal(*last)
        assert float((rebuilt - kept).abs().max() / kept.abs().max()) < tol
        assert float(fields.abs().max()) < tol * peak_u
