"""Earth models shipped with sweep (checksummed) or read from the user's files."""
from .marmousi import MARMOUSI_DH, load_marmousi, smooth_model, water_mask

__all__ = ["MARMOUSI_DH", "load_marmousi", "smooth_model", "water_mask"]
