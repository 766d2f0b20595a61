"""Physics only: model and field specs, stencils, stability limits."""
from .acoustic import Acoustic, Acoustic3D
from .specs import FieldSpec, ModelSpec

__all__ = ["Acoustic", "Acoustic3D", "FieldSpec", "ModelSpec"]
