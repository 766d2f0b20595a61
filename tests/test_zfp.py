"""ZFP compression of boundary strips and chunk checkpoints: gradient error against full storage on
both back-ends, sizes (fixed rate exact, fixed accuracy under its bound), every store, no files left.

Bounds on this 24 x 30 problem (test_boundary's misfit): with a relative tolerance ``tol`` the
gradient's relative L2 error and max|dg| / max|g| against full storage are below ``tol / 5 + 1e-5``
(measured on both back-ends: 7.1e-4 / 8.6e-4 at 1e-2, 8.4e-5 / 1.3e-4 at 1e-3, 8.4e-6 / 1.1e-5 at
1e-4); fixed rate 8 bits/value: below 2e-3 (measured 7.5e-4 / 9.8e-4). Lossy checkpoints (tol 1e-4,
chunks of 20): below 1e-3 (measured 2.1e-4 / 2.7e-4): a replay from a perturbed state amplifies the
perturbation more than a perturbed strip does.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from sweep.memory.codecs import ZFP, zfp_max_stream_bytes
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from test_boundary import FULL, IMPLS, NT, boundary, geometry, gradients, model, solver, wavelet

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")


def errors(g: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    return float((g - ref).norm() / ref.norm()), float((g - ref).abs().max() / ref.abs().max())


@pytest.fixture(scope="module")
def reference():
    return {impl: gradients(solver(impl, FULL))[0] for impl in ("eager", "c") if impl == "eager" or _c()}


def _c() -> bool:
    from sweep.propagator.c import library_available

    return library_available()


@pytest.mark.parametrize("impl", IMPLS)
def test_strip_error_bounded_and_monotone_in_tolerance(impl, reference):
    errs = []
    for tol in (1e-2, 1e-3, 1e-4):
        errs.append(errors(gradients(solver(impl, boundary("device", "zfp", zfp_tolerance=tol)))[0], reference[impl]))
        assert max(errs[-1]) < tol / 5 + 1e-5, (tol, errs[-1])
    assert errs[0][0] > errs[1][0] > errs[2][0] and errs[0][1] > errs[1][1] > errs[2][1]
    rate = errors(gradients(solver(impl, boundary("cpu", "zfp", zfp_rate=8)))[0], reference[impl])
    assert max(rate) < 2e-3


def test_codec_sizes_and_accuracy():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for shape in [(8, 6), (4, 1362), (7, 13), (3, 5, 9), (33,)]:
            noise = rng.standard_normal(shape).astype(dtype)  # incompressible: the worst case for the bound
            for x in (noise, noise * 1e-37, np.zeros(shape, dtype), np.full(shape, 3.0, dtype)):
                for tol in (1e-2, 1e-6):
                    z = ZFP(tolerance=tol)
                    blob = z.compress([x, x])
                    assert len(blob) <= z.max_bytes([shape, shape], dtype) == 2 * (8 + zfp_max_stream_bytes(shape, dtype))
                    for y in z.decompress(blob, 2):  # relative to the array's peak, whatever its scale
                        assert y.dtype == x.dtype and np.abs(y - x).max() <= tol * np.abs(x).max()
                for rate in (8, 16):
                    z = ZFP(rate=rate)
                    assert len(z.compress([x])) == z.max_bytes([shape], dtype)  # data-independent, exact


@pytest.mark.parametrize("impl", IMPLS)
def test_fixed_rate_bytes_exact_and_fixed_accuracy_under_bound(impl):
    src, rec = geometry()
    for memory in (boundary("device", "zfp", zfp_rate=12), boundary("disk", "zfp", zfp_tolerance=1e-3),
                   MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=30, storage_dtype="zfp", zfp_rate=10)),
                   MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=30, storage="cpu", storage_dtype="zfp"))):
        prop = solver(impl, memory)
        vp = model().requires_grad_()
        predicted = prop.estimate_memory(wavelet(), src, rec, [vp])
        prop(wavelet(), src, rec, [vp]).pow(2).sum().backward()
        rep = prop.memory_report()
        zfp = [b for b in rep.buffers if b.dtype == "uint8"]
        assert zfp and all(b.role == "stored" for b in zfp)
        fixed_rate = (memory.boundary.zfp_rate if memory.strategy == "boundary" else memory.ckpt.zfp_rate) is not None
        if fixed_rate:
            assert rep.stored_bytes == predicted.stored_bytes
            assert rep.peak_bytes == predicted.peak_bytes
        else:
            assert rep.stored_bytes < predicted.stored_bytes
            assert all(rep.peak_bytes[k] <= predicted.peak_bytes[k] for k in rep.peak_bytes)
        if memory.strategy == "boundary" and fixed_rate:  # by hand: per edge and ring, one record per shot
            r, z = 2, ZFP(rate=12)  # two shots; rings of 8 steps; (8, r * L) per shot and edge
            lengths = (30, 30, 24 - 2 * r, 24 - 2 * r)  # top, bottom, left, right
            expected = sum(-(-NT // 8) * z.max_bytes([(8, r * L)] * 2, np.float32) for L in lengths)
            assert sum(b.nbytes for b in zfp) == expected


@pytest.mark.parametrize("storage", ["gpu", "cpu", "disk"])
def test_every_store_same_gradient_and_no_files(storage, tmp_path, reference):
    memory = boundary(storage, "zfp", zfp_tolerance=1e-3, disk_dir=tmp_path)
    prop = solver("eager", memory)
    src, rec = geometry()
    vp = model().requires_grad_()
    data = prop(wavelet(), src, rec, [vp])
    rep = prop.memory_report()
    zfp = [b for b in rep.buffers if b.name.startswith("strips.")]
    assert {b.location for b in zfp} == {"device" if storage == "gpu" else "host" if storage == "cpu" else "disk"}
    assert rep.held_bytes[zfp[0].location] >= sum(b.nbytes for b in zfp)
    if storage == "disk":
        for b in zfp:  # the report is what is on disk, byte for byte
            assert os.path.getsize(b.path) == b.nbytes
        assert rep.peak_bytes["disk"] >= sum(b.nbytes for b in zfp)
    data.pow(2).sum().backward()
    assert os.listdir(tmp_path) == []
    assert all(v == 0 for v in rep.held_bytes.values())
    g_device = gradients(solver("eager", boundary("gpu", "zfp", zfp_tolerance=1e-3)))[0]
    g = gradients(solver("eager", memory))[0]
    assert torch.equal(g, g_device)  # the same bytes whatever the store
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("memory", [boundary("disk", "zfp", zfp_tolerance=1e-3),
                                    MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=20, storage="disk",
                                                                           storage_dtype="zfp"))],
                         ids=["strips", "checkpoints"])
def test_no_files_after_exception_mid_run(memory, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = ZFP.compress

    def failing(self, arrays):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return original(self, arrays)

    monkeypatch.setattr(ZFP, "compress", failing)
    key = "boundary" if memory.strategy == "boundary" else "ckpt"
    opts = getattr(memory, key)
    memory = MemoryOptions(memory.strategy, **{key: type(opts)(**{**opts.__dict__, "disk_dir": tmp_path})})
    src, rec = geometry()
    with pytest.raises(RuntimeError, match="boom"):
        solver("eager", memory)(wavelet(), src, rec, [model().requires_grad_()])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("impl", IMPLS)
def test_lossy_checkpoints_bounded_and_lossless_unchanged(impl, reference):
    exact = gradients(solver(impl, MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=20))))[0]
    assert torch.equal(exact, reference[impl])
    prop = solver(impl, MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=20, storage="cpu", storage_dtype="zfp",
                                                               zfp_tolerance=1e-4)))
    g = gradients(prop)[0]
    assert 0 < max(errors(g, reference[impl])) < 1e-3
    assert prop.memory_report().strategy == "ckpt-chunk(20, cpu, zfp(tol=0.0001))"


def test_options_errors():
    with pytest.raises(ValueError, match="BoundaryOptions.zfp_tolerance"):
        BoundaryOptions(storage_dtype="zfp", zfp_tolerance=0)
    with pytest.raises(ValueError, match="BoundaryOptions.zfp_rate"):
        BoundaryOptions(storage_dtype="zfp", zfp_rate=0.5)
    with pytest.raises(ValueError, match="BoundaryOptions.zfp_rate applies to storage_dtype='zfp'"):
        BoundaryOptions(storage_dtype="int8", zfp_rate=8)
    with pytest.raises(ValueError, match="BoundaryOptions.transfer_interval must be a multiple of 4"):
        BoundaryOptions(storage_dtype="zfp", transfer_interval=6)
    with pytest.raises(ValueError, match="CkptOptions.storage_dtype='zfp' supports mode='chunk' only"):
        CkptOptions("recursive", storage_dtype="zfp")
    with pytest.raises(ValueError, match="CkptOptions.storage_dtype must be one of"):
        CkptOptions(storage_dtype="int8")
    with pytest.raises(ValueError, match="CkptOptions.zfp_tolerance"):
        CkptOptions(storage_dtype="zfp", zfp_tolerance=2.0)
