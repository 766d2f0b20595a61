"""Error messages about a call's inputs and options: plain numbers (no NumPy reprs), ragged geometry named
as such, and a ``disk_dir`` that exists but cannot be written said to be exactly that."""
from __future__ import annotations

import errno
import os
import tempfile

import numpy as np
import pytest
import torch

from sweep.equations import Acoustic
from sweep.fwi import Survey
from sweep.messages import plain, round_down
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker

NZ, NX, DH, DT, NT = 12, 16, 5.0, 0.001, 80
SOURCES = np.array([[8, 6]])
RECEIVERS = np.array([[[0, 2], [3, 2], [6, 2]]])


def solver(**kw) -> PropTorch:
    return PropTorch(Acoustic(), (NZ, NX), kw.pop("dh", DH), DT, NT, abcn=4, impl="eager", **kw)


def call(prop: PropTorch, sources=SOURCES, receivers=RECEIVERS, requires_grad: bool = False) -> torch.Tensor:
    wavelet = ricker(np.arange(NT) * DT - 0.04, 25.0).astype(np.float32)
    vp = torch.full((NZ, NX), 2000.0, requires_grad=requires_grad)
    data = prop(wavelet, sources, receivers, [vp])
    if requires_grad:
        data.sum().backward()
    return data


def test_plain_turns_numpy_values_into_python_ones():
    assert repr(plain(np.int64(3))) == "3" and repr(plain(np.float32(0.001))) == "0.001"
    assert plain((np.int64(1), [np.float64(2.5)])) == (1, [2.5]) and plain(np.array([[1, 2]])) == [[1, 2]]
    assert plain("x") == "x" and plain(None) is None


def test_round_down_gives_the_decimal_at_or_below():
    assert repr(round_down(0.00193, 2)) == "0.0019" and round_down(2.0, 6) == 2.0   # 2.0 / 1e-5 = 199999.99...
    for x in np.random.default_rng(0).uniform(-6, 4, 1000):
        x = float(10.0 ** x)
        assert x * (1 - 1e-5) < round_down(x) <= x and float(f"{round_down(x, 3):.3g}") == round_down(x, 3)


def test_off_grid_index_is_printed_with_plain_integers():
    with pytest.raises(ValueError) as info:
        call(solver(), receivers=np.array([[[0, 2], [NX + 14, 2]]]))
    assert str(info.value).startswith(f"receivers[0, 1] = [{NX + 14}, 2] is off the grid")
    with pytest.raises(ValueError, match=r"^sources\[0, 0\] = \[8, -1\] is off the grid"):
        call(solver(), sources=np.array([[8, -1]]))


@pytest.mark.parametrize("kw, message", [
    (dict(dh=np.float32(-5.0)), "dh must be a positive finite number, got -5.0"),
    (dict(space_order=np.int64(3)), "space_order must be one of (2, 4, 6, 8), got 3"),
    (dict(free_surface=np.bool_(True)), "free_surface must be a bool, got True"),
])
def test_constructor_messages_show_numpy_scalars_as_numbers(kw, message):
    with pytest.raises(ValueError) as info:
        solver(**kw)
    assert str(info.value) == message


def test_numpy_integer_space_order_is_accepted():
    prop = solver(space_order=np.int64(6))
    assert prop.space_order == 6 and type(prop.space_order) is int and prop.radius == 3


@pytest.mark.parametrize("sources, receivers, message", [
    ([[8, 6], [5, 6]], [[[0, 2], [3, 2]], [[1, 2]]],
     "receivers must have shape (nshots, n, 2) of [x, z] indices, the same number in every shot; it is ragged: "
     "receivers[1] has length 1 but receivers[0] has length 2"),
    (SOURCES, [[[0, 2], [3]]], "receivers[0, 1] has length 1 but receivers[0, 0] has length 2"),
    (SOURCES, [[[0, 2], 3]], "receivers[0, 1] is a single value but receivers[0, 0] is a sequence"),
    ([[8, 6], [5, 6]], [np.zeros((2, 2), np.int64), np.zeros((3, 2), np.int64)],
     "receivers[1] has length 3 but receivers[0] has length 2"),
    ([[8, 6], [5, 6]], np.array([[[0, 2], [3, 2]], [[1, 2]]], dtype=object),
     "receivers[1] has length 1 but receivers[0] has length 2"),
    ([[[8, 6]], [[5, 6], [4, 6]]], np.zeros((2, 2, 2), np.int64),
     "sources must have shape (nshots, 2) or (nshots, n, 2) of [x, z] indices, the same number in every shot; it "
     "is ragged: sources[1] has length 2 but sources[0] has length 1"),
])
def test_ragged_geometry_names_the_argument_and_where(sources, receivers, message):
    with pytest.raises(ValueError) as info:
        call(solver(), sources=sources, receivers=receivers)
    assert str(info.value).endswith(message)


def test_survey_names_ragged_geometry_too():
    with pytest.raises(ValueError, match=r"sources .* it is ragged: sources\[1\] has length 2 but sources\[0\] has "
                                         r"length 1$"):
        Survey([[[1, 2]], [[1, 2], [3, 4]]], np.zeros((2, 1, 2), np.int64), torch.zeros(NT),
               torch.zeros(2, NT, 1, 1))


# -- disk_dir ------------------------------------------------------------------------------------------

def boundary_on_disk(disk_dir) -> MemoryOptions:
    return MemoryOptions("boundary", boundary=BoundaryOptions(storage="disk", disk_dir=disk_dir))


def ckpt_on_disk(disk_dir) -> MemoryOptions:
    return MemoryOptions("ckpt", ckpt=CkptOptions(storage="disk", chunks=20, disk_dir=disk_dir))


NOT_WRITABLE = r"{owner}\.disk_dir='{path}' exists but is not writable by this process{why}; give a directory it " \
               r"can create files in, or another storage"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="running as root, whom chmod 0o500 does not stop from writing; the tests below "
                           "reach the same messages by other means")
@pytest.mark.parametrize("memory, owner", [(boundary_on_disk, "BoundaryOptions"), (ckpt_on_disk, "CkptOptions")])
def test_read_only_disk_dir_is_refused_when_built(tmp_path, memory, owner):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ValueError, match=NOT_WRITABLE.format(owner=owner, path=locked, why="")):
        solver(memory=memory(locked))


@pytest.mark.parametrize("memory, owner", [(boundary_on_disk, "BoundaryOptions"), (ckpt_on_disk, "CkptOptions")])
def test_disk_dir_without_write_permission_is_refused_when_built(tmp_path, monkeypatch, memory, owner):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: os.fspath(path) != str(tmp_path) and
                        real_access(path, mode, **kw))
    with pytest.raises(ValueError, match=NOT_WRITABLE.format(owner=owner, path=tmp_path, why="")):
        solver(memory=memory(tmp_path))


@pytest.mark.parametrize("code, why", [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system")])
def test_disk_dir_that_refuses_the_calls_directory_says_it_is_not_writable(tmp_path, monkeypatch, code, why):
    """os.access can pass where mkdir fails (root on a read-only mount, a directory made read-only after the
    propagator was built): the call's own error says the same."""
    prop = solver(memory=boundary_on_disk(tmp_path))

    def refuse(*args, **kw):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(PermissionError, match=NOT_WRITABLE.format(owner="BoundaryOptions", path=tmp_path,
                                                                  why=f" \\({why}\\)")):
        call(prop, requires_grad=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_proc_is_not_writable_not_missing():
    """/proc exists and refuses new entries, even for root (mkdir says 'No such file or directory')."""
    with pytest.raises((ValueError, PermissionError), match=r"BoundaryOptions\.disk_dir='/proc' exists but is not "
                                                            r"writable by this process") as info:
        call(solver(memory=boundary_on_disk("/proc")), requires_grad=True)
    assert "No such file" not in str(info.value)


def test_disk_dir_that_is_a_file_is_not_a_directory(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"CkptOptions\.disk_dir='{path}' is not an existing directory"):
        solver(memory=ckpt_on_disk(path))
