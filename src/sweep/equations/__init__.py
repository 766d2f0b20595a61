"""Physics only: model and field specs, stencils, stability limits."""
from .acoustic import Acoustic
from .specs import FieldSpec, ModelSpec

__all__ = ["Acoustic", "FieldSpec", "ModelSpec"]
