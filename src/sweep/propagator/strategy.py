"""Resolving the user's memory-strategy arguments into one :class:`MemoryOptions` and a schedule."""
from __future__ import annotations

from ..memory import ChunkCheckpointing, FullStorage
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
    if m.strategy == "full":
        return ("full",)
    if m.strategy == "ckpt":
        return ("ckpt", m.ckpt.mode, m.ckpt.chunks if m.ckpt.mode == "chunk" else m.ckpt.count)
    return ("boundary", m.boundary)


def _describe(m: MemoryOptions) -> str:
    return {"full": "full storage", "ckpt": f"checkpointing {m.ckpt}", "boundary": f"boundary saving {m.boundary}"}[m.strategy]


def make_schedule(memory: MemoryOptions) -> FullStorage | ChunkCheckpointing:
    """The schedule implementing ``memory``; NotImplementedError naming an option not built yet."""
    if memory.strategy == "full":
        return FullStorage()
    if memory.strategy == "ckpt":
        if memory.ckpt.mode == "chunk":
            return ChunkCheckpointing(memory.ckpt.chunks)
        raise NotImplementedError("CkptOptions(mode='recursive') is not implemented yet; use mode='chunk'")
    raise NotImplementedError("MemoryOptions(strategy='boundary') is not implemented yet; use 'full' or 'ckpt'")
