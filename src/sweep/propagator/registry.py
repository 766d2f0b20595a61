"""Back-end steppers looked up from (equation, ndim, impl).

A stepper class implements the stepper protocol (:mod:`sweep.memory.protocol`) for one equation on one
back-end, for the grid dimensions it is registered under; it is built as ``cls(problem, models,
**options)`` with the call's :class:`~sweep.propagator.setup.Problem`, its models (in the equation's
``MODEL_SPECS`` order) and the back-end's options (``use_compile`` for ``'eager'``). Entries name their
class by module path, imported on first use, so that registering a back-end costs nothing until it
runs (and a C back-end that is not built does not break the import of sweep).
"""
from __future__ import annotations

import importlib

_STEPPERS: dict[tuple[str, int, str], str] = {}


def register(equation: str, ndim: int, impl: str, target: str) -> None:
    """Register ``target`` (``'package.module:Class'``) as the stepper of ``equation`` (an equation's
    ``name``) in ``ndim`` dimensions on back-end ``impl``."""
    _STEPPERS[(equation, ndim, impl)] = target


def registered() -> list[tuple[str, int, str]]:
    """Every (equation, ndim, impl) with a stepper, sorted."""
    return sorted(_STEPPERS)


def impls(equation: str, ndim: int) -> list[str]:
    """The back-ends that have a stepper for ``equation`` in ``ndim`` dimensions."""
    return sorted(impl for (eq, nd, impl) in _STEPPERS if (eq, nd) == (equation, ndim))


def stepper_class(equation: str, ndim: int, impl: str) -> type:
    """The stepper class of (equation, ndim, impl).

    Raises
    ------
    ValueError
        No back-end registered for it, naming those that are.
    """
    key = (equation, ndim, impl)
    if key not in _STEPPERS:
        have = impls(equation, ndim)
        raise ValueError(f"impl={impl!r} has no stepper for the {ndim}-D {equation} equation; "
                         f"available: {have or 'none'}")
    module, _, name = _STEPPERS[key].partition(":")
    return getattr(importlib.import_module(module), name)


for _ndim in (2, 3):
    register("acoustic", _ndim, "eager", "sweep.propagator.eager.acoustic:EagerAcousticStepper")
    register("acoustic_vrz", _ndim, "eager", "sweep.propagator.eager.acoustic_vrz:EagerAcousticVRZStepper")
register("acoustic", 2, "c", "sweep.propagator.c.acoustic2d:CAcousticStepper")
register("acoustic_vrz", 2, "c", "sweep.propagator.c.acoustic_vrz2d:CAcousticVRZStepper")
register("acoustic", 3, "c", "sweep.propagator.c.acoustic3d:CAcoustic3DStepper")
register("acoustic_vrz", 3, "c", "sweep.propagator.c.acoustic_vrz3d:CAcousticVRZ3DStepper")
