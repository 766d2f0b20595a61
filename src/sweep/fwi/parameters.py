"""What an inversion updates and how the updated tensors become the propagator's models: the velocity alone
(constant density, or a variable density held fixed), or velocity and impedance together (VRZ)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence

import torch


@dataclass(frozen=True)
class ModelParameters:
    """The inverted parameters' names and units, in order, and the map from their tensors to the models
    the propagator takes (in its equation's ``MODEL_SPECS`` order); autograd carries gradients through it.

    Build one with :func:`velocity`, :func:`velocity_at_density` or :func:`velocity_and_impedance`.
    """

    names: tuple[str, ...]
    units: tuple[str, ...]
    to_models: Callable[[Sequence[torch.Tensor]], list[torch.Tensor]]
    key: str
    """What identifies the parameterisation in a state file."""


def velocity() -> ModelParameters:
    """vp (m/s) alone, for constant-density equations (models ``[vp]``)."""
    return ModelParameters(("vp",), ("m/s",), lambda p: [p[0]], "vp")


def velocity_at_density(density: torch.Tensor) -> ModelParameters:
    """vp (m/s) alone with a fixed ``density`` (kg/m^3, the model's shape), for VRZ equations: models
    ``[vp, density * vp]``, so the velocity gradient is taken at fixed density."""
    fixed = density.detach()
    digest = hashlib.sha256(fixed.cpu().numpy().tobytes()).hexdigest()
    return ModelParameters(("vp",), ("m/s",), lambda p: [p[0], p[0] * fixed.to(p[0])], f"vp at fixed density {digest}")


def velocity_and_impedance() -> ModelParameters:
    """vp (m/s) and z (kg m^-2 s^-1) together, for VRZ equations (models ``[vp, z]``)."""
    return ModelParameters(("vp", "z"), ("m/s", "kg/(m^2 s)"), lambda p: [p[0], p[1]], "vp and z")
