"""The compiled back-end's work split (impl='c'): whole shots per thread when there are at least as many
shots as threads, row bands with point-to-point progress counters otherwise. Every split must give the
results of one thread bit for bit: forward, snapshots, strips, rebuild, adjoint and gradients."""
import numpy as np
import pytest
import torch

import sweep.propagator.c as cmod
import sweep.propagator.c.stepper as cstep
from sweep.equations import Acoustic
from sweep.propagator.c import library_available, load_error
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
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
    monkeypatch.setattr(cstep, "MIN_CELLS_PER_THREAD", 0)  # let the tiny grid really use several threads
    one = run(nshots, 1, dtype, free_surface, use_ckpt=False)
    many = run(nshots, threads, dtype, free_surface, use_ckpt=False)
    for a, b in zip(one, many):
        assert torch.equal(a, b)


@pytest.mark.parametrize("nshots, threads", [(1, 2), (3, 2)])
def test_split_boundary_saving_and_chunks_bit_identical(nshots, threads, monkeypatch):
    """Boundary saving (strips gathered by the forward, rebuild by retreat) and chunk checkpointing."""
    monkeypatch.setattr(cstep, "MIN_CELLS_PER_THREAD", 0)
    for kw in (dict(memory=MemoryOptions(strategy="boundary", boundary=BoundaryOptions())),
               dict(use_ckpt=True, ckpt_chunks=4)):
        one = run(nshots, 1, torch.float32, False, **kw)
        many = run(nshots, threads, torch.float32, False, **kw)
        for a, b in zip(one, many):
            assert torch.equal(a, b)


class CyclingGovernor:
    """Hands out 1, 2, ..., requested, 1, ... threads: consecutive kernel calls of one block run on different
    splits, as when the thread governor reacts to a busy machine in the middle of a block."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, float, float]] = []

    def threads(self, requested: int) -> int:
        return 1 + len(self.calls) % requested

    def observe(self, threads: int, requested: int, wall: float, cpu: float) -> None:
        self.calls.append((threads, requested, wall, cpu))


@pytest.mark.parametrize("kw", [dict(use_ckpt=False), dict(use_ckpt=True, ckpt_chunks=7),
                                dict(memory=MemoryOptions(strategy="boundary", boundary=BoundaryOptions())),
                                dict(memory=MemoryOptions(strategy="ckpt", ckpt=CkptOptions("recursive", count=3)))],
                         ids=["full", "chunk", "boundary", "revolve"])
def test_thread_count_changing_within_a_block_is_bit_identical(kw, monkeypatch):
    """Banded blocks run as several kernel calls, each with the governor's count: any sequence of counts
    gives the one-thread results bit for bit, and every call reports its wall and CPU time."""
    monkeypatch.setattr(cstep, "MIN_CELLS_PER_THREAD", 0)
    one = run(1, 1, torch.float32, False, **kw)
    governor = CyclingGovernor()
    monkeypatch.setattr(cstep, "GOVERNOR", governor)
    monkeypatch.setattr(cstep, "BANDED_CALL_CELL_STEPS", 3 * (NZ + 12) * (NX + 12))  # 3 steps per call
    many = run(1, 3, torch.float32, False, **kw)
    for a, b in zip(one, many):
        assert torch.equal(a, b)
    assert {c[0] for c in governor.calls} == {1, 2, 3} and {c[1] for c in governor.calls} == {3}
    assert len(governor.calls) >= 2 * NT // 3  # forward and backward, in calls of at most 3 steps
    assert all(wall > 0 and cpu > 0 for _, _, wall, cpu in governor.calls)


def test_whole_shots_per_thread_ignore_the_governor(monkeypatch):
    """With at least as many shots as threads no thread waits for another: one call per block, the full count."""
    monkeypatch.setattr(cstep, "MIN_CELLS_PER_THREAD", 0)
    governor = CyclingGovernor()
    monkeypatch.setattr(cstep, "GOVERNOR", governor)
    run(3, 2, torch.float32, False, use_ckpt=False)
    assert governor.calls == []


@pytest.mark.parametrize("kw, kernel", [(dict(use_ckpt=False), "adjoint"),
                                        (dict(memory=MemoryOptions(strategy="boundary", boundary=BoundaryOptions())),
                                         "retreat")])
def test_a_kernel_that_cannot_allocate_raises(kw, kernel):
    """A kernel's out-of-memory status is an error, never a silently wrong result: the forward, the
    adjoint and the rebuild each check theirs."""
    prop = PropTorch(Acoustic(), (NZ, NX), DH, DT, NT, abcn=6, space_order=4, impl="c", **kw)
    vp = torch.full((NZ, NX), 2000.0, requires_grad=True)
    wav = ricker(torch.arange(NT, dtype=torch.float32) * DT - 0.015, 40.0)
    src, rec = np.array([[5, 5]]), np.array([[[1, 0], [7, 9]]])
    try:
        cmod._inject_allocation_failures(1)
        with pytest.raises(MemoryError, match="forward kernel could not allocate"):
            prop(wav, src, rec, [vp])
        data = prop(wav, src, rec, [vp])
        cmod._inject_allocation_failures(1)
        with pytest.raises(MemoryError, match=f"{kernel} kernel could not allocate"):
            data.pow(2).sum().backward()
    finally:
        cmod._inject_allocation_failures(0)
