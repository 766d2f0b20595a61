"""Public accounting of what a propagation stored and how many steps it took."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Buffer:
    """One stored buffer: its role, where it lives, its dtype, shape and size in bytes."""

    name: str
    location: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass
class MemoryReport:
    """What the last call stored (every byte the strategy kept) and the steps it took.

    Attributes
    ----------
    strategy : str
        e.g. ``'full'``, ``'ckpt-chunk(100)'``, ``'none'`` (nothing needed a gradient).
    buffers : list of Buffer
        Every buffer the strategy allocated (forward and backward), with location and size.
    forward_steps : int
        Time steps of the forward pass.
    replayed_steps : int
        Forward time steps recomputed during the backward pass.
    adjoint_steps : int
        Reverse (adjoint) time steps.
    """

    strategy: str
    buffers: list[Buffer] = field(default_factory=list)
    forward_steps: int = 0
    replayed_steps: int = 0
    adjoint_steps: int = 0

    def bytes_by_location(self) -> dict[str, int]:
        """Total stored bytes per location (``'device'``, ``'host'``, ``'disk'``)."""
        out: dict[str, int] = {}
        for b in self.buffers:
            out[b.location] = out.get(b.location, 0) + b.nbytes
        return out

    @property
    def total_bytes(self) -> int:
        return sum(b.nbytes for b in self.buffers)

    @property
    def n_files(self) -> int:
        return sum(1 for b in self.buffers if b.location == "disk")

    def __str__(self) -> str:
        lines = [f"strategy {self.strategy}: {self.total_bytes / 2**20:.2f} MiB stored; steps forward "
                 f"{self.forward_steps}, replayed {self.replayed_steps}, adjoint {self.adjoint_steps}"]
        lines += [f"  {b.name:<14s} {b.location:<6s} {b.dtype:<8s} {str(b.shape):<28s} {b.nbytes / 2**20:10.2f} MiB"
                  for b in self.buffers]
        return "\n".join(lines)
