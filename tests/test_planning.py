"""Predicted footprints (PropTorch.estimate_memory) against measured reports, and strategy='auto'."""
import itertools
import logging
import re

import numpy as np
import pytest
import torch

from sweep.equations import Acoustic
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions, parse_bytes
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")
NZ, NX, DH, DT = 18, 26, 10.0, 0.001

LOSSLESS = {
    "full": MemoryOptions("full"),
    **{f"chunk-{s}": MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=7, storage=s)) for s in ("gpu", "cpu", "disk")},
    **{f"revolve-{s}": MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=3, storage=s)) for s in ("gpu", "disk")},
    "multistage": MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=2, disk_count=3)),
    **{f"boundary-{s}-{c}": MemoryOptions("boundary", boundary=BoundaryOptions(s, c, transfer_interval=5))
       for s, c in itertools.product(("gpu", "cpu", "disk"), (None, "fp64", "fp32", "bf16", "fp16", "int8"))},
}


def call_args(nt, nshots, dtype=torch.float32):
    vp = torch.linspace(1800.0, 2400.0, NZ * NX, dtype=dtype).reshape(NZ, NX).requires_grad_(True)
    wavelet = ricker(torch.arange(nt, dtype=dtype) * DT - 0.02, 30.0)
    sources = np.array([[4 + 7 * s, 3] for s in range(nshots)])
    receivers = np.array([[[x, 2] for x in range(0, NX, 4)]] * nshots)
    return wavelet, sources, receivers, [vp]


def summary(report):
    """Everything a report says except file paths (a prediction creates no file)."""
    return ([(b.name, b.location, b.dtype, b.shape, b.nbytes, b.role) for b in report.buffers], report.peak_bytes,
            report.peak_memory_bytes, report.stored_bytes, report.staging_bytes, report.bytes_by_location("stored"),
            report.bytes_by_dtype(), report.strategy,
            (report.forward_steps, report.replayed_steps, report.rebuilt_steps, report.adjoint_steps))


def measured(prop, wavelet, sources, receivers, models, backward=True):
    data = prop(wavelet, sources, receivers, models)
    if backward:
        (data * torch.linspace(0, 1, data.shape[1])[None, :, None, None]).sum().backward()
    return prop.memory_report()


@pytest.mark.parametrize("impl", ["c", "eager"])
@pytest.mark.parametrize("name", list(LOSSLESS))
def test_estimate_equals_measured_report(impl, name):
    # Fixed-size codecs (casts and block-scaled fp16/int8) are data-independent too: exact as well.
    combos = [(40, 1, 4, False), (23, 2, 2, True)] if impl == "c" else [(23, 2, 8, True)]
    for nt, nshots, order, free_surface in combos:
        prop = PropTorch(Acoustic(), (NZ, NX), DH, DT, nt, abcn=5, impl=impl, space_order=order,
                         free_surface=free_surface, memory=LOSSLESS[name])
        args = call_args(nt, nshots)
        predicted = prop.estimate_memory(*args)
        assert predicted.predicted and not predicted.files
        got = measured(prop, *args)
        assert summary(predicted) == summary(got), (nt, nshots, order, free_surface)
        assert got.held_bytes == predicted.held_bytes  # both end with everything released


def test_estimate_without_model_gradient_and_without_grad():
    prop = PropTorch(Acoustic(), (NZ, NX), DH, DT, 30, abcn=5, memory=LOSSLESS["boundary-disk-int8"])
    wavelet, sources, receivers, models = call_args(30, 2)
    models = [models[0].detach()]
    w = wavelet.clone().requires_grad_(True)
    assert summary(prop.estimate_memory(w, sources, receivers, models)) == \
        summary(measured(prop, w, sources, receivers, models))
    with torch.no_grad():
        predicted = prop.estimate_memory(wavelet, sources, receivers, models)
        assert summary(predicted) == summary(measured(prop, wavelet, sources, receivers, models, backward=False))
    assert predicted.strategy == "none" and predicted.stored_bytes == 0


def test_estimate_predicts_the_process_footprint_roughly():
    prop = PropTorch(Acoustic(), (NZ, NX), DH, DT, 30, abcn=5, memory=MemoryOptions("full"))
    r = prop.estimate_memory(*call_args(30, 2))
    data_bytes = 2 * 30 * len(range(0, NX, 4)) * 4
    assert r.other_bytes >= 2 * data_bytes and r.process_bytes_estimate == r.peak_memory_bytes + r.other_bytes


def auto_prop(budget, disk_budget=None, nt=60):
    return PropTorch(Acoustic(), (NZ, NX), DH, DT, nt, abcn=5,
                     memory=MemoryOptions("auto", budget=budget, disk_budget=disk_budget))


def test_auto_picks_full_storage_under_a_generous_budget(caplog):
    prop = auto_prop("1GiB")
    with caplog.at_level(logging.INFO, logger="sweep"):
        got = measured(prop, *call_args(60, 2))
    assert got.strategy == "full"
    assert any("strategy='auto' chose full storage" in m for m in caplog.messages)
    assert "chose full storage" in got.notes[-1]


def peaks(memory, nt=60):
    prop = PropTorch(Acoustic(), (NZ, NX), DH, DT, nt, abcn=5, memory=memory)
    return prop.estimate_memory(*call_args(nt, 2)).peak_memory_bytes


def test_auto_walks_down_the_strategies_as_the_budget_shrinks():
    nt = 300  # long enough for full storage to outgrow a few states
    full, bdy = peaks(MemoryOptions("full"), nt), peaks(MemoryOptions("boundary"), nt)
    assert bdy < full
    chosen = measured(auto_prop(full - 1, nt=nt), *call_args(nt, 2))
    assert chosen.strategy.startswith("boundary(gpu") and chosen.peak_memory_bytes <= full - 1
    # Below boundary saving and every chunk length: Revolve with the most states that fit.
    revolve1 = peaks(MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=1)), nt)
    budget = revolve1 + 3 * (peaks(MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=2)), nt) - revolve1)
    assert budget < bdy
    got = measured(auto_prop(budget, nt=nt), *call_args(nt, 2))
    count = int(re.search(r"chose Revolve checkpointing \(count=(\d+)\)", " ".join(got.notes)).group(1))
    assert got.strategy == f"ckpt-recursive({count})" and count == 4 and got.peak_memory_bytes <= budget
    # A disk budget admits boundary saving staged to disk before Revolve.
    got = measured(auto_prop(budget, disk_budget="10MiB", nt=nt), *call_args(nt, 2))
    assert got.strategy.startswith("boundary(disk") and got.peak_memory_bytes <= budget
    assert not got.files or all(not __import__("os").path.exists(f) for f in got.files)


def test_auto_error_names_the_smallest_budget_that_works():
    with pytest.raises(ValueError, match="smallest budget that works is") as err:
        auto_prop(1000).estimate_memory(*call_args(60, 2))
    assert "gradient_interval=k" in str(err.value)  # the approximate option 'auto' never takes by itself
    smallest = int(re.search(r"\((\d+) bytes", str(err.value)).group(1))
    got = measured(auto_prop(smallest), *call_args(60, 2))
    assert got.peak_memory_bytes <= smallest and got.strategy == "ckpt-recursive(1)"
    with pytest.raises(ValueError, match="no exact strategy fits"):
        auto_prop(smallest - 1).estimate_memory(*call_args(60, 2))


def test_auto_with_a_tight_budget_and_disk_goes_multistage_or_staged():
    staged = PropTorch(Acoustic(), (NZ, NX), DH, DT, 60, abcn=5, memory=MemoryOptions("boundary", boundary=BoundaryOptions("disk")))
    staged_peak = staged.estimate_memory(*call_args(60, 2)).peak_memory_bytes
    revolve1 = peaks(MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=1)))
    budget = max(staged_peak, revolve1)
    got = measured(auto_prop(budget, disk_budget="64MiB"), *call_args(60, 2))
    assert got.peak_memory_bytes <= budget and got.peak_bytes.get("disk", 0) <= 64 * 2**20
    assert got.strategy.startswith("boundary(disk") or "disk" in got.strategy


def test_budget_options_are_validated():
    assert parse_bytes("b", "512MiB") == 512 * 2**20 and parse_bytes("b", "1.5 GB") == 1_500_000_000
    assert MemoryOptions("auto", budget="8MiB").budget == 8 * 2**20
    # Without budget=, the plan takes what is available (tests/test_guard.py); the disk only when asked.
    assert MemoryOptions("auto").budget is None and MemoryOptions("auto").disk_budget is None
    assert MemoryOptions("auto", disk_budget="available").disk_budget == "available"
    with pytest.raises(ValueError, match="MemoryOptions.disk_budget"):
        MemoryOptions("auto", disk_budget="everything")
    with pytest.raises(ValueError, match="budget and disk_budget apply to strategy='auto' only"):
        MemoryOptions("full", budget="1GiB")
    for bad in ("lots", "12 parsecs", -5, 0, True):
        with pytest.raises(ValueError, match="MemoryOptions.budget"):
            MemoryOptions("auto", budget=bad)
