"""Time sub-stepping: the data's sample interval ``dt`` outside, a stable step ``dt / r`` inside.

With ``PropTorch(..., substep=...)`` a call takes its wavelet and returns its data at ``dt`` (``nt`` data
samples) while the stepper runs ``nt * r`` steps of ``dt / r``: the wavelet is upsampled band-limited
before the steps and the receivers downsampled anti-aliased after them (:mod:`sweep.resampling`), both
outside the memory strategies, so a strategy's segments all see the one resampled wavelet and
checkpointed runs stay bit-identical to full storage. The ratio ``r`` is fixed once per propagator
(:class:`StepRatio`), so an inversion never changes its discretisation between iterations.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable

from ..messages import plain

AUTO = "auto"


def check_substep(substep: object) -> int | str | None:
    """``substep`` validated: None (off), ``'auto'`` or an int r >= 1."""
    if substep is None or substep == AUTO:
        return substep
    if isinstance(substep, bool) or not isinstance(substep, numbers.Integral) or substep < 1:
        raise ValueError(f"substep must be None, 'auto' or an integer >= 1 (internal steps per data sample), "
                         f"got {plain(substep)!r}")
    return int(substep)


def smallest_ratio(dt: float, max_stable_dt: float) -> int:
    """The smallest integer r with ``dt / r <= max_stable_dt``."""
    return max(1, math.ceil(dt / max_stable_dt - 1e-9))


class StepRatio:
    """The number r of internal steps per data sample of one propagator, fixed the first time it is known.

    Parameters
    ----------
    substep : None, 'auto' or int
        None: no sub-stepping (r = 1; an unstable ``dt`` is an error naming this option). An int: that r.
        ``'auto'``: the smallest stable r, from ``pml_vmax`` when given, else from the first call's model.
    dt : float
        The data's sample interval, s.
    limit : callable
        ``limit(vmax)``: the largest stable time step (s) for peak velocity ``vmax`` (m/s) on the grid.
    pml_vmax : float, optional
        A velocity bound the user gave (m/s): ``'auto'`` fixes r from it at once.
    """

    def __init__(self, substep: int | str | None, dt: float, limit: Callable[[float], float],
                 pml_vmax: float | None = None) -> None:
        self.substep, self.dt, self.limit = check_substep(substep), dt, limit
        self.ratio: int | None = 1 if self.substep is None else None if self.substep == AUTO else self.substep
        self.source = "substep=None" if self.substep is None else f"substep={self.substep}"
        if self.substep == AUTO and pml_vmax is not None:
            self.ratio = smallest_ratio(dt, limit(pml_vmax))
            self.source = f"substep='auto' with pml_vmax={pml_vmax:g} m/s"

    def for_model(self, vmax: float) -> int:
        """r for a call whose model peaks at ``vmax`` (m/s): fixed now if it was not yet.

        Raises
        ------
        ValueError
            The model needs a larger r than the one fixed (sub-stepping on): the error names both. Without
            sub-stepping an unstable ``dt`` is left to the stability check, which names this option.
        """
        needed = smallest_ratio(self.dt, self.limit(vmax))
        if self.ratio is None:
            self.ratio = needed
            self.source = f"substep='auto' from the first call's vmax={vmax:g} m/s"
            return self.ratio
        if self.substep is not None and needed > self.ratio:
            raise ValueError(f"this model's vmax={vmax:g} m/s needs at least {needed} internal steps per data sample "
                             f"(dt/{needed} <= {self.limit(vmax):.6g} s), but this propagator steps at dt/{self.ratio} "
                             f"({self.source}), fixed so that every call uses one discretisation; build the "
                             f"propagator with substep={needed}, or a pml_vmax of at least {vmax:g} m/s with "
                             "substep='auto'")
        return self.ratio

    def hint(self, vmax: float) -> str:
        """What to say after an unstable-dt error without sub-stepping: the option and the r it would use."""
        r = smallest_ratio(self.dt, self.limit(vmax))
        return (f"; or pass substep='auto' to keep dt for the wavelet and data and step at dt/{r} = "
                f"{self.dt / r:.6g} s inside")
