"""Full-waveform-inversion misfits as torch losses.

Every misfit takes ``predicted`` and ``observed`` receiver data of shape (nshots, nt, nrec, ncomp), the
propagator's output layout (time is axis 1), and returns a 0-d tensor that is a *sum over shots*: the
objective of a set of shots is the sum of the objectives of its parts. Shot batching relies on this (the
gradients of batches add up to the gradient of the whole survey), so no misfit may mix shots, e.g. by
averaging over them or normalising by a statistic of the whole survey.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..messages import plain

Misfit = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_pair(predicted: torch.Tensor, observed: torch.Tensor) -> None:
    for name, value in (("predicted", predicted), ("observed", observed)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
        if value.ndim != 4:
            raise ValueError(f"{name} must have shape (nshots, nt, nrec, ncomp), got shape {tuple(value.shape)}")
    if predicted.shape != observed.shape:
        raise ValueError(f"predicted and observed must have the same shape, got predicted {tuple(predicted.shape)} "
                         f"and observed {tuple(observed.shape)}")


def l2(predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Least-squares misfit ``0.5 * sum((predicted - observed)**2)``, summed over shots.

    Parameters
    ----------
    predicted, observed : torch.Tensor, (nshots, nt, nrec, ncomp)
        Receiver data in the propagator's units, same shape.

    Returns
    -------
    torch.Tensor, 0-d
        The misfit in squared data units; additive over shot subsets.
    """
    _check_pair(predicted, observed)
    return 0.5 * ((predicted - observed) ** 2).sum()


def _normalize_traces(data: torch.Tensor, eps: float) -> torch.Tensor:
    """Each trace (shot, receiver, component) divided by its floored L2 norm over time (axis 1).

    The floor is ``max(eps * largest trace norm of the shot, sqrt(finfo.tiny))``. It is taken per shot,
    not over the whole tensor, so that a shot's normalised data never depend on the other shots of its
    batch (exact additivity). Working with squared norms and flooring them before the square root keeps
    both the value and the gradient finite for all-zero traces: sqrt is never differentiated at 0.
    """
    sumsq = (data ** 2).sum(dim=1, keepdim=True)                       # (nshots, 1, nrec, ncomp)
    largest = sumsq.amax(dim=(1, 2, 3), keepdim=True)                  # (nshots, 1, 1, 1)
    tiny = torch.finfo(data.dtype).tiny
    floor = torch.clamp(eps ** 2 * largest, min=tiny)
    return data / torch.sqrt(torch.maximum(sumsq, floor))


def normalized_l2(predicted: torch.Tensor, observed: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Trace-normalised least-squares misfit, summed over shots.

    Each trace (one shot, receiver and component, along time axis 1) of both tensors is divided by its L2
    norm over time, then ``0.5 * sum((p_hat - o_hat)**2)`` is returned. Only the waveform shape is
    compared, so the misfit is invariant to a positive scale of any predicted trace: it is robust to
    errors in source amplitude, receiver coupling and geometric spreading that the model cannot explain.

    The norm used for a trace is ``max(norm, eps * largest trace norm of its shot, sqrt(finfo.tiny))``,
    so an all-zero trace (a receiver the wave has not reached, a muted trace), or an all-zero tensor,
    gives a finite loss and finite gradients, never NaN. Where the predicted and observed traces are both
    zero the trace contributes zero loss and zero gradient. A zero predicted trace against a nonzero
    observed one is pulled towards the observed waveform with a gradient bounded by ``1 / floor``. Scale
    invariance holds for traces whose norm exceeds that floor. The floor is taken per shot, so the
    misfit stays exactly additive over shot subsets.

    Parameters
    ----------
    predicted, observed : torch.Tensor, (nshots, nt, nrec, ncomp)
        Receiver data in any (common) units, same shape.
    eps : float
        Relative floor on trace norms, in [0, 1).

    Returns
    -------
    torch.Tensor, 0-d
        The misfit (dimensionless); additive over shot subsets.
    """
    _check_pair(predicted, observed)
    if not 0 <= eps < 1:
        raise ValueError(f"eps must be a relative floor in [0, 1), got {plain(eps)!r}")
    residual = _normalize_traces(predicted, eps) - _normalize_traces(observed, eps)
    return 0.5 * (residual ** 2).sum()


MISFITS: dict[str, Misfit] = {"l2": l2, "normalized_l2": normalized_l2}


def get_misfit(name: str) -> Misfit:
    """The misfit function registered in :data:`MISFITS` under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not one of ``MISFITS``' keys.
    """
    try:
        return MISFITS[name]
    except (KeyError, TypeError):
        raise ValueError(f"misfit name must be one of {sorted(MISFITS)}, got {name!r}") from None
