"""The constant-density acoustic wave equation in 2-D and 3-D: what it takes, exposes and needs for stability."""
from __future__ import annotations

from typing import Sequence

import torch

from ..devices import require_device
from .specs import FieldSpec, ModelSpec
from .stencils import courant_limit


class Acoustic:
    r"""2-D constant-density acoustic wave equation.

    .. math:: \frac{\partial^2 p}{\partial t^2} - v_p^2 \nabla^2 p = v_p^2 \, f(t)\, \delta(\mathbf{x} - \mathbf{x}_s)

    ``p`` (field ``'h1'``, aliases ``'pressure'``, ``'p'``) is the only wavefield; ``f`` is the wavelet,
    so the recorded ``p`` is the wavelet convolved with the 2-D Green's function of
    ``(1/v^2) d_tt - laplacian`` (see :class:`sweep.propagator.torch.PropTorch` for the discretisation).

    Parameters
    ----------
    device : torch.device or str, optional
        Where models and wavefields live. Default: CPU.

    Raises
    ------
    DeviceUnavailableError
        ``device`` is one this torch build or machine cannot use (e.g. ``'cuda'`` on a CPU-only build),
        said here rather than when the first model meets it.
    """

    MODEL_SPECS: list[ModelSpec] = [ModelSpec(name="vp", unit="m/s", description="Acoustic P-wave velocity model.")]
    FIELDS: list[FieldSpec] = [
        FieldSpec(name="h1", aliases=("pressure", "p"), description="Primary acoustic pressure-like wavefield.")
    ]
    name = "acoustic"
    """The equation's key in the stepper registry (shared by its 2-D and 3-D forms)."""
    ndim = 2
    """Grid dimensions: models are (nz, nx)."""

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = require_device(device, "device")

    @property
    def default_source_fields(self) -> list[str]:
        return ["h1"]

    @property
    def default_receiver_fields(self) -> list[str]:
        return ["h1"]

    def available_source_fields(self) -> list[FieldSpec]:
        return list(self.FIELDS)

    def available_receiver_fields(self) -> list[FieldSpec]:
        return list(self.FIELDS)

    def resolve_fields(self, names: str | Sequence[str] | None, default: list[str], argument: str) -> list[str]:
        """Map field names or aliases to canonical names; ``None`` gives ``default``.

        Raises ValueError naming ``argument`` for an unknown field.
        """
        if names is None:
            return list(default)
        if isinstance(names, str):
            names = [names]
        resolved = []
        for name in names:
            match = [f.name for f in self.FIELDS if f.matches(name)]
            if not match:
                known = {f.name: f.aliases for f in self.FIELDS}
                raise ValueError(f"{argument}: unknown field {name!r}; this equation has {known}")
            resolved.append(match[0])
        if not resolved:
            raise ValueError(f"{argument} must name at least one field")
        return resolved

    def stability_velocity(self, models: Sequence[torch.Tensor], space_order: int) -> float:
        """The velocity (m/s) that :meth:`max_stable_dt` is given for ``models``: the peak of ``vp``."""
        return float(models[0].detach().max())

    def check_model_values(self, models: Sequence[torch.Tensor]) -> None:
        """Warn about model values that are valid but likely a mistake (the acoustic equation has none
        beyond the positivity the propagator checks)."""

    def max_stable_dt(self, vmax: float, dh: float, space_order: int) -> float:
        """Largest stable time step (s) for peak velocity ``vmax`` (m/s) and spacing ``dh`` (m)."""
        return courant_limit(space_order, self.ndim) * dh / vmax

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device})"


class Acoustic3D(Acoustic):
    r"""3-D constant-density acoustic wave equation, on (nz, ny, nx) grids.

    .. math:: \frac{\partial^2 p}{\partial t^2} - v_p^2 \nabla^2 p = v_p^2 \, f(t)\, \delta(\mathbf{x} - \mathbf{x}_s)

    The same fields, models and options as :class:`Acoustic`; sources and receivers are ``[x, y, z]``
    grid indices, the delta is spread over one cell (``1/dh^3``), so the recorded ``p`` is the wavelet
    convolved with the 3-D Green's function ``delta(t - r/v) / (4 pi r)``.

    Parameters
    ----------
    device : torch.device or str, optional
        Where models and wavefields live. Default: CPU.
    """

    ndim = 3
    """Grid dimensions: models are (nz, ny, nx)."""
