"""Zero-phase low-pass filtering for frequency continuation (multiscale FWI).

Inverting low frequencies first keeps the early iterations out of cycle-skipped local minima. The same
filter is applied to the observed data and to the source wavelet: the synthetic data are linear in the
wavelet, so data predicted with the filtered wavelet equal the filtered unfiltered prediction, and the
two sides of the misfit stay consistent.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import scipy.signal
import torch

ArrayLike = np.ndarray | torch.Tensor


def lowpass(x: ArrayLike, cutoff: float, dt: float, order: int = 6, axis: int = -1) -> ArrayLike:
    """Zero-phase Butterworth low-pass of ``x`` along ``axis``.

    The Butterworth filter (``scipy.signal.butter``, second-order sections) is run forward and backward
    (``scipy.signal.sosfiltfilt``), so it has no phase shift: filtered data and filtered wavelet are not
    shifted in time against each other or against the unfiltered ones, and a wavelet's peak stays at its
    sample. The forward-backward pass squares the magnitude response, giving ``2 * order`` poles of
    roll-off and -6 dB (not -3 dB) at ``cutoff``.

    Signals are extended at both ends (odd extension) before filtering to damp edge transients, by
    scipy's default padlen (about ``3 * (2 * nsections + 1)`` samples, 21 for ``order=6``); a signal of
    ``n`` samples not longer than that is extended by ``n - 1`` samples instead, the most
    ``sosfiltfilt`` allows, at the price of larger edge transients.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor, any shape, floating point
        Time series, time along ``axis`` (e.g. a wavelet (nt,) or data (nshots, nt, nrec, ncomp) with
        ``axis=1``).
    cutoff : float
        Corner frequency in Hz, ``0 < cutoff < 1 / (2 dt)`` (the Nyquist frequency).
    dt : float
        Time sampling interval in s, > 0.
    order : int
        Butterworth order of each (forward or backward) pass, >= 1.
    axis : int
        Time axis of ``x``.

    Returns
    -------
    Same type, shape and dtype as ``x``: a numpy array, or a detached torch tensor on ``x``'s device.
    The filter is meant for data and wavelets, not for use inside an autograd graph.
    """
    if not isinstance(dt, numbers.Real) or not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a positive time step in s, got {dt!r}")
    nyquist = 0.5 / dt
    if not isinstance(cutoff, numbers.Real) or not 0 < cutoff < nyquist:
        raise ValueError(f"cutoff must be a frequency in Hz with 0 < cutoff < Nyquist = {nyquist:g} Hz "
                         f"(1 / (2 dt), dt={dt:g} s), got {cutoff!r}")
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 1:
        raise ValueError(f"order must be an integer >= 1, got {order!r}")

    is_tensor = isinstance(x, torch.Tensor)
    if is_tensor:
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        # float64 on the host: scipy filters in double precision anyway, and numpy has no bfloat16.
        values = x.detach().to(device="cpu", dtype=torch.float64).numpy()
    elif isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"x must be a floating-point numpy array, got dtype {x.dtype}")
        values = x
    else:
        raise TypeError(f"x must be a numpy.ndarray or torch.Tensor, got {type(x).__name__}")
    if values.ndim == 0:
        raise ValueError("x must have at least one dimension (the time axis), got a scalar")
    if not -values.ndim <= axis < values.ndim:
        raise ValueError(f"axis must index one of x's {values.ndim} dimensions, got {axis}")

    sos = scipy.signal.butter(int(order), float(cutoff), btype="low", output="sos", fs=1.0 / dt)
    # scipy's default padlen (sosfiltfilt's own formula), capped for short signals.
    ntaps = 2 * len(sos) + 1 - min(np.sum(sos[:, 2] == 0), np.sum(sos[:, 5] == 0))
    padlen = min(3 * int(ntaps), values.shape[axis] - 1)
    out = scipy.signal.sosfiltfilt(sos, values, axis=axis, padlen=padlen)
    if is_tensor:
        return torch.from_numpy(np.ascontiguousarray(out)).to(device=x.device, dtype=x.dtype)
    return out.astype(x.dtype, copy=False)
