"""A store of variable-size byte strings (ZFP's fixed-accuracy streams), in memory or on disk.

Fixed-accuracy compressed sizes depend on the data, so such a store cannot be preallocated: it holds
``count`` slots, each written once with a byte string of any length, and accounts its bytes in the
call's :class:`~sweep.memory.report.MemoryReport` as they arrive: one buffer (role ``'stored'``,
dtype ``'uint8'``, shape ``(bytes held,)``) that grows with every write, so the tracked peak follows
the real growth. In memory each slot is one uint8 tensor (on the compute device for 'gpu'/'device',
in host RAM for 'cpu'); on disk the slots are appended to one file in the workspace's private
directory with an offset index, removed with the workspace's other files.

In a dry run (``Workspace.dry``, no data) the store tracks, at creation, the ``bound`` it is given (an
upper bound of what the slots could hold) and writes nothing.
"""
from __future__ import annotations

import errno
import os

import numpy as np
import torch

from .report import Buffer
from .store import DiskStore, Part, TensorStore, Workspace


class _Growing:
    """Accounting shared by the two stores: one report buffer per store, replaced as it grows."""

    workspace: Workspace
    name: str
    location: str
    path: str | None = None

    def _account(self, nbytes: int, key: object) -> None:
        self.workspace.hold(key, Buffer(name=self.name, location=self.location, dtype="uint8", shape=(nbytes,),
                                        nbytes=nbytes, role="stored", path=self.path))
        self.held_bytes = nbytes

    @property
    def dry(self) -> bool:
        return self.workspace.dry

    def _claim(self, i: int) -> bool:
        """Check slot ``i`` may be written (once); False in a dry run, where nothing is written."""
        self._check_range(i, i + 1)
        if self.dry:
            return False
        if i in self._slot:
            raise IndexError(f"{self.name}: slot {i} written twice")
        return True


class MemoryBlobStore(TensorStore, _Growing):
    """``count`` byte strings in the compute device's memory or host RAM, one uint8 tensor each.

    It is a :class:`TensorStore` to the :class:`~sweep.memory.store.Tape` (its tensors travel through
    ``ctx.save_for_backward``): ``data`` holds the written tensors and ``parts`` one part per tensor."""

    def __init__(self, workspace: Workspace, name: str, count: int, location: str, bound: int) -> None:
        self.workspace, self.name, self.count, self.location = workspace, name, count, location
        self.parts: tuple[Part, ...] = ()
        self.data: list[torch.Tensor] = []
        self._slot: dict[int, int] = {}
        self._key = f"blobs:{id(self)}"
        self.held_bytes = 0
        self._account(bound if self.dry else 0, self._key)

    def write_blob(self, i: int, blob: bytes) -> None:
        if not self._claim(i):
            return
        t = torch.frombuffer(bytearray(blob), dtype=torch.uint8) if blob else torch.empty(0, dtype=torch.uint8)
        if self.location == "device":
            t = t.to(self.workspace.device)
        self._slot[i] = len(self.data)
        self.data.append(t)
        self.parts += (Part(f"slot{i}", (len(blob),), torch.uint8),)
        self._account(self.held_bytes + len(blob), self._key)

    def read_blob(self, i: int) -> bytes | None:
        self._check_range(i, i + 1)
        if self.dry:
            return None
        return self.data[self._slot[i]].cpu().numpy().tobytes()


class DiskBlobStore(DiskStore, _Growing):
    """``count`` byte strings appended to one file in the workspace's private directory."""

    location = "disk"

    def __init__(self, workspace: Workspace, name: str, count: int, disk_dir, option: str, bound: int) -> None:
        self.workspace, self.name, self.count, self.option = workspace, name, count, option
        self.parts = ()
        self._slot: dict[int, tuple[int, int]] = {}
        self.held_bytes = 0
        if self.dry:  # nothing on disk: only the bound is accounted
            self._key = f"blobs:{id(self)}"
            self._account(bound, self._key)
            return
        self.path = os.path.join(workspace.private_dir(disk_dir, option), f"{name}.zfp")
        self._key = self.path
        self.fd = workspace.create_file(self.path, Buffer(name=name, location="disk", dtype="uint8", shape=(0,),
                                                          nbytes=0, role="stored", path=self.path))
        self.files = [self.fd]

    def write_blob(self, i: int, blob: bytes) -> None:
        if not self._claim(i):
            return
        data, offset = memoryview(blob), self.held_bytes
        try:
            while len(data):
                written = os.pwrite(self.fd, data, offset)
                data, offset = data[written:], offset + written
        except OSError as exc:
            raise OSError(exc.errno, f"{self.option}: writing {self.name} to disk failed "
                          f"({os.strerror(exc.errno or 0)}) after {self.held_bytes} bytes; the files were "
                          "removed") from exc
        self._slot[i] = (self.held_bytes, len(blob))
        self._account(self.held_bytes + len(blob), self._key)

    def read_blob(self, i: int) -> bytes | None:
        self._check_range(i, i + 1)
        if self.dry:
            return None
        offset, n = self._slot[i]
        raw = os.pread(self.fd, n, offset)
        if len(raw) != n:
            raise OSError(errno.EIO, f"{self.name}: short read from disk ({len(raw)} of {n} bytes)")
        return raw


def blob_store(ws: Workspace, name: str, storage: str, count: int, bound: int, *, disk_dir=None,
               option: str = "storage") -> MemoryBlobStore | DiskBlobStore:
    """A store of ``count`` variable-size byte strings in ``storage`` ('gpu'/'device', 'cpu' or 'disk');
    ``bound``: the most bytes they can hold in all (what a dry run accounts)."""
    from .store import LOCATION_OF_STORAGE

    location = LOCATION_OF_STORAGE[storage]
    if location == "disk":
        return DiskBlobStore(ws, name, count, disk_dir, option, bound)
    return MemoryBlobStore(ws, name, count, location, bound)


def fixed_store(ws: Workspace, name: str, storage: str, count: int, item_bytes: int, *, pinned: bool = False,
                disk_dir=None, option: str = "storage"):
    """An ordinary preallocated store of ``count`` byte strings of at most ``item_bytes`` each (ZFP's
    fixed-rate streams: their sizes are known in advance), with the same ``write_blob``/``read_blob``."""
    store = ws.store(name, storage, [Part("zfp", (item_bytes,), torch.uint8)], count, pinned=pinned,
                     disk_dir=disk_dir, option=option)
    return FixedBlobs(store, item_bytes)


def as_blobs(store):
    """The byte-string view of a store from :func:`blob_store` or :func:`fixed_store` (a tape keeps the
    underlying stores)."""
    if hasattr(store, "read_blob"):
        return store
    return FixedBlobs(store, store.parts[0].shape[0])


def raw_store(blobs):
    """What a tape keeps of :func:`blob_store` / :func:`fixed_store`'s result."""
    return blobs.store if isinstance(blobs, FixedBlobs) else blobs


class FixedBlobs:
    """``write_blob``/``read_blob`` on an :class:`~sweep.memory.store.ArrayStore` of uint8 items (a
    blob shorter than an item is zero-padded; the ZFP records carry their own lengths)."""

    def __init__(self, store, item_bytes: int) -> None:
        self.store, self.item_bytes = store, item_bytes

    @property
    def dry(self) -> bool:
        return self.store.workspace.dry

    def write_blob(self, i: int, blob: bytes) -> None:
        if self.dry:
            return
        if len(blob) > self.item_bytes:
            raise ValueError(f"{self.store.name}: {len(blob)} bytes do not fit an item of {self.item_bytes}")
        item = np.zeros(self.item_bytes, dtype=np.uint8)
        item[:len(blob)] = np.frombuffer(blob, dtype=np.uint8)
        self.store.write(i, i + 1, [torch.from_numpy(item).unsqueeze(0)])

    def read_blob(self, i: int) -> bytes | None:
        if self.dry:
            return None
        return self.store.read(i, i + 1)[0][0].cpu().numpy().tobytes()
