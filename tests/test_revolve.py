"""Recursive (Revolve / multistage) checkpointing: step counts against checkpoint_schedules, slots held,
adjoint order and snapshots with a fake stepper; bit-identical gradients through the eager stepper."""
import os

import numpy as np
import pytest
import torch
from checkpoint_schedules import (Copy, EndForward, EndReverse, Forward, Move, MultistageCheckpointSchedule,
                                  StorageType, optimal_steps_binomial)

from sweep.memory import revolve
from sweep.memory.driver import propagate
from sweep.memory.report import MemoryReport
from sweep.memory.revolve import RecursiveCheckpointing
from sweep.memory.schedules import FullStorage
from sweep.memory.store import Part, Workspace


class FakeStepper:
    """State = (1,) tensor holding its step; a step adds 1 and writes its index as the snapshot."""

    snapshot_shape = (1,)
    strip_shape = rebuild_shape = (1,)

    def __init__(self, nt: int) -> None:
        self.nt = nt
        self.visited: list[int] = []
        self.adjoint_order: list[int] = []

    def initial(self) -> torch.Tensor:
        return torch.zeros(1, dtype=torch.float64)

    def advance(self, state, n0, n1, record=None, keep=None, strips=None):
        for n in range(n0, n1):
            assert state.item() == n, f"advance from step {n} got a state at step {state.item()}"
            if keep is not None:
                keep[n - n0] = n
            if record is not None:
                record[:, n] = n
            state += 1
            self.visited.append(n)

    def adjoint(self, adj_state, kept, n0, n1, grad_record):
        assert kept.shape[0] == n1 - n0
        for n in range(n1 - 1, n0 - 1, -1):
            assert kept[n - n0].item() == n, f"adjoint of step {n} got the snapshot of step {kept[n - n0].item()}"
            self.adjoint_order.append(n)
            adj_state += 1


def run(schedule, nt, ws=None):
    stepper = FakeStepper(nt)
    ws = ws or Workspace(MemoryReport(schedule.name), torch.device("cpu"))
    record = torch.full((2, nt, 1), -1.0, dtype=torch.float64)
    tape = schedule.forward(stepper, ws, record)
    assert torch.equal(record[0, :, 0], torch.arange(nt, dtype=torch.float64))
    assert stepper.visited[:nt] == list(range(nt)) and len(stepper.visited) == nt
    schedule.backward(stepper, ws, tape, torch.zeros_like(record))
    return stepper, ws, tape


def walk(nt, ram, disk):
    """Forward steps of the first sweep and after it, and states written to disk, straight from the actions."""
    first = replayed = disk_writes = 0
    end = False
    for a in MultistageCheckpointSchedule(nt, ram, disk):
        if isinstance(a, Forward):
            if end:
                replayed += a.n1 - a.n0
            else:
                first += a.n1 - a.n0
            disk_writes += a.write_ics and a.storage == StorageType.DISK
        elif isinstance(a, EndForward):
            end = True
        elif isinstance(a, EndReverse):
            break
    return first, replayed, disk_writes


@pytest.mark.parametrize("nt,count", [(1, 1), (2, 1), (6, 1), (10, 3), (10, 9), (10, 10), (10, 50), (37, 5),
                                      (60, 4), (100, 8)])
def test_forward_steps_are_the_binomial_optimum(nt, count):
    schedule = RecursiveCheckpointing(count)
    stepper, ws, tape = run(schedule, nt)
    r = ws.report
    # optimal_steps_binomial rejects s > n - 1: the schedule never uses more than nt - 1 states
    optimum = optimal_steps_binomial(nt, min(count, nt - 1))
    assert r.forward_steps == nt and r.adjoint_steps == nt
    assert r.forward_steps + r.replayed_steps == optimum == len(stepper.visited)
    if count >= nt - 1:
        assert optimum == 2 * nt - 1
    if count == 1:
        assert optimum == nt * (nt + 1) // 2
    assert stepper.adjoint_order == list(range(nt - 1, -1, -1))
    assert any("optimal_steps_binomial" in n and str(optimum) in n for n in r.notes)
    # every buffer released by the schedule itself (memory), files by the workspace
    assert all(v == 0 for v in r.held_bytes.values())
    ws.close()


@pytest.mark.parametrize("nt,count", [(10, 3), (37, 5), (10, 20), (5, 1)])
def test_never_more_states_than_count(nt, count):
    schedule = RecursiveCheckpointing(count)
    stepper, ws, tape = run(schedule, nt)
    slots = tape.run.slots[StorageType.RAM]
    assert 1 <= slots.peak <= min(count, nt - 1)
    (ckpt,) = [b for b in ws.report.buffers if b.name == "checkpoints"]
    assert ckpt.shape == (slots.peak, 1) and ckpt.role == "stored"
    # working buffers: two states (forward, replay), one adjoint state and a one-step snapshot block
    assert sorted(b.name for b in ws.report.buffers if b.role == "working") == \
        ["adjoint_state", "forward_state", "replay_state", "snapshots"]
    (block,) = [b for b in ws.report.buffers if b.name == "snapshots"]
    assert block.shape == (1, 1)
    # peak in memory: peak states + 3 working states + 1 snapshot, 8 bytes each
    assert ws.report.peak_memory_bytes <= 8 * (slots.peak + 3 + 1)


def test_more_states_than_slots_raises():
    ws = Workspace(MemoryReport("x"), torch.device("cpu"))
    store = ws.store("checkpoints", "device", [Part("state", (1,), torch.float64)], 2)
    slots = revolve._Slots(store, StorageType.RAM, 2)
    slots.write(0, torch.zeros(1, dtype=torch.float64))
    slots.write(3, torch.full((1,), 3.0, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="more states in RAM than its 2 slots"):
        slots.write(5, torch.zeros(1, dtype=torch.float64))
    out = torch.empty(1, dtype=torch.float64)
    slots.read(3, out, remove=True)
    assert out.item() == 3.0 and slots.peak == 2
    slots.write(5, torch.zeros(1, dtype=torch.float64))  # the freed slot is reused


def test_schedule_asking_for_too_many_states_raises(monkeypatch):
    class Greedy:  # one state more than the count it is given
        def __init__(self, nt, ram, disk):
            self.actions = [Forward(n, n + 1, True, False, StorageType.RAM) for n in range(ram + 1)]

        def __iter__(self):
            return iter(self.actions + [EndForward()])

    monkeypatch.setattr(revolve, "MultistageCheckpointSchedule", Greedy)
    with pytest.raises(RuntimeError, match="more than count=2"):
        run(RecursiveCheckpointing(2), 10)


@pytest.mark.parametrize("nt,ram,disk,storage", [(10, 2, 2, "device"), (30, 2, 3, "cpu"), (25, 1, 4, "device"),
                                                 (20, 3, 2, "disk")])
def test_multistage_matches_the_schedule_and_uses_disk(tmp_path, nt, ram, disk, storage):
    schedule = RecursiveCheckpointing(ram, storage, disk_count=disk, disk_dir=tmp_path)
    assert schedule.name == f"ckpt-recursive({ram}{'' if storage == 'device' else ', ' + storage}, disk {disk})"
    stepper, ws, tape = run(schedule, nt)
    first, replayed, disk_writes = walk(nt, ram, disk)
    r = ws.report
    assert (r.forward_steps, r.replayed_steps, r.adjoint_steps) == (first, replayed, nt) == (nt, replayed, nt)
    # the same binomial schedule of ram + disk states, distributed over memory and disk
    assert first + replayed == optimal_steps_binomial(nt, min(ram + disk, nt - 1))
    assert stepper.adjoint_order == list(range(nt - 1, -1, -1))
    assert disk_writes > 0 and tape.run.slots[StorageType.DISK].peak > 0
    assert tape.on_disk
    on_disk = [b for b in r.buffers if b.location == "disk"]
    assert "disk_checkpoints" in [b.name for b in on_disk]
    assert ("checkpoints" in [b.name for b in on_disk]) == (storage == "disk")
    (ram_buf,) = [b for b in r.buffers if b.name == "checkpoints"]
    assert ram_buf.location == {"device": "device", "cpu": "host", "disk": "disk"}[storage]
    assert ram_buf.shape[0] <= ram
    (disk_buf,) = [b for b in r.buffers if b.name == "disk_checkpoints"]
    assert disk_buf.shape[0] <= disk
    assert all(os.path.isfile(b.path) and str(tmp_path) in b.path for b in on_disk)
    ws.close()
    assert not any(os.path.exists(b.path) for b in on_disk) and os.listdir(tmp_path) == []
    assert all(v == 0 for v in r.held_bytes.values())


def test_two_forwards_before_either_backward():
    schedule = RecursiveCheckpointing(3)
    steppers, wss, tapes = [], [], []
    for nt in (12, 17):
        stepper = FakeStepper(nt)
        ws = Workspace(MemoryReport(schedule.name), torch.device("cpu"))
        tapes.append(schedule.forward(stepper, ws, torch.zeros((1, nt, 1), dtype=torch.float64)))
        steppers.append(stepper), wss.append(ws)
    for stepper, ws, tape in zip(reversed(steppers), reversed(wss), reversed(tapes)):
        schedule.backward(stepper, ws, tape, torch.zeros((1, stepper.nt, 1)))
        assert stepper.adjoint_order == list(range(stepper.nt - 1, -1, -1))
        assert ws.report.forward_steps + ws.report.replayed_steps == optimal_steps_binomial(stepper.nt, 3)


def test_second_backward_replays_from_the_start():
    schedule = RecursiveCheckpointing(3)
    stepper, ws, tape = run(schedule, 15)
    ws.close()  # as the driver does after each backward pass
    once = ws.report.replayed_steps
    schedule.backward(stepper, ws, tape, torch.zeros((2, 15, 1)))
    assert stepper.adjoint_order == 2 * list(range(14, -1, -1))
    assert ws.report.replayed_steps == once + optimal_steps_binomial(15, 3)
    assert ws.report.forward_steps == 15


def test_checks():
    with pytest.raises(ValueError, match=r"CkptOptions\.count"):
        RecursiveCheckpointing(0)
    with pytest.raises(ValueError, match=r"CkptOptions\.disk_count"):
        RecursiveCheckpointing(2, disk_count=-1)
    assert RecursiveCheckpointing(8).name == "ckpt-recursive(8)"
    assert RecursiveCheckpointing(8, "gpu", 4).name == "ckpt-recursive(8, disk 4)"


@pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")
@pytest.mark.parametrize("make", [lambda d: RecursiveCheckpointing(3), lambda d: RecursiveCheckpointing(1),
                                  lambda d: RecursiveCheckpointing(100),
                                  lambda d: RecursiveCheckpointing(2, "cpu", disk_count=2, disk_dir=d)],
                         ids=["count3", "count1", "count100", "multistage"])
def test_gradient_is_bit_identical_to_full_storage(tmp_path, make):
    from sweep.propagator.eager.acoustic import EagerAcousticStepper
    from sweep.propagator.grid import PaddedGrid
    from sweep.propagator.setup import build_problem
    from sweep.signal import ricker

    nz, nx, nt, dh, dt = 12, 14, 24, 10.0, 0.001
    z, x = torch.meshgrid(torch.arange(nz, dtype=torch.float64), torch.arange(nx, dtype=torch.float64), indexing="ij")
    vp0 = 1800.0 + 15.0 * z + 20.0 * torch.sin(x / 3.0)
    wav = ricker(np.arange(nt) * dt - 0.012, 40.0)
    sources = np.array([[5, 4], [9, 7]])
    receivers = np.array([[[2, 2], [8, 10], [11, 3]], [[3, 11], [12, 10], [7, 1]]])
    weights = torch.randn(2, nt, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def gradient(schedule):
        vp = vp0.clone().requires_grad_(True)
        problem, w = build_problem(grid=PaddedGrid((nz, nx), 4, False), dh=dh, dt=dt, nt=nt, space_order=4,
                                   max_stable_dt=1.0, velocity=vp, wavelet=wav, sources=sources, receivers=receivers,
                                   pml_freq=None)
        report = MemoryReport(schedule.name)
        data = propagate(EagerAcousticStepper(problem, [vp]), schedule, report, problem.nshots, problem.nrec, w, [vp])
        (data * weights).sum().backward()
        return data.detach(), vp.grad, report

    data_full, grad_full, _ = gradient(FullStorage())
    schedule = make(tmp_path)
    data, grad, report = gradient(schedule)
    assert grad_full.abs().max() > 0
    assert torch.equal(data, data_full)
    assert torch.equal(grad, grad_full)
    assert report.forward_steps == nt and report.adjoint_steps == nt
    assert report.forward_steps + report.replayed_steps == optimal_steps_binomial(nt, min(
        schedule.count + schedule.disk_count, nt - 1))
    assert all(v == 0 for v in report.held_bytes.values()) and os.listdir(tmp_path) == []
