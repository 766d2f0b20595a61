"""The compiled back-end's work split (impl='c'): whole shots per thread when there are at least as many
shots as threads, row bands with point-to-point progress counters otherwise. Every split must give the
results of one thread bit for bit: forward, snapshots, strips, rebuild, adjoint and gradients."""
import numpy as np
import pytest
import torch

import sweep.propagator.c as cmod
from sweep.equations import Acoustic
from sweep.propagator.c import library_available, load_error
from sweep.propagator.options import BoundaryOptions, MemoryOptions
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker

pytestmark = [
    pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength"),
    pytest.mark.skipif(not library_available(), reason=f"impl='c' not built: {load_error()}"),
]
NZ, NX, DH, DT, NT = 36, 30, 10.0, 0.001, 90


def run(nshots: int, threads: int, dtype: torch.dtype, free_surface: bool, **kw):
    """(data, grad vp, grad wavelet) of a quadratic misfit with `threads` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        prop = PropTorch(Acoustic(), (NZ, NX), DH, DT, NT, abcn=6, free_surface=free_surface, space_order=4,
                         impl="c", **kw)
        z, x = torch.meshgrid(torch.arange(NZ, dtype=torch.float64), torch.arange(NX, dtype=torch.float64),
                              indexing="ij")
        vp = (1800.0 + 15.0 * z + 40.0 * torch.sin(x / 3.0)).to(dtype).requires_grad_(True)
        t = torch.arange(NT, dtype=torch.float64) * DT
        wav = torch.stack([ricker(t - 0.015 - 0.003 * s, 40.0) for s in range(nshots)]).view(nshots, 1, NT)
        wav = wav.to(dtype).requires_grad_(True)
        # Sources near the top, the bottom layer and a band boundary; receivers on several rows.
        src = np.array([[[3 + 5 * s, [1, NZ // 2, NZ - 2][s % 3]]] for s in range(nshots)])
        rec = np.array([[[1, 0], [7, NZ // 2], [NX - 1, NZ - 1], [13, NZ // 2 + 1]]] * nshots)
        data = prop(wav, src, rec, [vp])
        target = torch.randn(data.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
        (0.5 * (data - 1e-3 * target) ** 2).sum().backward()
        return data.detach(), vp.grad, wav.grad
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("nshots, threads", [(1, 2), (1, 3), (3, 2), (2, 4), (5, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("free_surface", [False, True])
def test_split_is_bit_identical_to_one_thread(nshots, threads, dtype, free_surface, monkeypatch):
    monkeypatch.setattr(cmod, "MIN_CELLS_PER_THREAD", 0)  # let the tiny grid really use several threads
    one = run(nshots, 1, dtype, free_surface, use_ckpt=False)
    many = run(nshots, threads, dtype, free_surface, use_ckpt=False)
    for a, b in zip(one, many):
        assert torch.equal(a, b)


@pytest.mark.parametrize("nshots, threads", [(1, 2), (3, 2)])
def test_split_boundary_saving_and_chunks_bit_identical(nshots, threads, monkeypatch):
    """Boundary saving (strips gathered by the forward, rebuild by retreat) and chunk checkpointing."""
    monkeypatch.setattr(cmod, "MIN_CELLS_PER_THREAD", 0)
    for kw in (dict(memory=MemoryOptions(strategy="boundary", boundary=BoundaryOptions())),
               dict(use_ckpt=True, ckpt_chunks=4)):
        one = run(nshots, 1, torch.float32, False, **kw)
        many = run(nshots, threads, torch.float32, False, **kw)
        for a, b in zip(one, many):
            assert torch.equal(a, b)
