"""Public accounting of what a propagation held, where, and how many steps it took."""
from __future__ import annotations

from dataclasses import dataclass, field

LOCATIONS = ("device", "host", "disk")
ROLES = ("stored", "staging", "working")


@dataclass(frozen=True)
class Buffer:
    """One buffer a memory strategy held.

    Attributes
    ----------
    name : str
        Its role in the strategy, e.g. ``'strips.codes'``, ``'checkpoints'``, ``'adjoint_state'``.
    location : {'device', 'host', 'disk'}
        The compute device's memory (host RAM on a CPU-only machine), host RAM, or a file.
    dtype : str
        Element type as stored (``'float32'``, ``'int8'``, ...).
    shape : tuple of int
    nbytes : int
        Exactly ``prod(shape) * itemsize``.
    role : {'stored', 'staging', 'working'}
        ``'stored'``: kept from the forward pass for the backward pass; ``'staging'``: a transfer ring
        between the computation and a store; ``'working'``: a state or block the computation walks on
        (forward, replay, rebuild and adjoint states, blocks of snapshots).
    path : str or None
        The file, for ``location='disk'``.
    """

    name: str
    location: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    role: str = "stored"
    path: str | None = None


@dataclass
class MemoryReport:
    """What one call's memory strategy held (every buffer, byte for byte) and the steps it took.

    Filled during the forward pass and completed when the backward pass finishes.

    Attributes
    ----------
    strategy : str
        e.g. ``'full'``, ``'ckpt-chunk(100)'``, ``'boundary(device, fp16)'``, ``'none'`` (nothing
        needed a gradient, nothing was stored).
    buffers : list of Buffer
        Every buffer the strategy allocated, forward and backward, in allocation order.
    forward_steps : int
        Time steps of the first forward pass.
    replayed_steps : int
        Forward time steps recomputed from checkpoints during the backward pass.
    rebuilt_steps : int
        Time steps rebuilt backwards in time from boundary strips during the backward pass.
    adjoint_steps : int
        Reverse (adjoint) time steps.
    peak_bytes : dict
        Per location, the largest number of bytes held at once by the buffers above.
    peak_memory_bytes : int
        The largest number of bytes held at once in memory (device and host together; disk excluded).
    notes : list of str
        Conventions worth knowing for this call (e.g. how a schedule counts steps).
    predicted : bool
        True for a prediction (``PropTorch.estimate_memory``): nothing ran; disk buffers have no path.
    other_bytes : int
        Predictions only: the call's arrays outside the strategy's buffers (receiver data and its
        gradient, gradient accumulators, the padded model): with ``peak_memory_bytes`` an estimate of
        what the call adds to the process peak (:attr:`process_bytes_estimate`).
    """

    strategy: str
    buffers: list[Buffer] = field(default_factory=list)
    forward_steps: int = 0
    replayed_steps: int = 0
    rebuilt_steps: int = 0
    adjoint_steps: int = 0
    peak_bytes: dict[str, int] = field(default_factory=dict)
    peak_memory_bytes: int = 0
    notes: list[str] = field(default_factory=list)
    predicted: bool = False
    other_bytes: int = 0
    _held: dict[str, int] = field(default_factory=dict, repr=False)

    # -- tracking (called by the stores) -------------------------------------------------------
    def track(self, buffer: Buffer, replacing: Buffer | None = None) -> Buffer:
        """Record ``buffer`` as allocated and held from now on; ``replacing``, a held buffer it grew
        from (a store whose size follows the data), is released and takes its place in the list."""
        if replacing is None:
            self.buffers.append(buffer)
        else:
            self.release(replacing)
            self.buffers[next(k for k, b in enumerate(self.buffers) if b is replacing)] = buffer
        loc = buffer.location
        self._held[loc] = self._held.get(loc, 0) + buffer.nbytes
        self.peak_bytes[loc] = max(self.peak_bytes.get(loc, 0), self._held[loc])
        in_memory = sum(v for k, v in self._held.items() if k != "disk")
        self.peak_memory_bytes = max(self.peak_memory_bytes, in_memory)
        return buffer

    def release(self, buffer: Buffer) -> None:
        """Record ``buffer`` as no longer held."""
        self._held[buffer.location] -= buffer.nbytes

    @property
    def held_bytes(self) -> dict[str, int]:
        """Bytes held now, per location (zero everywhere once the call's memory is released)."""
        return dict(self._held)

    # -- reading --------------------------------------------------------------------------------
    def _select(self, role: str | None) -> list[Buffer]:
        return [b for b in self.buffers if role is None or b.role == role]

    def bytes_by_location(self, role: str | None = None) -> dict[str, int]:
        """Bytes per location (``'device'``, ``'host'``, ``'disk'``) of the buffers with ``role`` (all if None)."""
        out: dict[str, int] = {}
        for b in self._select(role):
            out[b.location] = out.get(b.location, 0) + b.nbytes
        return out

    def bytes_by_dtype(self, role: str | None = "stored") -> dict[str, int]:
        """Bytes per stored dtype of the buffers with ``role`` (default: what was kept for the backward)."""
        out: dict[str, int] = {}
        for b in self._select(role):
            out[b.dtype] = out.get(b.dtype, 0) + b.nbytes
        return out

    @property
    def total_bytes(self) -> int:
        """Bytes of every buffer the strategy allocated (each counted once, whatever its role)."""
        return sum(b.nbytes for b in self.buffers)

    @property
    def stored_bytes(self) -> int:
        """Bytes kept from the forward pass for the backward pass."""
        return sum(b.nbytes for b in self._select("stored"))

    @property
    def staging_bytes(self) -> int:
        """Bytes of transfer rings between the computation and the stores."""
        return sum(b.nbytes for b in self._select("staging"))

    @property
    def process_bytes_estimate(self) -> int:
        """Predictions: the tracked peak in memory plus :attr:`other_bytes` (allocator slack and the
        framework's own memory not included)."""
        return self.peak_memory_bytes + self.other_bytes

    @property
    def files(self) -> list[str]:
        """The files written (all removed again once the backward pass or the graph is done)."""
        return [b.path for b in self.buffers if b.path is not None]

    @property
    def n_files(self) -> int:
        return len(self.files)

    def __str__(self) -> str:
        mib = 2**20
        where = ", ".join(f"{k} {v / mib:.2f}" for k, v in self.bytes_by_location("stored").items()) or "nothing"
        peaks = ", ".join(f"{k} {v / mib:.2f}" for k, v in self.peak_bytes.items()) or "none"
        lines = [("predicted, " if self.predicted else "") + f"strategy {self.strategy}: stored {self.stored_bytes / mib:.2f} MiB ({where}); "
                 f"staging {self.staging_bytes / mib:.2f} MiB; peak held {peaks} MiB "
                 f"(memory {self.peak_memory_bytes / mib:.2f} MiB)",
                 f"steps: forward {self.forward_steps}, replayed {self.replayed_steps}, "
                 f"rebuilt {self.rebuilt_steps}, adjoint {self.adjoint_steps}"]
        if self.predicted:
            lines.append(f"process estimate {self.process_bytes_estimate / mib:.2f} MiB (tracked peak in memory + "
                         f"the call's other arrays {self.other_bytes / mib:.2f} MiB)")
        lines += [f"  {b.name:<22s} {b.role:<8s} {b.location:<6s} {b.dtype:<8s} {str(b.shape):<26s} "
                  f"{b.nbytes / mib:10.3f} MiB" + (f"  {b.path}" if b.path else "") for b in self.buffers]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
