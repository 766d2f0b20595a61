"""Validated option dataclasses for :class:`~sweep.propagator.torch.PropTorch`.

Every field is checked when the object is built (paths are checked when a propagator is built).
"""
from __future__ import annotations

import numbers

import os
from dataclasses import dataclass, field

STRATEGIES = ("full", "ckpt", "boundary", "auto")
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
STORAGES = ("gpu", "device", "cpu", "disk")
STORAGE_DTYPES = ("fp64", "fp32", "fp16", "bf16", "int8")
CKPT_MODES = ("chunk", "recursive")


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def parse_bytes(name: str, value: object) -> int:
    """Bytes from an int or a string such as ``'512MiB'``, ``'1.5 GB'``, ``'4096'`` (KiB/MiB/GiB/TiB are
    powers of 1024, kB/MB/GB/TB of 1000)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number of bytes or a string like '512MiB', got {value!r}")
    if isinstance(value, int):
        number, unit = value, ""
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        digits = len(text) - len(text.lstrip("0123456789.eE+"))
        number_text, unit = text[:digits], text[digits:].lower()
        try:
            number = float(number_text)
        except ValueError:
            number = None
        if number is None or unit not in _UNITS:
            raise ValueError(f"{name} must be a number of bytes or a string like '512MiB' (units B, kB, MB, GB, TB, "
                             f"KiB, MiB, GiB, TiB), got {value!r}")
    else:
        raise ValueError(f"{name} must be a number of bytes or a string like '512MiB', got {value!r}")
    nbytes = int(number * _UNITS[unit])
    if nbytes <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return nbytes


def _disk_dir(name: str, value: object) -> None:
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a path or None, got {value!r}")


def _zfp_fields(owner: str, storage_dtype: str | None, tolerance: object, rate: object) -> None:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 < tolerance < 1:
        raise ValueError(f"{owner}.zfp_tolerance must be a number in (0, 1) (relative to each compressed "
                         f"array's largest |value|), got {tolerance!r}")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 1 <= rate <= 64:
            raise ValueError(f"{owner}.zfp_rate must be None or a number of bits per value in [1, 64], got {rate!r}")
        if storage_dtype != "zfp":
            raise ValueError(f"{owner}.zfp_rate applies to storage_dtype='zfp' only, got storage_dtype={storage_dtype!r}")


@dataclass(frozen=True)
class BoundaryOptions:
    """Boundary saving: where the per-step boundary strips live and how they are encoded.

    Each step keeps the wavefield on the physical cells within one stencil radius ``r`` of an
    absorbing edge (no strip along a free surface); the last two wavefields are kept too, and the
    backward pass rebuilds the wavefield backwards in time from them. Stored bytes per call:
    ``nt * nshots * cells * bytes_per_value (+ scales) + 2 * nshots * nz * nx * itemsize`` with
    ``cells = nz*nx - (nz - r*top - r*bottom) * (nx - r*left - r*right)`` (edges that absorb).

    Parameters
    ----------
    storage : {'gpu', 'device', 'cpu', 'disk'}
        ``'gpu'``/``'device'``: the compute device's memory (host RAM on a CPU-only machine);
        ``'cpu'``: host RAM, staged through a device ring of ``transfer_interval`` steps; ``'disk'``:
        files in a private ``sweep-*`` directory inside ``disk_dir``, removed after the backward pass.
    storage_dtype : {None, 'fp64', 'fp32', 'fp16', 'bf16', 'int8'}
        Encoding of the stored strips; arithmetic stays in the model's dtype. ``None`` (default): the
        model's dtype, lossless. ``'fp32'``/``'fp64'``: that dtype (lossless for a float32 model; a
        float64 model's strips are rounded to float32 by ``'fp32'``). ``'bf16'``: bfloat16 (8-bit
        mantissa). ``'fp16'``: float16 of the value divided by a float32 scale per 256 values (no
        underflow of small amplitudes). ``'int8'``: symmetric 8-bit codes with a float32 scale per 32
        values (1.125 bytes per value). ``'zfp'``: ZFP compression (``zfpy``) of each ring of
        ``transfer_interval`` steps per absorbing edge and shot, as a 2-D array (time, cells of the
        edge), in fixed-accuracy mode (``zfp_tolerance``) or fixed-rate mode (``zfp_rate``). The lossy
        ones change the gradient by a measured amount (``docs/memory.md``).
    zfp_tolerance : float
        ``'zfp'`` fixed accuracy: each value is kept within ``zfp_tolerance`` times the largest |value|
        of its compressed array (one edge, one shot, one ring), so no knowledge of the data's scale is
        needed. Sizes depend on the data; the store grows as it is written.
    zfp_rate : float, optional
        ``'zfp'`` fixed rate instead: bits per stored value (1 to 64); sizes are known in advance.
    skip_zero_strips : bool
        Lossless precursor skipping: an edge's strips are stored from the first step at which any of
        its values (any shot) is non-zero; before it the rebuild uses zeros. The gradient is
        bit-identical; it saves the steps before the wavefield reaches each edge (the far edges of a
        shallow source) at the cost of one device-to-host check per ring until every edge is reached,
        and stored bytes that depend on the data. Off by default: the bytes are then exactly the
        formula above.
    transfer_interval : int
        Steps per staging ring: one encode and one store write per ring (and per backward block);
        a multiple of 4 with ``'zfp'`` (zfp compresses blocks of 4 steps).
    pinned_memory : bool
        Page-locked host buffers for ``'cpu'`` (CUDA only; warns once and is ignored without CUDA).
    disk_dir : path, optional
        An existing directory this process can write to, for ``'disk'`` (default: the system temporary
        directory); checked when a propagator is built and again when the call creates its files there.
    """

    storage: str = "gpu"
    storage_dtype: str | None = None
    transfer_interval: int = 8
    pinned_memory: bool = False
    disk_dir: str | os.PathLike | None = None
    zfp_tolerance: float = 1e-4
    zfp_rate: float | None = None
    skip_zero_strips: bool = False

    def __post_init__(self) -> None:
        _choice("BoundaryOptions.storage", self.storage, STORAGES)
        if self.storage_dtype is not None:
            _choice("BoundaryOptions.storage_dtype", self.storage_dtype, STORAGE_DTYPES + ("zfp",))
        _positive_int("BoundaryOptions.transfer_interval", self.transfer_interval)
        _zfp_fields("BoundaryOptions", self.storage_dtype, self.zfp_tolerance, self.zfp_rate)
        if self.storage_dtype == "zfp" and self.transfer_interval % 4:
            raise ValueError("BoundaryOptions.transfer_interval must be a multiple of 4 with storage_dtype='zfp' "
                             f"(zfp compresses blocks of 4 steps), got {self.transfer_interval}")
        if not isinstance(self.skip_zero_strips, bool):
            raise ValueError(f"BoundaryOptions.skip_zero_strips must be a bool, got {self.skip_zero_strips!r}")
        if not isinstance(self.pinned_memory, bool):
            raise ValueError(f"BoundaryOptions.pinned_memory must be a bool, got {self.pinned_memory!r}")
        _disk_dir("BoundaryOptions.disk_dir", self.disk_dir)


@dataclass(frozen=True)
class CkptOptions:
    """Checkpointing: keep some full states in the forward pass, replay from them in the backward pass.

    Parameters
    ----------
    mode : {'chunk', 'recursive'}
        ``'chunk'``: keep the state every ``chunks`` steps and replay one chunk at a time.
        ``'recursive'``: optimal binomial (Revolve) schedule holding at most ``count`` states (the
        initial one included) plus one working state; with ``disk_count`` > 0, the multistage schedule
        of ``count`` states in ``storage`` and ``disk_count`` on disk (checkpoint_schedules).
    chunks : int
        Chunk length in time steps (nt=2000, chunks=100 keeps 20 states).
    count : int
        States kept in ``storage`` for ``'recursive'``.
    storage : {'gpu', 'device', 'cpu', 'disk'}
        Where the checkpoints live (same meaning as :class:`BoundaryOptions`).
    disk_count : int
        Additional states on disk for ``'recursive'`` (multistage); 0 by default.
    disk_dir : path, optional
        An existing directory this process can write to, for checkpoints on disk (default: the system
        temporary directory); checked as for :class:`BoundaryOptions`.
    storage_dtype : {None, 'zfp'}
        ``None`` (default): checkpoints kept exactly. ``'zfp'`` (``mode='chunk'`` only): lossy ZFP
        compression of each 2-D field of a checkpointed state (Kukreja et al.), fixed accuracy
        (``zfp_tolerance``) or fixed rate (``zfp_rate``), as for :class:`BoundaryOptions`; each chunk
        replays from its own decompressed state, so errors do not accumulate across chunks.
    zfp_tolerance : float
        Relative to the largest |value| of each field of each checkpoint.
    zfp_rate : float, optional
        Bits per value (fixed rate) instead.
    """

    mode: str = "chunk"
    chunks: int = 100
    count: int = 8
    storage: str = "device"
    disk_count: int = 0
    disk_dir: str | os.PathLike | None = None
    storage_dtype: str | None = None
    zfp_tolerance: float = 1e-4
    zfp_rate: float | None = None

    def __post_init__(self) -> None:
        _choice("CkptOptions.mode", self.mode, CKPT_MODES)
        _positive_int("CkptOptions.chunks", self.chunks)
        _positive_int("CkptOptions.count", self.count)
        _choice("CkptOptions.storage", self.storage, STORAGES)
        if isinstance(self.disk_count, bool) or not isinstance(self.disk_count, int) or self.disk_count < 0:
            raise ValueError(f"CkptOptions.disk_count must be an integer >= 0, got {self.disk_count!r}")
        if self.disk_count and self.mode != "recursive":
            raise ValueError("CkptOptions.disk_count applies to mode='recursive' (multistage) only")
        _disk_dir("CkptOptions.disk_dir", self.disk_dir)
        if self.storage_dtype is not None:
            _choice("CkptOptions.storage_dtype", self.storage_dtype, ("zfp",))
            if self.mode != "chunk":
                raise ValueError(f"CkptOptions.storage_dtype='zfp' supports mode='chunk' only, got mode={self.mode!r} "
                                 "(recursive checkpoints are kept exactly)")
        _zfp_fields("CkptOptions", self.storage_dtype, self.zfp_tolerance, self.zfp_rate)


@dataclass(frozen=True)
class MemoryOptions:
    """Which memory strategy the gradient uses; see :class:`BoundaryOptions` and :class:`CkptOptions`.

    Parameters
    ----------
    strategy : {'full', 'ckpt', 'boundary', 'auto'}
        ``'full'``: keep every time step's snapshot; ``'ckpt'``: checkpointing per ``ckpt``;
        ``'boundary'``: boundary saving per ``boundary``; ``'auto'``: the fastest exact strategy whose
        predicted footprint fits ``budget`` (and ``disk_budget``), chosen per call shape in this order:
        full storage, boundary saving on the device, chunk checkpointing (largest chunk that fits),
        boundary saving staged to disk, Revolve (most states that fit), multistage Revolve with disk.
        It takes ``transfer_interval`` and ``disk_dir`` from ``boundary`` and ``ckpt``. The choice and
        the reason are logged (logger ``'sweep'``, INFO) and noted in the memory report; when nothing
        fits, the error names the smallest budget that would.
    budget : int or str, optional
        ``'auto'`` only: the most bytes the strategy's buffers may hold at once in memory (device and
        host together: the predicted tracked peak), e.g. ``'512MiB'`` or ``2**29``. None (default):
        what the memory guard finds available on the compute device when the call shape is first
        planned (host RAM on a CPU, free memory on a CUDA device), less the call's other arrays
        (data, gradients, padded model); the plan's reason says how much and where it came from.
    disk_budget : int, str or 'available', optional
        ``'auto'`` only: the most bytes on disk; ``'available'``: the free space of the disk directory
        (``boundary.disk_dir`` / ``ckpt.disk_dir``, the smaller if they differ) when the call shape is
        planned; None (default): disk is not used.
    gradient_interval : int
        Gradient sampling: the model gradient's imaging sum over time steps visits only the steps
        ``n`` with ``n % gradient_interval == 0``, each weighted by ``gradient_interval`` (a rectangle
        rule standing for the steps up to the next one; the last stands for fewer when the interval does
        not divide the steps, with the same weight), and only their snapshots are kept: full storage's
        snapshots and a chunk's snapshot block shrink that many times (states do not), and Revolve and
        boundary saving skip the imaging work of the other steps. 1 (default): exact. Larger values
        approximate the model gradient (the wavelet gradient stays exact); with time sub-stepping the
        data's bandwidth allows up to the sub-step ratio (see the docs for the measured error).
        ``'auto'`` plans with it but never chooses it.
    """

    strategy: str = "full"
    boundary: BoundaryOptions = field(default_factory=BoundaryOptions)
    ckpt: CkptOptions = field(default_factory=CkptOptions)
    budget: int | str | None = None
    disk_budget: int | str | None = None  # bytes, or 'available'
    gradient_interval: int = 1

    def __post_init__(self) -> None:
        _choice("MemoryOptions.strategy", self.strategy, STRATEGIES)
        k = self.gradient_interval
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"MemoryOptions.gradient_interval must be an integer >= 1 (1: every step, exact), got {k!r}")
        object.__setattr__(self, "gradient_interval", int(k))
        if self.strategy == "auto":
            if self.budget is not None:
                object.__setattr__(self, "budget", parse_bytes("MemoryOptions.budget", self.budget))
            if self.disk_budget is not None and self.disk_budget != "available":
                object.__setattr__(self, "disk_budget", parse_bytes("MemoryOptions.disk_budget", self.disk_budget))
        elif self.budget is not None or self.disk_budget is not None:
            raise ValueError(f"MemoryOptions.budget and disk_budget apply to strategy='auto' only, "
                             f"not {self.strategy!r}")
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
    """Options of the compiled back-end (``impl='c'``: C kernels on the CPU).

    Parameters
    ----------
    memory : MemoryOptions, optional
        Memory strategy for the compiled back-end, same meaning as ``PropTorch(memory=...)``.
    """

    memory: MemoryOptions | None = None

    def __post_init__(self) -> None:
        if self.memory is not None and not isinstance(self.memory, MemoryOptions):
            raise ValueError(f"CUDAOptions.memory must be a MemoryOptions or None, got {type(self.memory).__name__}")
