"""Physics-free memory strategies: the adjoint driver, schedules, stores, codecs and footprint accounting."""
from .boundary import BoundarySaving
from .codecs import make_codec
from .driver import propagate
from .guard import InsufficientMemoryError
from .report import Buffer, MemoryReport
from .revolve import RecursiveCheckpointing
from .schedules import ChunkCheckpointing, FullStorage
from .store import Workspace

__all__ = ["BoundarySaving", "Buffer", "ChunkCheckpointing", "FullStorage", "InsufficientMemoryError", "MemoryReport",
           "RecursiveCheckpointing", "Workspace",
           "make_codec", "propagate"]
