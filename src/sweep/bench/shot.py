"""The shot that ``sweep-bench`` propagates, and how finely its grid samples the wavelet.

The default is the seed notebook's shot (:func:`sweep.bench.speed.seed_shot`: Marmousi-II at 25 m, a
5 Hz Ricker). It has 3.5 grid points per shortest wavelength in the 1028 m/s water layer, fewer than the
5 below which sweep warns of numerical dispersion; the bench keeps it as the reference defines it, for
comparability, and says so once (:func:`sampling_note`) instead of warning in every case.

The quick shot (``--quick``: 71 x 341 at 50 m, 500 steps, a 2 Hz Ricker) has 7.4 points per wavelength,
so its gradient differences are the strategies' and not dispersion's: a fast smoke check of every
strategy, not the notebook's numbers.
"""
from __future__ import annotations

import numpy as np
import torch

from ..datasets import load_marmousi
from ..equations.sampling import MIN_POINTS_PER_WAVELENGTH
from ..signal import max_frequency, ricker
from .speed import DELAY, DT, FREQ, seed_shot

# Time steps, Marmousi decimation and Ricker frequency of --quick: at 50 m the slowest cell is 1480 m/s
# and a 2 Hz Ricker reaches 4 Hz (5% of its spectral peak), 7.4 points per wavelength; 500 steps (1 s)
# carry it 1 km down, below the rows the 'rows >= 10' error column starts at.
QUICK_NT, QUICK_DECIMATE, QUICK_FREQ = 500, 4, 2.0
NOTEBOOK_DECIMATE = 2

#: The library's dispersion warning (sweep.propagator.setup) as a ``warnings`` message pattern.
DISPERSION_WARNING = "only .* grid points per shortest wavelength"


def ricker_delay(freq: float) -> float:
    """The wavelet's delay in seconds: one period, as the notebook's 0.2 s at 5 Hz (the wavelet starts at
    -1e-3 of its peak, so its truncation at t = 0 adds no high frequencies)."""
    return DELAY * FREQ / freq


def bench_shot(nt: int, decimate: int, freq: float = FREQ) -> dict:
    """:func:`~sweep.bench.speed.seed_shot` with a Ricker of peak frequency ``freq`` Hz (the seed's 5 Hz by
    default) delayed by :func:`ricker_delay`."""
    shot = seed_shot(nt, decimate)
    if freq != FREQ:
        t = np.arange(nt) * DT - ricker_delay(freq)
        shot["wavelet"] = torch.from_numpy(ricker(t, freq).astype(np.float32))
    return shot


def starting_model(decimate: int) -> torch.Tensor:
    """The smoothed Marmousi-II (m/s) on the shot's grid: the model every case's gradient is taken at."""
    return torch.from_numpy(np.ascontiguousarray(load_marmousi("smooth")[::decimate, ::decimate]))


def sampling(shot: dict, vp_start: torch.Tensor) -> dict:
    """Grid points per shortest wavelength as the library measures them (slowest velocity of the true and
    starting models / highest frequency of the wavelet / grid step), with those three."""
    vmin = min(float(shot["vp"].min()), float(vp_start.min()))
    fmax = max_frequency(shot["wavelet"].numpy(), DT)
    return dict(points_per_wavelength=vmin / fmax / shot["dh"], vmin=vmin, fmax=fmax, dh=float(shot["dh"]))


def sampling_note(setup: dict) -> str | None:
    """One line on what the run's grid means for its numbers, or None when there is nothing to say.

    ``setup`` holds ``quick``, ``decimate``, ``freq``, ``shape``, ``nt`` and the :func:`sampling` keys.
    """
    points, dh = setup["points_per_wavelength"], setup["dh"]
    grid = f"{setup['shape'][0]} x {setup['shape'][1]} at {dh:g} m, {setup['nt']} steps, a {setup['freq']:g} Hz Ricker"
    if points < MIN_POINTS_PER_WAVELENGTH:
        why = (f"{points:.1f} grid points per shortest wavelength ({grid}: up to {setup['fmax']:.3g} Hz in "
               f"{setup['vmin']:g} m/s), below the {MIN_POINTS_PER_WAVELENGTH:g} under which sweep warns of numerical "
               "dispersion (the warning is not repeated for each case)")
        if setup["decimate"] == NOTEBOOK_DECIMATE and setup["freq"] == FREQ:
            return f"note: {why}: the seed notebook's shot as the reference defines it, kept for comparability"
        return f"note: {why}: errors include dispersion's; a lower --freq or a smaller --decimate samples it finer"
    if setup["quick"]:
        return (f"quick run: a fast smoke check that every strategy runs and matches full storage ({grid}, "
                f"{points:.1f} points per wavelength); not the notebook shot's times or memory (run without "
                "--quick for those)")
    return None
