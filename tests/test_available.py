"""What is available, read from fake /proc and cgroup files (any machine can run these) and a faked CUDA."""
import os
import tempfile

import pytest
import torch

from sweep.memory import available
from sweep.memory.available import Available

MEMINFO = "MemTotal:       24683784 kB\nMemFree:         1000000 kB\nMemAvailable:   23645464 kB\n"
MEM_AVAILABLE = 23645464 * 1024


def tree(root, files: dict) -> str:
    """Write ``files`` ({relative path: text}) under ``root``; returns root as a string."""
    for path, text in files.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(text)
    return str(root)


def test_mem_available_in_bytes(tmp_path):
    root = tree(tmp_path, {"proc/meminfo": MEMINFO})
    assert available.mem_available(root) == Available(MEM_AVAILABLE, f"MemAvailable in {root}/proc/meminfo")
    assert available.host_memory(root).nbytes == MEM_AVAILABLE  # no cgroup files: MemAvailable alone


def test_nothing_known_without_proc(tmp_path):
    assert available.host_memory(str(tmp_path)) is None  # not Linux: host memory is not checked
    assert available.mem_available(str(tmp_path)) is None and available.cgroup_headroom(str(tmp_path)) is None


def test_cgroup_v2_max_means_no_limit(tmp_path):
    root = tree(tmp_path, {"proc/meminfo": MEMINFO, "proc/self/cgroup": "0::/user.slice/job\n",
                           "sys/fs/cgroup/user.slice/job/memory.max": "max\n",
                           "sys/fs/cgroup/user.slice/job/memory.current": "123\n"})
    assert available.cgroup_headroom(root) is None
    assert available.host_memory(root).source.startswith("MemAvailable")


def test_cgroup_v2_limit_of_the_process_and_of_a_parent(tmp_path):
    root = tree(tmp_path, {"proc/meminfo": MEMINFO, "proc/self/cgroup": "0::/user.slice/job\n",
                           "sys/fs/cgroup/user.slice/job/memory.max": "1000000000\n",
                           "sys/fs/cgroup/user.slice/job/memory.current": "400000000\n"})
    got = available.host_memory(root)
    assert got.nbytes == 600_000_000 and "cgroup v2 memory.max - memory.current" in got.source
    assert got.source.endswith("user.slice/job")
    # A tighter limit on the parent slice bounds the child too.
    tree(tmp_path, {"sys/fs/cgroup/user.slice/memory.max": "700000000\n",
                    "sys/fs/cgroup/user.slice/memory.current": "650000000\n"})
    got = available.host_memory(root)
    assert got.nbytes == 50_000_000 and got.source.endswith("sys/fs/cgroup/user.slice")


def test_cgroup_v2_over_its_limit_has_no_room(tmp_path):
    root = tree(tmp_path, {"proc/meminfo": MEMINFO, "proc/self/cgroup": "0::/\n",
                           "sys/fs/cgroup/memory.max": "100\n", "sys/fs/cgroup/memory.current": "200\n"})
    assert available.host_memory(root).nbytes == 0


def test_cgroup_v1_memory_controller(tmp_path):
    cgroup = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n"
    root = tree(tmp_path, {"proc/meminfo": MEMINFO, "proc/self/cgroup": cgroup,
                           "sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": "2000000000\n",
                           "sys/fs/cgroup/memory/process_api/abc/memory.usage_in_bytes": "500000000\n",
                           # v1 writes a huge number, not 'max', for no limit: the smaller headroom wins anyway
                           "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
                           "sys/fs/cgroup/memory/memory.usage_in_bytes": "900000000\n"})
    got = available.host_memory(root)
    assert got.nbytes == 1_500_000_000 and "cgroup v1 memory.limit_in_bytes - memory.usage_in_bytes" in got.source


def test_container_that_mounts_its_own_cgroup_as_the_root(tmp_path):
    # /proc/self/cgroup names the host's path, but the container's mount holds its own cgroup's files.
    root = tree(tmp_path, {"proc/meminfo": MEMINFO, "proc/self/cgroup": "0::/docker/0123abcd\n",
                           "sys/fs/cgroup/memory.max": "3000000000\n", "sys/fs/cgroup/memory.current": "1000000000\n"})
    assert available.host_memory(root).nbytes == 2_000_000_000


def test_meminfo_smaller_than_the_cgroup_headroom(tmp_path):
    root = tree(tmp_path, {"proc/meminfo": "MemAvailable:   1000 kB\n", "proc/self/cgroup": "0::/\n",
                           "sys/fs/cgroup/memory.max": "3000000000\n", "sys/fs/cgroup/memory.current": "0\n"})
    assert available.host_memory(root) == Available(1024000, f"MemAvailable in {root}/proc/meminfo")


def test_this_machine_reads_something_sane():
    got = available.host_memory()
    if got is not None:
        assert 0 < got.nbytes < 2**60


def test_disk_space(tmp_path):
    assert available.disk_space(tmp_path).source == f"free space of {tmp_path}"
    assert available.disk_space(None).source == f"free space of {tempfile.gettempdir()}"
    assert available.disk_space(tmp_path).nbytes == os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize


def test_device_memory(monkeypatch):
    assert available.device_memory(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (5 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 3 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2 * 2**30)
    got = available.device_memory(torch.device("cuda", 0))
    assert got.nbytes == 6 * 2**30 and "mem_get_info" in got.source  # free + PyTorch's unused cache


@pytest.mark.parametrize("text", ["", "MemTotal: 5 kB\n"])
def test_meminfo_without_mem_available(tmp_path, text):
    assert available.mem_available(tree(tmp_path, {"proc/meminfo": text})) is None
