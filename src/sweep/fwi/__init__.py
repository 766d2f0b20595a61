"""Full-waveform inversion with the public propagator: misfits, shot batching, source encoding,
masks and velocity bounds, frequency continuation, shot parallelism on torch.distributed, and the
``sweep-fwi`` command (a Marmousi inversion, or with ``--model layered3d`` a small 3-D one, with
progress, resume and pictures). Models are (nz, nx) or (nz, ny, nx), locations ``[x, z]`` or
``[x, y, z]``.

It adds no physics and no memory strategy: every propagation is a :class:`PropTorch` call, so the
memory strategy chosen there is the inversion's.
"""
from .batches import ShotBatches
from .constraints import VelocityConstraints, stable_velocity_limit, water_mask
from .distributed import ShotGroup
from .encoding import encode, polarity_codes
from .filters import lowpass
from .inversion import Band, Inversion, InversionResult
from .losses import get_misfit, l2, normalized_l2
from .survey import Survey

__all__ = ["Band", "Inversion", "InversionResult", "ShotBatches", "ShotGroup", "Survey", "VelocityConstraints",
           "encode", "get_misfit", "l2", "lowpass", "normalized_l2", "polarity_codes", "stable_velocity_limit",
           "water_mask"]
