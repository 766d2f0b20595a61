"""Resolving the user's memory-strategy arguments into one :class:`MemoryOptions` and a schedule."""
from __future__ import annotations

from ..memory import BoundarySaving, ChunkCheckpointing, FullStorage, RecursiveCheckpointing, make_codec
from ..memory.store import check_disk_dir
from .options import CkptOptions, CUDAOptions, MemoryOptions


def resolve_memory(impl: str, memory: MemoryOptions | None, use_ckpt: bool | None, ckpt_chunks: int,
                   cuda_options: CUDAOptions | None) -> MemoryOptions:
    """The one strategy the explicit choices agree on, or the back-end's default (chunk checkpointing).

    ``memory=`` is canonical; ``use_ckpt=True`` means chunk checkpointing with ``ckpt_chunks``,
    ``use_ckpt=False`` full storage; ``cuda_options.memory`` applies to ``impl='c'``. Two explicit
    choices that differ raise ValueError naming both.
    """
    choices: list[tuple[str, MemoryOptions]] = []
    if memory is not None:
        choices.append(("memory", memory))
    if use_ckpt is not None:
        from_flag = (MemoryOptions(strategy="ckpt", ckpt=CkptOptions(mode="chunk", chunks=ckpt_chunks))
                     if use_ckpt else MemoryOptions(strategy="full"))
        choices.append((f"use_ckpt={use_ckpt}", from_flag))
    if cuda_options is not None and cuda_options.memory is not None:
        if impl != "c":
            raise ValueError(f"cuda_options.memory applies to impl='c' only, but impl={impl!r}; use memory= instead")
        choices.append(("cuda_options.memory", cuda_options.memory))
    for name, option in choices[1:]:
        if _key(option) != _key(choices[0][1]):
            raise ValueError(f"conflicting memory strategies: {choices[0][0]} asks for {_describe(choices[0][1])} "
                             f"but {name} asks for {_describe(option)}")
    if choices:
        return choices[0][1]
    return MemoryOptions(strategy="ckpt", ckpt=CkptOptions(mode="chunk", chunks=ckpt_chunks))


def _key(m: MemoryOptions) -> tuple:
    if m.strategy in ("full", "auto"):
        return (m.strategy, m.budget, m.disk_budget)
    c = m.ckpt
    if m.strategy == "ckpt":
        size = c.chunks if c.mode == "chunk" else (c.count, c.disk_count)
        return ("ckpt", c.mode, size, c.storage, c.disk_dir, c.storage_dtype, c.zfp_tolerance, c.zfp_rate)
    return ("boundary", m.boundary)


def _describe(m: MemoryOptions) -> str:
    return {"full": "full storage", "ckpt": f"checkpointing {m.ckpt}", "boundary": f"boundary saving {m.boundary}",
            "auto": f"strategy='auto' with budget {m.budget or 'what is available'}"}[m.strategy]


def _check_disk_dir(option: str, storage: str, disk_dir) -> None:
    if storage == "disk" and disk_dir is not None:
        check_disk_dir(option, disk_dir)


def make_schedule(memory: MemoryOptions) -> FullStorage | ChunkCheckpointing | RecursiveCheckpointing | BoundarySaving | None:
    """The schedule implementing ``memory`` (disk directories are checked here, once); None for
    ``'auto'``, which is planned per call shape."""
    if memory.strategy == "auto":
        return None
    if memory.strategy == "full":
        return FullStorage()
    if memory.strategy == "ckpt":
        c = memory.ckpt
        _check_disk_dir("CkptOptions", "disk" if c.disk_count else c.storage, c.disk_dir)
        if c.mode == "chunk":
            codec = make_codec("zfp", c.zfp_tolerance, c.zfp_rate) if c.storage_dtype == "zfp" else None
            return ChunkCheckpointing(c.chunks, c.storage, c.disk_dir, codec=codec)
        return RecursiveCheckpointing(c.count, c.storage, c.disk_count, c.disk_dir)
    b = memory.boundary
    _check_disk_dir("BoundaryOptions", b.storage, b.disk_dir)
    return BoundarySaving(b.storage, make_codec(b.storage_dtype, b.zfp_tolerance, b.zfp_rate), b.transfer_interval,
                          b.pinned_memory, b.disk_dir, skip_zero_strips=b.skip_zero_strips)
