"""Where kept bytes live: the compute device, host RAM, or files on disk.

An :class:`ArrayStore` holds ``count`` items, each made of a fixed list of *parts* (name, shape,
dtype): ``nt`` steps of encoded boundary strips, or ``C`` checkpointed states. It is written and read
by ranges of items, in any order. Every byte goes through the call's :class:`Workspace`, which records
it in the call's :class:`~sweep.memory.report.MemoryReport` and owns the files, so that nothing is
left behind: files are removed when the workspace is closed (after the backward pass, on an error or
an interrupt) or, failing that, when it is garbage-collected (the graph was dropped without a
backward pass).
"""
from __future__ import annotations

import errno
import math
import os
import tempfile
import warnings
import weakref
from dataclasses import dataclass
from typing import Sequence

import torch

from .report import Buffer, MemoryReport
from .serial import copy_into

#: Public location names of the option values: 'gpu' and 'device' are the compute device's memory.
LOCATION_OF_STORAGE = {"gpu": "device", "device": "device", "cpu": "host", "disk": "disk"}


@dataclass(frozen=True)
class Part:
    """One component of a stored item: ``shape`` elements of ``dtype`` per item."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def item_bytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class ArrayStore:
    """``count`` items of ``parts``, written and read by ranges ``[i0, i1)``."""

    location = "device"

    def __init__(self, workspace: "Workspace", name: str, parts: Sequence[Part], count: int) -> None:
        self.workspace, self.name, self.parts, self.count = workspace, name, tuple(parts), count

    def _label(self, part: Part) -> str:
        """The report's name of ``part``'s buffer (the store's own name when it has one part)."""
        return f"{self.name}.{part.name}" if len(self.parts) > 1 else self.name

    def _check_range(self, i0: int, i1: int) -> None:
        if not 0 <= i0 < i1 <= self.count:
            raise IndexError(f"{self.name}: items [{i0}, {i1}) outside [0, {self.count})")

    def write(self, i0: int, i1: int, values: Sequence[torch.Tensor]) -> None:
        """Store ``values[k]`` (shape ``(i1 - i0, *parts[k].shape)``) as items ``i0 .. i1 - 1``."""
        raise NotImplementedError

    def read(self, i0: int, i1: int) -> list[torch.Tensor]:
        """Items ``i0 .. i1 - 1`` of every part, on the compute device (views where possible: do not
        write into them)."""
        raise NotImplementedError


class TensorStore(ArrayStore):
    """Items in one tensor per part, in the compute device's memory or host RAM."""

    def __init__(self, workspace: "Workspace", name: str, parts: Sequence[Part], count: int, location: str,
                 pinned: bool = False) -> None:
        super().__init__(workspace, name, parts, count)
        self.location = location
        device = workspace.device if location == "device" else torch.device("cpu")
        self.data = [workspace.allocate(self._label(p), (count, *p.shape), p.dtype, location, "stored", device=device,
                                        pinned=pinned) for p in self.parts]

    def write(self, i0: int, i1: int, values: Sequence[torch.Tensor]) -> None:
        self._check_range(i0, i1)
        for buf, v in zip(self.data, values):
            copy_into(buf[i0:i1], v)

    def read(self, i0: int, i1: int) -> list[torch.Tensor]:
        self._check_range(i0, i1)
        dev = self.workspace.device
        return [buf[i0:i1] if buf.device == dev else buf[i0:i1].to(dev, non_blocking=True) for buf in self.data]


class DiskStore(ArrayStore):
    """Items in one file per part, inside the workspace's private directory; read and written at
    item offsets (so reverse-order reads and checkpoint slots work alike)."""

    location = "disk"

    def __init__(self, workspace: "Workspace", name: str, parts: Sequence[Part], count: int,
                 disk_dir: str | os.PathLike | None, option: str) -> None:
        super().__init__(workspace, name, parts, count)
        self.option = option
        self.files = []
        if workspace.dry:  # a prediction: account for the files, create none
            for p in self.parts:
                workspace.hold(f"{name}/{p.name}", Buffer(name=self._label(p), location="disk", dtype=_dtype_name(p.dtype),
                                                         shape=(count, *p.shape), nbytes=p.item_bytes * count,
                                                         role="stored"))
            return
        # The free space is the memory guard's to check, for all of the call's files at once, before the
        # call allocates anything (sweep.memory.guard); a disk that fills anyway raises in write().
        directory = workspace.private_dir(disk_dir, option)
        for p in self.parts:
            path = os.path.join(directory, f"{self._label(p)}.bin")
            buffer = Buffer(name=self._label(p), location="disk",
                            dtype=_dtype_name(p.dtype), shape=(count, *p.shape), nbytes=p.item_bytes * count,
                            role="stored", path=path)
            fd = workspace.create_file(path, buffer)
            self.files.append(fd)

    def write(self, i0: int, i1: int, values: Sequence[torch.Tensor]) -> None:
        self._check_range(i0, i1)
        if self.workspace.dry:
            return
        for fd, p, v in zip(self.files, self.parts, values):
            data = memoryview(v.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy())
            offset = i0 * p.item_bytes
            try:
                while len(data):  # pwrite may write less than asked
                    written = os.pwrite(fd, data, offset)
                    data, offset = data[written:], offset + written
            except OSError as exc:
                raise OSError(exc.errno, f"{self.option}: writing {self.name} to disk failed "
                              f"({os.strerror(exc.errno or 0)}); it needs {p.item_bytes * self.count} bytes "
                              f"per part; the files were removed") from exc

    def read(self, i0: int, i1: int) -> list[torch.Tensor]:
        self._check_range(i0, i1)
        if self.workspace.dry:
            return [torch.empty((i1 - i0, *p.shape), dtype=p.dtype, device="meta") for p in self.parts]
        out = []
        for fd, p in zip(self.files, self.parts):
            raw = bytearray((i1 - i0) * p.item_bytes)
            got = os.preadv(fd, [raw], i0 * p.item_bytes)
            if got != len(raw):
                raise OSError(errno.EIO, f"{self.name}: short read from disk ({got} of {len(raw)} bytes)")
            t = torch.frombuffer(raw, dtype=torch.uint8).view(p.dtype).reshape(i1 - i0, *p.shape)
            out.append(t.to(self.workspace.device))
        return out


def _remove(files: list[tuple[int, str]], dirs: list[str]) -> None:
    """Close and delete exactly the files and directories a workspace created (never anything else)."""
    while files:
        fd, path = files.pop()
        try:
            os.close(fd)
        except OSError:
            pass
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    while dirs:
        try:
            os.rmdir(dirs.pop())
        except OSError:  # not empty: someone else put a file there; leave it
            pass


#: Why creating a directory in an existing one failed, for the errors that mean it is not writable
#: (ENOENT: a pseudo file system such as /proc, which has the directory but takes no new entries).
_NOT_WRITABLE = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                 errno.EROFS: "read-only file system", errno.ENOENT: "the file system takes no new entries"}


def _not_writable(owner: str, path: str, reason: str | None = None) -> str:
    why = f" ({reason})" if reason else ""
    return (f"{owner}.disk_dir={path!r} exists but is not writable by this process{why}; give a directory it can "
            "create files in, or another storage")


def check_disk_dir(owner: str, disk_dir: str | os.PathLike) -> str:
    """``disk_dir`` as a string, after checking that it is an existing directory this process may create
    files in.

    Raises
    ------
    ValueError
        It is not an existing directory, or not writable; the message names ``{owner}.disk_dir``.
    """
    path = os.fspath(disk_dir)
    if not os.path.isdir(path):
        raise ValueError(f"{owner}.disk_dir={path!r} is not an existing directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(_not_writable(owner, path))
    return path


def new_private_dir(disk_dir: str | os.PathLike | None, owner: str) -> str:
    """A new private directory (``sweep-XXXXXXXX``) inside ``disk_dir`` or the system temporary directory.

    Raises
    ------
    ValueError, PermissionError, OSError
        ``disk_dir`` is not an existing directory, or takes no new entries; the message names
        ``{owner}.disk_dir``.
    """
    parent = check_disk_dir(owner, tempfile.gettempdir() if disk_dir is None else disk_dir)
    try:
        return tempfile.mkdtemp(prefix="sweep-", dir=parent)
    except OSError as exc:
        # check_disk_dir's os.access passes for root, and for pseudo file systems that refuse mkdir anyway.
        if exc.errno in _NOT_WRITABLE:
            raise PermissionError(_not_writable(owner, parent, _NOT_WRITABLE[exc.errno])) from exc
        raise OSError(exc.errno, f"{owner}.disk_dir={parent!r}: cannot create a directory there "
                      f"({exc.strerror})") from exc


_warned_pinned = False


class Workspace:
    """Every buffer of one propagation call's strategy: allocates it, tracks it in ``report`` and
    releases it; owns the call's private disk directory and files.

    Parameters
    ----------
    report : MemoryReport
    device : torch.device
        The compute device.
    dry : bool
        A prediction (``PropTorch.estimate_memory``): every buffer is accounted for exactly as in a real
        run, but tensors live on the ``'meta'`` device (no memory) and disk stores create no files.
    """

    def __init__(self, report: MemoryReport, device: torch.device, dry: bool = False) -> None:
        self.dry = dry
        self.report, self.device = report, torch.device("meta") if dry else device
        self._held: dict[int | str, Buffer] = {}  # by id() of a tensor, or by path of a file
        self._files: list[tuple[int, str]] = []
        self._dirs: list[str] = []
        self.closed = False
        self._finalizer = weakref.finalize(self, _remove, self._files, self._dirs)

    # -- in-memory buffers ---------------------------------------------------------------------
    def allocate(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, location: str = "device",
                 role: str = "working", device: torch.device | None = None, pinned: bool = False) -> torch.Tensor:
        """A new uninitialised tensor, tracked as held until :meth:`free`."""
        global _warned_pinned
        device = self.device if self.dry or device is None else device
        if self.dry:
            pinned = False
        if pinned and not torch.cuda.is_available():
            if not _warned_pinned:
                warnings.warn("pinned_memory=True has no effect without CUDA; using ordinary host memory",
                              stacklevel=4)
                _warned_pinned = True
            pinned = False
        t = torch.empty(shape, dtype=dtype, device=device, pin_memory=pinned)
        return self.adopt(name, t, location, role)

    def adopt(self, name: str, t: torch.Tensor, location: str = "device", role: str = "working") -> torch.Tensor:
        """Track an existing tensor as held until :meth:`free`."""
        buf = self.report.track(Buffer(name=name, location=location, dtype=_dtype_name(t.dtype),
                                       shape=tuple(t.shape), nbytes=t.numel() * t.element_size(), role=role))
        self._held[id(t)] = buf
        return t

    def free(self, *tensors: torch.Tensor) -> None:
        """Record ``tensors`` as released (the caller drops its references)."""
        for t in tensors:
            self.report.release(self._held.pop(id(t)))

    # -- stores --------------------------------------------------------------------------------
    def store(self, name: str, storage: str, parts: Sequence[Part], count: int, *, pinned: bool = False,
              disk_dir: str | os.PathLike | None = None, option: str = "storage") -> ArrayStore:
        """An :class:`ArrayStore` of ``count`` items in ``storage`` ('gpu'/'device', 'cpu' or 'disk')."""
        location = LOCATION_OF_STORAGE[storage]
        if location == "disk":
            return DiskStore(self, name, parts, count, disk_dir, option)
        return TensorStore(self, name, parts, count, location, pinned=pinned)

    # -- files ---------------------------------------------------------------------------------
    def private_dir(self, disk_dir: str | os.PathLike | None, option: str) -> str:
        """This call's own directory (``sweep-XXXXXXXX``) inside ``disk_dir`` or the system temp dir."""
        if self._dirs:
            return self._dirs[0]
        path = new_private_dir(disk_dir, option.rsplit(".", 1)[0])  # 'BoundaryOptions.storage' -> 'BoundaryOptions'
        self._dirs.append(path)
        return path

    def create_file(self, path: str, buffer: Buffer) -> int:
        """Create ``path`` (which must not exist) for ``buffer``; returns its descriptor."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self._files.append((fd, path))
        self.hold(path, buffer)
        return fd

    def hold(self, key: str, buffer: Buffer) -> None:
        """Track ``buffer`` (held under ``key``, e.g. its file) until the workspace closes; a buffer
        already held under ``key`` (a store that grows) is replaced by it."""
        self._held[key] = self.report.track(buffer, replacing=self._held.get(key))

    def close(self) -> None:
        """Release every buffer still held and remove the files and the private directory."""
        for buf in self._held.values():
            self.report.release(buf)
        self._held.clear()
        self._finalizer()
        self.closed = True


class Tape:
    """What a schedule's forward part hands its reverse part: named stores.

    The in-memory stores' tensors travel through ``ctx.save_for_backward`` (:meth:`tensors` /
    :meth:`attach` / :meth:`detach`), so that autograd's lifetime rules free them after a backward pass
    that does not retain the graph; disk stores stay with the workspace that owns their files.
    """

    def __init__(self, **stores: ArrayStore) -> None:
        self.stores = stores

    def __getitem__(self, name: str) -> ArrayStore:
        return self.stores[name]

    @property
    def _in_memory(self) -> list[TensorStore]:
        return [s for s in self.stores.values() if isinstance(s, TensorStore)]

    @property
    def on_disk(self) -> bool:
        return any(isinstance(s, DiskStore) for s in self.stores.values())

    def tensors(self) -> list[torch.Tensor]:
        return [t for s in self._in_memory for t in s.data]

    def detach(self) -> None:
        """Drop the stores' own references to their tensors."""
        for s in self._in_memory:
            s.data = None

    def attach(self, tensors: Sequence[torch.Tensor]) -> None:
        """Give the stores back their tensors (in :meth:`tensors` order)."""
        it = iter(tensors)
        for s in self._in_memory:
            s.data = [next(it) for _ in s.parts]
