"""Stores and the report: files removed in every way a run can end, the report matching what is held,
second backward passes, and bad options or a disk that fills giving clear errors and leaving nothing
(a disk too small from the start is the memory guard's: tests/test_guard.py)."""
from __future__ import annotations

import errno
import gc
import os

import pytest
import torch

import sweep.memory.store as store_mod
from sweep.memory.report import MemoryReport
from sweep.memory.store import Part, Workspace
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from test_boundary import FULL, boundary, geometry, gradients, model, solver, wavelet

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")

DISK_STRATEGIES = [
    boundary("disk", "int8", transfer_interval=4),
    MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=20, storage="disk")),
    MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=2, disk_count=3)),
]


def with_dir(memory: MemoryOptions, path) -> MemoryOptions:
    if memory.strategy == "boundary":
        return MemoryOptions("boundary", boundary=BoundaryOptions(**{**memory.boundary.__dict__, "disk_dir": path}))
    return MemoryOptions("ckpt", ckpt=CkptOptions(**{**memory.ckpt.__dict__, "disk_dir": path}))


def forward(prop, requires_grad=True):
    src, rec = geometry()
    vp = model().requires_grad_(requires_grad)
    return prop(wavelet(prop.nt), src, rec, [vp]), vp


@pytest.mark.parametrize("memory", DISK_STRATEGIES, ids=["boundary", "chunk", "multistage"])
def test_files_while_held_and_gone_after_backward(memory, tmp_path):
    prop = solver("eager", with_dir(memory, tmp_path))
    data, vp = forward(prop)
    rep = prop.memory_report()
    (private,) = os.listdir(tmp_path)
    assert private.startswith("sweep-")
    on_disk = [b for b in rep.buffers if b.location == "disk"]
    assert on_disk and rep.files == [b.path for b in on_disk]
    for b in on_disk:  # the report is what is on disk, byte for byte
        assert os.path.getsize(b.path) == b.nbytes
        assert os.path.dirname(b.path) == str(tmp_path / private)
    assert rep.held_bytes["disk"] == sum(b.nbytes for b in on_disk)
    data.pow(2).sum().backward()
    assert os.listdir(tmp_path) == []
    assert all(v == 0 for v in rep.held_bytes.values())
    assert rep.peak_bytes["disk"] == sum(b.nbytes for b in on_disk)


@pytest.mark.parametrize("memory", DISK_STRATEGIES, ids=["boundary", "chunk", "multistage"])
def test_files_gone_when_graph_dropped_or_loss_raises(memory, tmp_path):
    prop = solver("eager", with_dir(memory, tmp_path))
    data, _ = forward(prop)
    assert len(os.listdir(tmp_path)) == 1
    del data
    gc.collect()
    assert os.listdir(tmp_path) == []

    def failing_loss():
        d, _ = forward(prop)
        raise ValueError("loss failed")

    with pytest.raises(ValueError, match="loss failed"):
        failing_loss()
    gc.collect()
    assert os.listdir(tmp_path) == []


def test_files_gone_after_interrupt_and_user_files_untouched(tmp_path, monkeypatch):
    (tmp_path / "mine.txt").write_text("user data")
    prop = solver("eager", boundary("disk", transfer_interval=4, disk_dir=tmp_path))
    calls = {"n": 0}
    real_write = store_mod.DiskStore.write

    def interrupted(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_write(self, *a, **k)

    monkeypatch.setattr(store_mod.DiskStore, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        forward(prop)
    assert calls["n"] == 5
    assert os.listdir(tmp_path) == ["mine.txt"] and (tmp_path / "mine.txt").read_text() == "user data"


def test_full_disk_mid_run(tmp_path, monkeypatch):
    """A disk that fills during the forward pass: an error naming the option and the bytes, no files left."""
    writes = {"n": 0}
    real = os.pwrite

    def fills_up(fd, data, offset):
        writes["n"] += 1
        if writes["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(store_mod.os, "pwrite", fills_up)
    prop = solver("eager", boundary("disk", "fp16", transfer_interval=4, disk_dir=tmp_path))
    with pytest.raises(OSError, match=r"BoundaryOptions.storage: writing strips to disk failed .*bytes") as info:
        forward(prop)
    assert info.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("option", ["boundary", "ckpt"])
def test_disk_dir_that_cannot_be_a_directory(option, tmp_path):
    regular = tmp_path / "file.txt"
    regular.write_text("x")
    bad = regular / "sub"
    memory = (boundary("disk", disk_dir=bad) if option == "boundary"
              else MemoryOptions("ckpt", ckpt=CkptOptions("chunk", storage="disk", disk_dir=bad)))
    name = "BoundaryOptions.disk_dir" if option == "boundary" else "CkptOptions.disk_dir"
    with pytest.raises(ValueError, match=name):
        solver("eager", memory)


@pytest.mark.parametrize("build, match", [
    (lambda: MemoryOptions("nope"), "MemoryOptions.strategy"),
    (lambda: BoundaryOptions(storage="tape"), "BoundaryOptions.storage"),
    (lambda: BoundaryOptions(storage_dtype="fp8"), "BoundaryOptions.storage_dtype"),
    (lambda: BoundaryOptions(transfer_interval=0), "BoundaryOptions.transfer_interval"),
    (lambda: BoundaryOptions(disk_dir=3), "BoundaryOptions.disk_dir"),
    (lambda: CkptOptions(count=0), "CkptOptions.count"),
    (lambda: CkptOptions(storage="ssd"), "CkptOptions.storage"),
    (lambda: CkptOptions(mode="recursive", disk_count=-1), "CkptOptions.disk_count"),
    (lambda: CkptOptions(mode="chunk", disk_count=2), "CkptOptions.disk_count"),
])
def test_bad_options(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_nothing_stored_without_grad(tmp_path):
    prop = solver("eager", boundary("disk", disk_dir=tmp_path))
    with torch.no_grad():
        forward(prop)
    assert prop.memory_report().buffers == [] and os.listdir(tmp_path) == []
    forward(prop, requires_grad=False)
    assert prop.memory_report().buffers == [] and os.listdir(tmp_path) == []


def test_two_calls_never_share_files(tmp_path):
    prop = solver("eager", boundary("disk", disk_dir=tmp_path))
    other = solver("eager", boundary("disk", disk_dir=tmp_path))
    d1, v1 = forward(prop)
    d2, v2 = forward(prop)
    d3, v3 = forward(other)
    assert len(os.listdir(tmp_path)) == 3
    d2.pow(2).sum().backward()
    assert len(os.listdir(tmp_path)) == 2
    d1.pow(2).sum().backward()
    d3.pow(2).sum().backward()
    assert torch.equal(v1.grad, v2.grad) and torch.equal(v1.grad, v3.grad)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("memory", [boundary("cpu", "bf16"), MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=30)),
                                    MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=3))],
                         ids=["boundary", "chunk", "recursive"])
def test_second_backward_in_memory_same_gradient(memory):
    prop = solver("eager", memory)
    data, vp = forward(prop)
    loss = data.pow(2).sum()
    loss.backward(retain_graph=True)
    first = vp.grad.clone()
    vp.grad = None
    loss.backward()
    assert torch.equal(vp.grad, first)


def test_second_backward_on_disk_raises(tmp_path):
    prop = solver("eager", boundary("disk", disk_dir=tmp_path))
    data, _ = forward(prop)
    loss = data.pow(2).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="files on disk were removed after the first backward"):
        loss.backward()


def test_pinned_memory_without_cuda_warns_once(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("CUDA present: pinned memory is honoured")
    monkeypatch.setattr(store_mod, "_warned_pinned", False)
    prop = solver("eager", boundary("cpu", pinned_memory=True))
    with pytest.warns(UserWarning, match="pinned_memory=True has no effect without CUDA"):
        forward(prop)
    assert prop.memory_report().bytes_by_location("stored") == {"host": prop.memory_report().stored_bytes}


def test_report_peak_boundary():
    """The tracked peak is the strips, the fields, and the larger of the forward's working set (padded
    state + ring) and the backward's (rebuild fields + adjoint state + a block of snapshots + ring)."""
    prop = solver("eager", boundary(transfer_interval=5))
    gradients(prop)
    rep = prop.memory_report()
    size = {b.name: b.nbytes for b in rep.buffers}
    stored = size["strips"] + size["fields"]
    assert rep.stored_bytes == stored
    forward_set = size["forward_state"] + size["strip_ring"] + size["fields_staging"]
    backward_set = size["rebuild_fields"] + size["adjoint_state"] + size["snapshots"] + size["strip_ring"]
    assert rep.peak_memory_bytes == stored + max(forward_set, backward_set)


def test_workspace_store_roundtrip_any_order(tmp_path):
    """Stores return exactly what was written, read back in any order (as Revolve does)."""
    report = MemoryReport("test")
    ws = Workspace(report, torch.device("cpu"))
    parts = [Part("a", (3,), torch.float32), Part("b", (2, 2), torch.bfloat16), Part("c", (4,), torch.int8)]
    stores = [ws.store(s, s, parts, 5, disk_dir=tmp_path) for s in ("device", "cpu", "disk")]
    gen = torch.Generator().manual_seed(0)
    values = [torch.randn(5, 3, generator=gen), torch.randn(5, 2, 2, generator=gen).bfloat16(),
              torch.randint(-127, 127, (5, 4), generator=gen, dtype=torch.int8)]
    for st in stores:
        st.write(2, 5, [v[2:] for v in values])
        st.write(0, 2, [v[:2] for v in values])
        for i0, i1 in ((4, 5), (1, 3), (0, 5)):
            for got, want in zip(st.read(i0, i1), values):
                assert torch.equal(got, want[i0:i1])
        with pytest.raises(IndexError):
            st.read(3, 6)
    assert {b.location for b in report.buffers} == {"device", "host", "disk"}
    ws.close()
    assert os.listdir(tmp_path) == [] and all(v == 0 for v in report.held_bytes.values())
