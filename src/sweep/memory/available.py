"""What can be allocated now, where a call's buffers would live: host RAM, a CUDA device, a disk.

These are numbers read from the system at one instant, not reservations: every process on the node
reads the same ones, and other processes may take the memory a moment later.

Host RAM is the smaller of the kernel's ``MemAvailable`` (``/proc/meminfo``: free memory plus the page
cache and reclaimable slabs the kernel can give back without swapping) and the headroom of this
process's memory cgroup: ``memory.max - memory.current`` (cgroup v2) or ``memory.limit_in_bytes -
memory.usage_in_bytes`` (v1), the smallest over its cgroup and every ancestor up to the hierarchy's
root, since a limit set on a parent (a systemd slice, a job's allocation) bounds every child. A limit
of ``max`` is no limit. Where the system says nothing (no ``/proc/meminfo``: not Linux), host memory is
unknown (``None``) and not checked.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

import torch

#: Where cgroup hierarchies are mounted: v2 alone, or beside v1 controllers ("hybrid"); v1's memory controller.
_V2_MOUNTS = ("sys/fs/cgroup", "sys/fs/cgroup/unified")
_V1_MOUNT = "sys/fs/cgroup/memory"
_V2_FILES = ("memory.max", "memory.current")
_V1_FILES = ("memory.limit_in_bytes", "memory.usage_in_bytes")


@dataclass(frozen=True)
class Available:
    """Bytes that can be allocated in one place now, and where that number comes from.

    Attributes
    ----------
    nbytes : int
        Bytes.
    source : str
        How it was found, e.g. ``'MemAvailable in /proc/meminfo'``.
    """

    nbytes: int
    source: str


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def mem_available(root: str = "/") -> Available | None:
    """The kernel's ``MemAvailable`` (bytes) from ``<root>/proc/meminfo``; None if it is not there."""
    path = os.path.join(root, "proc/meminfo")
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(":")
        if name == "MemAvailable":
            number, *unit = value.split()
            scale = 1024 if unit == ["kB"] else 1  # the kernel writes "kB", meaning KiB
            return Available(int(number) * scale, f"MemAvailable in {path}")
    return None


def _cgroup_paths(root: str) -> tuple[str | None, str | None]:
    """This process's cgroup path in the v2 hierarchy and in v1's memory hierarchy (``/proc/self/cgroup``
    lines ``0::/path`` and ``N:...,memory,...:/path``)."""
    v2 = v1 = None
    for line in (_read(os.path.join(root, "proc/self/cgroup")) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        number, controllers, path = parts
        if number == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _headroom(mount: str, path: str, files: tuple[str, str], version: str) -> Available | None:
    """The smallest ``limit - usage`` over the cgroup at ``mount``/``path`` and its ancestors up to
    ``mount``. When the process's path is not under the mount (a container that mounts its own cgroup
    as the root), the mount itself is the process's cgroup."""
    top = os.path.normpath(mount)
    leaf = os.path.normpath(os.path.join(top, path.lstrip("/")))
    directory = leaf if os.path.isdir(leaf) else top
    best = None
    while True:
        limit, usage = (_read(os.path.join(directory, name)) for name in files)
        if limit is not None and usage is not None and limit.strip() != "max":
            try:
                room = max(0, int(limit) - int(usage))
            except ValueError:  # not a cgroup file after all: no limit known here
                room = None
            if room is not None and (best is None or room < best.nbytes):
                best = Available(room, f"cgroup {version} {files[0]} - {files[1]} of {directory}")
        if directory == top:
            return best
        directory = os.path.dirname(directory)


def cgroup_headroom(root: str = "/") -> Available | None:
    """Bytes this process's memory cgroups (v2, or v1's memory controller) still allow; None when no
    limit is set or no cgroup file is readable."""
    v2, v1 = _cgroup_paths(root)
    found = []
    if v2 is not None:
        found += [_headroom(os.path.join(root, m), v2, _V2_FILES, "v2") for m in _V2_MOUNTS]
    if v1 is not None:
        found.append(_headroom(os.path.join(root, _V1_MOUNT), v1, _V1_FILES, "v1"))
    found = [a for a in found if a is not None]
    return min(found, key=lambda a: a.nbytes) if found else None


def host_memory(root: str = "/") -> Available | None:
    """Host RAM this process can allocate now: the smaller of ``MemAvailable`` and the cgroup headroom;
    None where neither is known.

    Parameters
    ----------
    root : str
        The file-system root under which ``proc/`` and ``sys/fs/cgroup/`` are read (tests point it at
        fake files).
    """
    found = [a for a in (mem_available(root), cgroup_headroom(root)) if a is not None]
    return min(found, key=lambda a: a.nbytes) if found else None


def disk_space(directory: str | os.PathLike | None) -> Available:
    """Free bytes (for this user) on the file system of ``directory`` (None: the system temporary
    directory, where a store with ``disk_dir=None`` writes)."""
    path = tempfile.gettempdir() if directory is None else os.fspath(directory)
    return Available(shutil.disk_usage(path).free, f"free space of {path}")


def device_memory(device: torch.device) -> Available | None:
    """Bytes a CUDA ``device`` can still allocate: the driver's free memory plus what PyTorch's caching
    allocator holds unused (it hands that out first). None for other devices (not checked)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return Available(free + cached, f"torch.cuda.mem_get_info free + PyTorch's unused cache on {device}")
