"""Devices: an unusable device is refused in one line before anything is built on it, and ``impl=None``
picks the back-end that runs on the equation's device.

This machine may have no GPU: the CUDA-less tests run where CUDA is unusable, and the choice of back-end
off the CPU is tested with ``torch.device('cuda')`` objects (which need no GPU) and, end to end through
``PropTorch``, with the ``'meta'`` device, which every torch build has and which is not the CPU either.
"""
from __future__ import annotations

import logging

import pytest
import torch

from sweep.devices import DeviceUnavailableError
from sweep.equations import Acoustic
from sweep.propagator import torch as torch_mod
from sweep.propagator.setup import on_device
from sweep.propagator.torch import PropTorch, choose_impl

NZ, NX, DH, DT, NT = 12, 16, 5.0, 0.001, 80
cuda_usable = torch.cuda.is_available() and torch.cuda.device_count() > 0


def compiled_available() -> bool:
    from sweep.propagator.c import library_available

    return bool(library_available())


@pytest.mark.skipif(cuda_usable, reason="CUDA is usable here: Acoustic(device='cuda') is valid")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda", 1)])
def test_acoustic_on_cuda_without_cuda_says_so_in_one_line(device):
    with pytest.raises(DeviceUnavailableError) as info:
        Acoustic(device=device)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"device={str(torch.device(device))!r}: ")
    assert ("CUDA is not available in this torch build" in message) or ("no CUDA device is visible" in message)
    assert "use device='cpu'" in message


def test_acoustic_on_a_cuda_build_with_no_visible_gpu(monkeypatch):
    """A CUDA build of torch on a machine (or CUDA_VISIBLE_DEVICES) that shows no GPU."""
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(DeviceUnavailableError, match=r"^device='cuda': this torch build has CUDA but no CUDA device "
                                                     r"is visible .*; use device='cpu'$"):
        Acoustic(device="cuda")


def test_acoustic_device_names_are_checked():
    with pytest.raises(ValueError, match=r"device='gpu' is not a device torch knows"):
        Acoustic(device="gpu")
    assert Acoustic().device == torch.device("cpu") and Acoustic("meta").device == torch.device("meta")


@pytest.fixture
def fresh_log(monkeypatch, caplog):
    """The once-per-process INFO line not yet logged, and the 'sweep' logger captured at INFO."""
    monkeypatch.setattr(torch_mod, "_logged_off_cpu", False)
    caplog.set_level(logging.INFO, logger="sweep")
    return caplog


def test_default_impl_off_the_cpu_is_eager_with_one_info_line(fresh_log):
    for device in (torch.device("cuda"), torch.device("cuda", 1), torch.device("meta")):
        assert choose_impl(None, device) == "eager"
    lines = [r for r in fresh_log.records if r.name == "sweep"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert lines[0].getMessage() == ("impl=None on device cuda: the compiled back-end runs on the CPU only; "
                                     "using impl='eager'")


def test_default_impl_on_the_cpu_is_unchanged(fresh_log):
    assert choose_impl(None, torch.device("cpu")) == ("c" if compiled_available() else "eager")
    assert choose_impl("eager", torch.device("cuda")) == "eager"
    assert [r for r in fresh_log.records if r.name == "sweep"] == []


def test_impl_c_off_the_cpu_is_refused_when_the_propagator_is_built():
    with pytest.raises(ValueError, match=r"^impl='c' runs on the CPU only, but the equation's device is cuda:0; "
                                         r"use impl='eager', or impl=None to choose by device$"):
        choose_impl("c", torch.device("cuda:0"))
    with pytest.raises(ValueError, match=r"impl='c' runs on the CPU only, but the equation's device is meta"):
        PropTorch(Acoustic(device="meta"), (NZ, NX), DH, DT, NT, impl="c")


def test_propagator_on_another_device_than_the_cpu_defaults_to_eager(fresh_log):
    """Through ``PropTorch.__init__``: the equation's device, not the build, decides."""
    assert PropTorch(Acoustic(device="meta"), (NZ, NX), DH, DT, NT).impl == "eager"
    assert any("using impl='eager'" in r.getMessage() for r in fresh_log.records)
    assert PropTorch(Acoustic(), (NZ, NX), DH, DT, NT).impl == ("c" if compiled_available() else "eager")


def test_models_on_the_current_cuda_device_match_an_equation_on_cuda():
    """Acoustic(device='cuda') and models made with .cuda() (which report cuda:0) belong together."""
    cuda, cuda0, cuda1 = torch.device("cuda"), torch.device("cuda:0"), torch.device("cuda:1")
    assert on_device(cuda0, cuda) and on_device(cuda1, cuda) and on_device(cuda0, cuda0)
    assert not on_device(cuda1, cuda0) and not on_device(torch.device("cpu"), cuda)
    assert not on_device(cuda0, torch.device("cpu")) and not on_device(torch.device("meta"), torch.device("cpu"))
