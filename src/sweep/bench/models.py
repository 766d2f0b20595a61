"""Which equation a ``sweep-bench`` shot propagates, its models, and how each model's gradient is named.

A shot dict says its equation with ``shot['equation']`` (absent: the 2-D notebook shot, ``'acoustic'``):
one of :data:`BENCH_EQUATIONS`. Its true models are ``shot[name]`` for each of the equation's model names;
the starting model of the first (vp) is the set-up's ``vp_start``, as it always was, and of each further
one ``shot[name + '_start']`` (VRZ's impedance: ``shot['z_start']``).

A case's results name the first model's gradient as the acoustic bench always did (``grad_rms``,
``err_whole``, ``err_below10``, ``err_pointwise``) and every further model's with its name appended
(``grad_rms_z``, ``err_whole_z``, ...): see :func:`suffixed`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..equations import Acoustic, Acoustic3D, AcousticVRZ, AcousticVRZ3D
from ..propagator.registry import impls as registered_impls


@dataclass(frozen=True)
class BenchEquation:
    """One ``--equation``: the equation class it propagates and the names of its models, in order."""

    cls: type[Acoustic]
    models: tuple[str, ...]

    @property
    def ndim(self) -> int:
        """Grid dimensions (2 or 3)."""
        return self.cls.ndim


#: --equation value -> what it propagates.
BENCH_EQUATIONS: dict[str, BenchEquation] = {
    "acoustic": BenchEquation(Acoustic, ("vp",)),
    "acoustic3d": BenchEquation(Acoustic3D, ("vp",)),
    "vrz": BenchEquation(AcousticVRZ, ("vp", "z")),
    "vrz3d": BenchEquation(AcousticVRZ3D, ("vp", "z")),
}


def bench_equation(shot: dict) -> BenchEquation:
    """What ``shot`` propagates (``shot['equation']``, the 2-D acoustic notebook shot when absent)."""
    return BENCH_EQUATIONS[shot.get("equation", "acoustic")]


def impl_missing(impl: str, equation: str = "acoustic3d") -> str | None:
    """Why back-end ``impl`` cannot run ``equation`` (an ``--equation`` value) here, or None when it can:
    no stepper registered for it, or the compiled library not built or not loading."""
    spec = BENCH_EQUATIONS[equation]
    if impl not in registered_impls(spec.cls.name, spec.ndim):
        return f"impl={impl!r} has no {spec.ndim}-D {spec.cls.name} stepper in this installation"
    if impl == "c":
        from ..propagator.torch import _compiled_available, _compiled_unavailable_message

        if not _compiled_available():
            return _compiled_unavailable_message()
    return None


def true_models(shot: dict) -> list[torch.Tensor]:
    """The models the observed data are computed with, in the equation's order."""
    return [shot[name] for name in bench_equation(shot).models]


def start_models(setup: dict, device: torch.device) -> list[torch.Tensor]:
    """The models every case's gradient is taken at, on ``device``: the set-up's ``vp_start``, then each
    further model's ``shot[name + '_start']``."""
    shot = setup["shot"]
    rest = [shot[f"{name}_start"] for name in bench_equation(shot).models[1:]]
    return [m.to(device) for m in (setup["vp_start"], *rest)]


def suffixed(key: str, name: str, index: int) -> str:
    """``key`` for model ``name`` at position ``index``: itself for the first model, ``key_name`` after."""
    return key if index == 0 else f"{key}_{name}"


def pack_gradients(grads: list[torch.Tensor], names: tuple[str, ...]) -> torch.Tensor | dict[str, torch.Tensor]:
    """What a case saves: the one gradient as a tensor (as the acoustic bench always did), or
    ``{name: gradient}`` for several models; each detached, on the CPU."""
    grads = [g.detach().cpu() for g in grads]
    return grads[0] if len(grads) == 1 else dict(zip(names, grads))


def unpack_gradients(saved: torch.Tensor | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{name: gradient}`` of what :func:`pack_gradients` saved (a lone tensor is vp's)."""
    return dict(saved) if isinstance(saved, dict) else {"vp": saved}


def gradient_rms(grads: list[torch.Tensor], names: tuple[str, ...]) -> dict[str, float]:
    """``grad_rms`` (and ``grad_rms_NAME`` for further models): each gradient's root mean square."""
    return {suffixed("grad_rms", n, i): float(g.detach().pow(2).mean().sqrt())
            for i, (n, g) in enumerate(zip(names, grads))}
