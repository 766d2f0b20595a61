"""Validated option dataclasses for :class:`~sweep.propagator.torch.PropTorch`.

Every field is checked when the object is built; an option that is valid but not implemented yet
raises NotImplementedError naming it when a propagator is asked to use it (never silently ignored).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

STRATEGIES = ("full", "ckpt", "boundary")
STORAGES = ("gpu", "device", "cpu", "disk")
STORAGE_DTYPES = ("fp32", "fp16", "bf16", "int8")
CKPT_MODES = ("chunk", "recursive")


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class BoundaryOptions:
    """Boundary saving: where the per-step boundary strips live and how they are encoded.

    Parameters
    ----------
    storage : {'gpu', 'device', 'cpu', 'disk'}
        ``'gpu'``/``'device'``: the compute device's memory (host RAM on a CPU-only machine);
        ``'cpu'``: host RAM staged through a small device ring; ``'disk'``: files in ``disk_dir``.
    storage_dtype : {'fp32', 'fp16', 'bf16', 'int8'}
        Encoding of stored strips only; arithmetic stays in the model's dtype.
    transfer_interval : int
        Steps staged per transfer for ``'cpu'`` and ``'disk'``.
    pinned_memory : bool
        Page-locked host buffers for ``'cpu'`` (GPU only).
    disk_dir : path, optional
        Directory for ``'disk'`` files (default: the system temporary directory).
    """

    storage: str = "gpu"
    storage_dtype: str = "fp32"
    transfer_interval: int = 8
    pinned_memory: bool = False
    disk_dir: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        _choice("BoundaryOptions.storage", self.storage, STORAGES)
        _choice("BoundaryOptions.storage_dtype", self.storage_dtype, STORAGE_DTYPES)
        _positive_int("BoundaryOptions.transfer_interval", self.transfer_interval)
        if not isinstance(self.pinned_memory, bool):
            raise ValueError(f"BoundaryOptions.pinned_memory must be a bool, got {self.pinned_memory!r}")
        if self.disk_dir is not None and not isinstance(self.disk_dir, (str, os.PathLike)):
            raise ValueError(f"BoundaryOptions.disk_dir must be a path or None, got {self.disk_dir!r}")


@dataclass(frozen=True)
class CkptOptions:
    """Checkpointing.

    Parameters
    ----------
    mode : {'chunk', 'recursive'}
        ``'chunk'``: keep the state every ``chunks`` steps and replay one chunk at a time in backward.
        ``'recursive'``: binomial (Revolve) schedule with ``count`` snapshots.
    chunks : int
        Chunk length in time steps (nt=2000, chunks=100 keeps 20 states).
    count : int
        Number of snapshots for ``'recursive'``.
    """

    mode: str = "chunk"
    chunks: int = 100
    count: int = 8

    def __post_init__(self) -> None:
        _choice("CkptOptions.mode", self.mode, CKPT_MODES)
        _positive_int("CkptOptions.chunks", self.chunks)
        _positive_int("CkptOptions.count", self.count)


@dataclass(frozen=True)
class MemoryOptions:
    """Which memory strategy the gradient uses; see :class:`BoundaryOptions` and :class:`CkptOptions`.

    Parameters
    ----------
    strategy : {'full', 'ckpt', 'boundary'}
        ``'full'``: keep every time step's state; ``'ckpt'``: checkpointing per ``ckpt``;
        ``'boundary'``: boundary saving per ``boundary``.
    """

    strategy: str = "full"
    boundary: BoundaryOptions = field(default_factory=BoundaryOptions)
    ckpt: CkptOptions = field(default_factory=CkptOptions)

    def __post_init__(self) -> None:
        _choice("MemoryOptions.strategy", self.strategy, STRATEGIES)
        if not isinstance(self.boundary, BoundaryOptions):
            raise ValueError(f"MemoryOptions.boundary must be a BoundaryOptions, got {type(self.boundary).__name__}")
        if not isinstance(self.ckpt, CkptOptions):
            raise ValueError(f"MemoryOptions.ckpt must be a CkptOptions, got {type(self.ckpt).__name__}")


@dataclass(frozen=True)
class EagerOptions:
    """Options of the pure-PyTorch back-end.

    Parameters
    ----------
    use_compile : bool
        Run the forward time steps through ``torch.compile`` (the first call compiles: tens of
        seconds on a CPU; later calls with the same shapes reuse it).
    """

    use_compile: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.use_compile, bool):
            raise ValueError(f"EagerOptions.use_compile must be a bool, got {self.use_compile!r}")


@dataclass(frozen=True)
class CUDAOptions:
    """Options of the compiled back-end (``impl='c'``: C/OpenMP on CPU, CUDA on GPU).

    Parameters
    ----------
    memory : MemoryOptions, optional
        Memory strategy for the compiled back-end, same meaning as ``PropTorch(memory=...)``.
    """

    memory: MemoryOptions | None = None

    def __post_init__(self) -> None:
        if self.memory is not None and not isinstance(self.memory, MemoryOptions):
            raise ValueError(f"CUDAOptions.memory must be a MemoryOptions or None, got {type(self.memory).__name__}")
