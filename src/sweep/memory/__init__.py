"""Physics-free memory strategies: the adjoint driver, schedules, stores and footprint accounting."""
from .driver import propagate
from .report import Buffer, MemoryReport
from .schedules import ChunkCheckpointing, FullStorage

__all__ = ["Buffer", "ChunkCheckpointing", "FullStorage", "MemoryReport", "propagate"]
