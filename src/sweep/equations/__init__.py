"""Physics only: model and field specs, stencils, stability limits, grid sampling."""
from .acoustic import Acoustic, Acoustic3D
from .acoustic_vrz import AcousticVRZ, AcousticVRZ3D
from .sampling import Suggestion, suggest
from .specs import FieldSpec, ModelSpec

__all__ = ["Acoustic", "Acoustic3D", "AcousticVRZ", "AcousticVRZ3D", "FieldSpec", "ModelSpec", "Suggestion", "suggest"]
