"""The memory guard: a call whose prediction exceeds what is available raises before it allocates;
strategy='auto' without a budget plans for what is available; predictions allocate no state."""
import os
import pickle
import re
import shutil

import numpy as np
import pytest
import torch

from sweep.equations import Acoustic
from sweep.memory import InsufficientMemoryError, available
from sweep.memory.available import Available
from sweep.memory.predict import ShapeOnlyStepper
from sweep.propagator.eager.acoustic import EagerAcousticStepper
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from sweep.propagator.torch import PropTorch
from test_planning import DH, DT, NX, NZ, call_args, measured, summary

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")
NT = 60


def prop_with(memory=None, nt=NT, **kw):
    return PropTorch(Acoustic(), (NZ, NX), DH, DT, nt, abcn=5, memory=memory, **kw)


def fake_host(monkeypatch, nbytes):
    """Host RAM available: ``nbytes`` (the guard and the planner read it through this one function)."""
    monkeypatch.setattr(available, "host_memory", lambda root="/": Available(nbytes, "fake MemAvailable"))


def never_propagates(monkeypatch):
    """Make the propagation itself (where a call's buffers are allocated) fail the test if it is reached."""
    def reached(*args, **kwargs):
        raise AssertionError("the call went on to allocate")
    monkeypatch.setattr("sweep.propagator.torch.propagate", reached)


def process_estimate(memory, nt=NT):
    return prop_with(memory, nt).estimate_memory(*call_args(nt, 2)).process_bytes_estimate


SUGGESTABLE = {"MemoryOptions": MemoryOptions, "BoundaryOptions": BoundaryOptions, "CkptOptions": CkptOptions}


def suggested(err) -> MemoryOptions:
    """The strategy the error suggests, built from its text."""
    return eval(re.search(r"memory=(MemoryOptions\(.*\)) \(predicted", str(err)).group(1), SUGGESTABLE)


def test_refuses_before_allocating_and_suggests_what_fits(monkeypatch):
    full, bdy = process_estimate(MemoryOptions("full")), process_estimate(MemoryOptions("boundary"))
    assert bdy < full
    fake_host(monkeypatch, full - 1)
    with monkeypatch.context() as m:
        never_propagates(m)
        with pytest.raises(InsufficientMemoryError) as err:
            prop_with(MemoryOptions("full"))(*call_args(NT, 2))
    text = str(err.value)
    assert f"host: predicted {full / 2**20:,.2f} MiB = tracked peak" in text and "other arrays" in text
    assert f"available {(full - 1) / 2**20:,.2f} MiB (fake MemAvailable)" in text and "memory_guard=False" in text
    assert "fastest exact strategy that fits what is available: boundary saving on the device" in text
    assert err.value.needed == {"host": full} and err.value.available["host"].nbytes == full - 1
    assert isinstance(err.value, MemoryError)
    again = pickle.loads(pickle.dumps(err.value))  # e.g. from a worker process
    assert str(again) == text and again.needed == err.value.needed and again.available == err.value.available
    # The suggestion does fit: that call passes the guard and runs.
    got = measured(prop_with(suggested(err.value)), *call_args(NT, 2))
    assert got.strategy.startswith("boundary(gpu")


def test_a_forward_call_without_gradient_is_guarded_too(monkeypatch):
    fake_host(monkeypatch, 1000)
    never_propagates(monkeypatch)
    with torch.no_grad(), pytest.raises(InsufficientMemoryError, match="fewer shots per call"):
        prop_with(MemoryOptions("full"))(*call_args(NT, 2))


def test_nothing_fits_names_the_smallest_footprint(monkeypatch):
    fake_host(monkeypatch, 1000)
    with pytest.raises(InsufficientMemoryError, match="no exact strategy fits what is available: the smallest is "
                                                      "boundary saving staged to disk, predicted peak"):
        prop_with(MemoryOptions("full"))(*call_args(NT, 2))


def test_the_off_switch_lets_the_call_through(monkeypatch):
    fake_host(monkeypatch, 1000)  # far below what even this tiny call needs
    with pytest.raises(InsufficientMemoryError):
        prop_with(MemoryOptions("full"))(*call_args(NT, 2))
    got = measured(prop_with(MemoryOptions("full"), memory_guard=False), *call_args(NT, 2))
    assert got.strategy == "full" and got.adjoint_steps == NT
    with pytest.raises(ValueError, match="memory_guard must be a bool"):
        prop_with(memory_guard="no")


def test_prediction_cached_per_call_shape_availability_read_every_call(monkeypatch):
    import sweep.propagator.torch as torch_mod
    reads, predictions = [], []
    real_predict = torch_mod.predict
    monkeypatch.setattr(available, "host_memory", lambda root="/": reads.append(1) or Available(2**40, "fake"))
    monkeypatch.setattr(torch_mod, "predict", lambda *a, **k: predictions.append(1) or real_predict(*a, **k))
    prop = prop_with(MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=3)))
    for _ in range(3):
        measured(prop, *call_args(NT, 2))
    assert len(predictions) == 1 and len(reads) == 3
    measured(prop, *call_args(NT, 1))  # another call shape: predicted again
    assert len(predictions) == 2 and len(reads) == 4


def test_disk_too_small_is_refused_before_any_file(monkeypatch, tmp_path):
    """The disk store's own free-space check is folded into the guard: one check, for all the call's files."""
    disk = MemoryOptions("boundary", boundary=BoundaryOptions("disk", transfer_interval=5, disk_dir=tmp_path))
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(InsufficientMemoryError) as err:
        prop_with(disk)(*call_args(NT, 2))
    assert os.listdir(tmp_path) == []
    text = str(err.value)
    assert re.search(r"disk: predicted [\d.,]+ MiB; available 0.00 MiB \(free space of .*\)  <- too large", text)
    assert err.value.available["disk"].nbytes == 1000 and err.value.needed["disk"] > 1000
    assert "fastest exact strategy that fits what is available: full storage" in text
    # Without the guard nothing else checks the free space up front (a disk that really fills raises when
    # written: tests/test_stores.py).
    got = measured(prop_with(disk, memory_guard=False), *call_args(NT, 2))
    assert got.peak_bytes["disk"] == err.value.needed["disk"] and os.listdir(tmp_path) == []


def test_auto_without_budget_plans_for_what_is_available(monkeypatch, caplog):
    full, bdy = process_estimate(MemoryOptions("full")), process_estimate(MemoryOptions("boundary"))
    fake_host(monkeypatch, (full + bdy) // 2)
    got = measured(prop_with(MemoryOptions("auto")), *call_args(NT, 2))
    assert got.strategy.startswith("boundary(gpu")
    reason = got.notes[0]
    assert "strategy='auto' chose boundary saving on the device" in reason
    assert f"available {(full + bdy) // 2 / 2**20:,.2f} MiB (fake MemAvailable) less the call's other arrays" in reason
    fake_host(monkeypatch, 2**40)
    assert measured(prop_with(MemoryOptions("auto")), *call_args(NT, 2)).strategy == "full"


def test_auto_with_the_free_disk_space(monkeypatch, tmp_path):
    revolve1 = process_estimate(MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=1)), nt=300)
    staged = process_estimate(MemoryOptions("boundary", boundary=BoundaryOptions("disk")), nt=300)
    margin = 16 * 2**10  # the plan counts a wavelet gradient among the call's other arrays too
    assert staged + margin < revolve1
    fake_host(monkeypatch, staged + margin)  # only boundary saving staged to disk fits in memory
    auto = MemoryOptions("auto", disk_budget="available", boundary=BoundaryOptions(disk_dir=tmp_path),
                         ckpt=CkptOptions(disk_dir=tmp_path))  # one directory: its free space is the budget
    got = measured(prop_with(auto, nt=300), *call_args(300, 2))
    assert got.strategy.startswith("boundary(disk") and f"(free space of {tmp_path})" in got.notes[0]
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(ValueError, match=r"no exact strategy fits .* disk_budget 0.00 MiB"):
        prop_with(auto, nt=300)(*call_args(300, 2))


def test_a_call_larger_than_this_machine_raises_without_allocating():
    """Full storage of 4000 shots on 100 x 100 cells for 10,000 steps is 1.6 TB of snapshots: refused,
    with the process's peak resident memory unchanged (the call would first allocate 160 MB of data and
    a 1.2 GB state)."""
    nshots, nt = 4000, 10_000
    prop = PropTorch(Acoustic(), (100, 100), 10.0, 0.001, nt, abcn=5, impl="eager", memory=MemoryOptions("full"))
    vp = torch.full((100, 100), 2000.0, requires_grad=True)
    wavelet = torch.zeros(nt)
    wavelet[10] = 1.0
    sources = np.tile([[50, 2]], (nshots, 1))
    receivers = np.tile([[[50, 4]]], (nshots, 1, 1))
    predicted = prop.estimate_memory(wavelet, sources, receivers, [vp])
    assert predicted.process_bytes_estimate > 1.5e12
    before = _reset_peak()
    with pytest.raises(InsufficientMemoryError, match="fastest exact strategy that fits what is available|"
                                                      "no exact strategy fits"):
        prop(wavelet, sources, receivers, [vp])
    grown = _peak() - before
    assert grown < 64 * 2**20, f"the refused call raised the peak resident memory by {grown / 2**20:.0f} MiB"


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def _reset_peak() -> int:
    """Reset the process's resident high-water mark (Linux) and return the resident bytes now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_bytes("VmRSS")
    except OSError:
        pytest.skip("needs Linux's /proc/self/clear_refs to measure the peak of one call")


def _peak() -> int:
    return _status_bytes("VmHWM")


class NoStates(EagerAcousticStepper):
    """An eager stepper whose real states must never be built."""

    def initial(self):
        raise AssertionError("a prediction built a real state")


@pytest.mark.parametrize("memory", [
    MemoryOptions("full"), MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=7)),
    MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=3)),
    MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=2, disk_count=3)),
    MemoryOptions("boundary", boundary=BoundaryOptions("cpu", "int8", transfer_interval=5)),
    MemoryOptions("auto", budget="200kB", disk_budget="1MiB"),
], ids=["full", "chunk", "revolve", "multistage", "boundary", "auto"])
def test_predictions_allocate_no_state(monkeypatch, memory):
    prop = prop_with(memory, impl="eager")
    expected = prop.estimate_memory(*call_args(NT, 2))
    monkeypatch.setattr(prop, "_make_stepper", lambda problem, models: NoStates(problem, models))
    assert summary(prop.estimate_memory(*call_args(NT, 2))) == summary(expected)
    with torch.no_grad():  # the forward state counted among a no-grad call's other arrays: by its shape
        assert prop.estimate_memory(*call_args(NT, 2)).other_bytes > 0


def test_a_stepper_without_state_shape_is_asked_for_one_state():
    class Minimal:
        nt, snapshot_shape = 5, (1,)

        def initial(self):
            return torch.zeros(3, 2, dtype=torch.float64)

    dry = ShapeOnlyStepper(Minimal())
    assert dry.state_shape == (3, 2) and dry.dtype == torch.float64 and dry.initial().device.type == "meta"


def test_estimate_without_gradient_says_why_and_how_to_estimate_the_gradient_call():
    prop = prop_with(MemoryOptions("boundary"))
    wavelet, sources, receivers, models = call_args(NT, 2)
    plain = [models[0].detach()]
    report = prop.estimate_memory(wavelet, sources, receivers, plain)
    assert report.strategy == "none" and report.stored_bytes == 0
    assert "neither the models nor the wavelet require grad" in report.notes[-1]
    assert "estimate_memory(..., gradient=True)" in str(report) and "process estimate" in str(report)
    with torch.no_grad():
        assert "grad mode is off" in prop.estimate_memory(wavelet, sources, receivers, models).notes[-1]
        as_gradient = prop.estimate_memory(wavelet, sources, receivers, plain, gradient=True)
    assert summary(as_gradient) == summary(prop.estimate_memory(wavelet, sources, receivers, models))
    assert as_gradient.other_bytes == prop.estimate_memory(wavelet, sources, receivers, models).other_bytes
    assert summary(as_gradient) == summary(measured(prop, wavelet, sources, receivers, models))
    forward_only = prop.estimate_memory(wavelet, sources, receivers, models, gradient=False)
    assert forward_only.strategy == "none" and "gradient=False" in forward_only.notes[-1]
    with pytest.raises(ValueError, match="gradient must be None, True or False"):
        prop.estimate_memory(wavelet, sources, receivers, models, gradient="yes")
