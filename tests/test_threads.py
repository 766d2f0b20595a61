"""The thread governor of the compiled kernels (fewer threads while the machine is oversubscribed) and the
memory layer's one-thread host work: their rules, with a fake clock and made-up measurements."""
import logging

import pytest
import torch

from sweep.memory.serial import copy_into, one_torch_thread
from sweep.propagator.threads import ThreadGovernor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def governor(clock: Clock, **kw) -> ThreadGovernor:
    return ThreadGovernor(min_share=0.7, min_backoff=0.25, max_backoff=1.0, window=0.01, clock=clock, **kw)


def test_full_count_while_threads_run_freely():
    clock = Clock()
    g = governor(clock)
    assert g.threads(4) == 4
    g.observe(4, 4, wall=0.01, cpu=0.036)  # 3.6 cores of 4
    assert g.threads(4) == 4 and not g.limited


def test_a_stall_reduces_the_count_to_the_cores_obtained_then_probes_again(caplog):
    clock = Clock()
    g = governor(clock)
    with caplog.at_level(logging.INFO, logger="sweep"):
        g.observe(4, 4, wall=0.01, cpu=0.021)  # 2.1 cores of 4: two threads' worth
    assert g.limited and g.threads(4) == 2
    assert "busy" in caplog.text
    clock.now += 0.2
    assert g.threads(4) == 2
    clock.now += 0.1  # past the first back-off (0.25 s): full count again, as a probe
    assert g.threads(4) == 4


def test_two_threads_taking_turns_on_one_core_fall_back_to_one():
    clock = Clock()
    g = governor(clock)
    g.observe(2, 2, wall=0.01, cpu=0.0105)  # 1.05 cores of 2
    assert g.threads(2) == 1


def test_back_off_doubles_while_busy_up_to_its_cap_and_resets_when_free():
    clock = Clock()
    g = governor(clock)
    waits = []
    for _ in range(5):
        g.observe(2, 2, wall=0.01, cpu=0.01)
        start = clock.now
        while g.threads(2) == 1:
            clock.now += 0.01
        waits.append(round(clock.now - start, 2))
    assert waits == [0.25, 0.5, 1.0, 1.0, 1.0]
    g.observe(2, 2, wall=0.01, cpu=0.019)  # a probe that runs freely
    assert not g.limited
    g.observe(2, 2, wall=0.01, cpu=0.01)
    start = clock.now
    while g.threads(2) == 1:
        clock.now += 0.01
    assert round(clock.now - start, 2) == 0.25


def test_calls_are_judged_over_a_window_not_one_by_one():
    clock = Clock()
    g = governor(clock)
    g.observe(2, 2, wall=0.004, cpu=0.001)  # one call held up (a hypervisor pause, page faults) ...
    g.observe(2, 2, wall=0.008, cpu=0.0165)  # ... among calls that run freely: 1.33 cores over the window
    assert not g.limited and g.threads(2) == 2
    g.observe(2, 2, wall=0.006, cpu=0.006)
    assert not g.limited  # the window is not full yet
    g.observe(2, 2, wall=0.006, cpu=0.006)
    assert g.limited and g.threads(2) == 1


def test_single_thread_and_disabled_calls_are_not_judged():
    clock = Clock()
    g = governor(clock)
    g.observe(1, 2, wall=0.05, cpu=0.001)  # one thread cannot be oversubscribed by itself
    assert not g.limited and g.threads(2) == 2
    off = governor(clock, enabled=False)
    off.observe(2, 2, wall=0.05, cpu=0.05)
    assert off.threads(2) == 2


def test_a_reduced_count_that_runs_freely_stays_until_the_probe():
    clock = Clock()
    g = governor(clock)
    g.observe(8, 8, wall=0.01, cpu=0.03)
    assert g.threads(8) == 3
    g.observe(3, 8, wall=0.01, cpu=0.029)  # the reduced count runs freely: keep it until the back-off ends
    assert g.threads(8) == 3
    clock.now += 0.3
    assert g.threads(8) == 8


def test_one_torch_thread_restores_the_count_even_on_error():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError):
            with one_torch_thread():
                assert torch.get_num_threads() == 1
                raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
        with one_torch_thread("meta"):  # not the CPU: nothing to change
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_copy_into_copies_host_tensors_on_one_thread(monkeypatch):
    threads_seen = []
    original = torch.Tensor.copy_

    def spy(self, src, *args, **kwargs):
        threads_seen.append(torch.get_num_threads())
        return original(self, src, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "copy_", spy)
    src = torch.randn(3, 50, 70)
    dst = torch.empty_like(src)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        copy_into(dst, src)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert torch.equal(dst, src) and threads_seen == [1] and after == 2


@pytest.mark.parametrize("first, env, expected", [("sweep", {}, "PASSIVE"), ("torch", {}, None),
                                                  ("sweep", {"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),
                                                  ("sweep", {"GOMP_SPINCOUNT": "1000"}, None)])
def test_import_sets_a_passive_openmp_wait_policy_only_when_it_can_and_nobody_chose(first, env, expected):
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = f"import {first}, sweep, os; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == str(expected)


def test_eager_blocks_run_on_the_governors_count_and_report_to_it(monkeypatch):
    import sweep.propagator.threads as threads_module

    clock = Clock()
    g = governor(clock)
    seen = []
    real_observe = g.observe
    monkeypatch.setattr(g, "observe", lambda *a, **kw: (seen.append(a), real_observe(*a, **kw)))
    monkeypatch.setattr(threads_module, "TORCH_GOVERNOR", g)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threads_module.governed_torch_threads(torch.device("cpu")):
            assert torch.get_num_threads() == 2
        g.observe(2, 2, wall=0.05, cpu=0.05)  # a stall: the next block runs on one thread
        seen.clear()
        with threads_module.governed_torch_threads(torch.device("cpu")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2 and [s[:2] for s in seen] == [(1, 2)]
        with pytest.raises(RuntimeError):
            with threads_module.governed_torch_threads(torch.device("cpu")):
                raise RuntimeError("boom")
        assert torch.get_num_threads() == 2  # restored, even on an error
        with threads_module.governed_torch_threads(torch.device("meta")):  # not the CPU: left alone
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
