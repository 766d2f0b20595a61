"""What an inversion problem is, whatever its dimension: the true and starting models, the survey with
observed data, and the propagator that made the data and that inverts them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..propagator.torch import PropTorch
from ..signal import ricker
from .survey import Survey


@dataclass
class Problem:
    """true, start: velocities (m/s) of the propagator's shape, (nz, nx) or (nz, ny, nx); survey: shots
    with observed data; propagator: the one that made the data and that inverts them; true_density,
    start_density: densities (kg/m^3) of a variable-density equation (None for a constant density)."""

    true: torch.Tensor
    start: torch.Tensor
    survey: Survey
    propagator: PropTorch
    true_density: torch.Tensor | None = None
    start_density: torch.Tensor | None = None

    @property
    def ndim(self) -> int:
        """2 or 3: the dimensions of the grid."""
        return len(self.propagator.shape)


def delayed_ricker(nt: int, dt: float, frequency: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Ricker wavelet (nt,) of peak ``frequency`` Hz, delayed by 1.5 / frequency s (so it starts at ~0)."""
    return ricker(torch.arange(nt, dtype=dtype) * dt - 1.5 / frequency, frequency)


def observe(prop: PropTorch, wavelet: torch.Tensor, sources: np.ndarray, receivers: np.ndarray,
            true: torch.Tensor | list[torch.Tensor], data_batch: int) -> Survey:
    """The survey whose observed data ``prop`` computes from ``true`` (the velocity, or the list of the
    propagator's models), ``data_batch`` shots per call (bounds memory)."""
    models = true if isinstance(true, list) else [true]
    with torch.no_grad():
        observed = torch.cat([prop(wavelet, sources[i:i + data_batch], receivers[i:i + data_batch], models)
                              for i in range(0, len(sources), data_batch)])
    return Survey(sources, receivers, wavelet, observed)


def unit_peak(survey: Survey) -> Survey:
    """``survey`` with wavelet and observed data multiplied by the power of two that brings the data's
    peak amplitude nearest to 1.

    Data are linear in the wavelet, and multiplying by a power of two is exact in floating point, so the
    scaled data are still exactly those the propagator makes from the scaled wavelet (the true model's
    misfit stays 0). The source term is ``f / dh^ndim`` (docs/design.md), so 3-D data from a unit wavelet
    are small (peak 4.5e-3 on the default 50 m grid of :func:`~sweep.fwi.layered3d.layered3d_problem`,
    less on coarser grids) and the L2 misfit's gradient can fall to the order of Adam's ``eps`` (1e-8),
    which then shortens the steps below ``lr`` (on a 100 m grid the model barely moved); with unit-peak
    data ``lr`` means the same at any ``dh``.
    """
    peak = float(survey.observed.abs().max())
    if peak == 0 or not np.isfinite(peak):
        return survey
    scale = 2.0 ** -round(np.log2(peak))
    return Survey(survey.sources, survey.receivers, survey.wavelet * scale, survey.observed * scale)
