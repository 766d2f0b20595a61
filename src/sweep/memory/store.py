"""Where kept bytes live. Every allocation is recorded in the call's :class:`MemoryReport`."""
from __future__ import annotations

import torch

from .report import Buffer, MemoryReport


class DeviceStore:
    """Keeps buffers in the compute device's memory (host RAM on a CPU-only machine)."""

    location = "device"

    def __init__(self, report: MemoryReport) -> None:
        self.report = report

    def allocate(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A new uninitialised buffer of ``shape`` with ``like``'s dtype and device, accounted as ``name``."""
        buf = torch.empty(shape, dtype=like.dtype, device=like.device)
        self.report.buffers.append(Buffer(name=name, location=self.location, dtype=str(like.dtype).removeprefix("torch."),
                                          shape=tuple(shape), nbytes=buf.numel() * buf.element_size()))
        return buf
