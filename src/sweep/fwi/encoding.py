"""Source encoding: a batch of shots mixed into one simultaneous source.

The encoded shot fires every source of the batch at once, each wavelet multiplied by a random
polarity code (+1 or -1), and is compared with the same codes applied to the observed data. One
propagation then stands for the whole batch (less memory and time per iteration); the cross-talk
between shots is noise in the gradient, which re-drawing the codes every iteration averages out. With
one shot, or with codes all equal, the objective is the plain one. Summing recorded data this way
needs one receiver spread that records every shot.
"""
from __future__ import annotations

import numpy as np
import torch

from .batches import iteration_rng
from .survey import Survey


def check_encodable(receivers: np.ndarray) -> None:
    """Raise ValueError unless every shot of ``receivers`` (nshots, nrec, 2 or 3) uses the same receivers."""
    differs = np.nonzero((receivers != receivers[:1]).any(axis=(1, 2)))[0]
    if differs.size:
        raise ValueError(
            "source encoding sums the shots' data into one record, so every shot must be recorded by the "
            f"same receivers; shot {int(differs[0])}'s receivers differ from shot 0's (a moving spread, as in "
            "towed-streamer data). Use a fixed spread, or invert without encoding")


def polarity_codes(count: int, seed: int, iteration: int, batch: int) -> np.ndarray:
    """Random +1/-1 codes (count,) of one batch of one iteration, the same on every rank and on resume."""
    return iteration_rng(seed, iteration, 1 + batch).choice(np.array([-1.0, 1.0]), size=count)


def encode(survey: Survey, codes: np.ndarray) -> Survey:
    """The one-shot survey whose source is every source of ``survey`` fired at once, shot ``i``'s wavelets
    multiplied by ``codes[i]``, and whose observed data are ``sum_i codes[i] * observed[i]``.

    Parameters
    ----------
    survey : Survey with nshots shots of nsrc sources, all recorded by the same receivers.
    codes : (nshots,) float array.

    Returns
    -------
    Survey of one shot with nshots * nsrc sources.
    """
    check_encodable(survey.receivers)
    codes = np.asarray(codes, dtype=np.float64)
    if codes.shape != (survey.nshots,):
        raise ValueError(f"codes must have shape ({survey.nshots},), got {codes.shape}")
    weights = torch.as_tensor(codes, dtype=survey.observed.dtype, device=survey.observed.device)
    nt = survey.nt
    wavelet = (survey.wavelet * weights[:, None, None]).reshape(1, -1, nt)
    observed = torch.einsum("s,strc->trc", weights, survey.observed).unsqueeze(0)
    return Survey(survey.sources.reshape(1, -1, survey.space), survey.receivers[:1], wavelet, observed)
