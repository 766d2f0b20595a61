"""Source wavelets and their spectra."""
from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def ricker(t: ArrayLike, f: float) -> ArrayLike:
    """Ricker (Mexican-hat) wavelet ``(1 - 2 (pi f t)^2) exp(-(pi f t)^2)``, peak 1 at ``t = 0``.

    Parameters
    ----------
    t : array, any shape
        Times in seconds (shift by the delay yourself: ``ricker(t - delay, f)``).
    f : float
        Peak frequency in Hz, > 0.

    Returns
    -------
    Same type, shape and dtype as ``t``.
    """
    if not np.isfinite(f) or f <= 0:
        raise ValueError(f"f must be a positive frequency in Hz, got {f!r}")
    if isinstance(t, torch.Tensor):
        a = (torch.pi * f * t) ** 2
        return (1 - 2 * a) * torch.exp(-a)
    t = np.asarray(t)
    a = (np.pi * f * t) ** 2
    out = (1 - 2 * a) * np.exp(-a)
    return out.astype(t.dtype, copy=False) if np.issubdtype(t.dtype, np.floating) else out


def amplitude_spectrum(wavelet: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (Hz) and summed amplitude spectrum of ``wavelet`` (..., nt) along its last axis."""
    w = np.asarray(wavelet, dtype=np.float64).reshape(-1, np.shape(wavelet)[-1])
    spec = np.abs(np.fft.rfft(w, axis=-1)).sum(axis=0)
    return np.fft.rfftfreq(w.shape[-1], d=dt), spec


def peak_frequency(wavelet: np.ndarray, dt: float) -> float:
    """Frequency (Hz) of the largest amplitude-spectrum value of ``wavelet`` (..., nt)."""
    freqs, spec = amplitude_spectrum(wavelet, dt)
    return float(freqs[int(np.argmax(spec))])


def max_frequency(wavelet: np.ndarray, dt: float, fraction: float = 0.05) -> float:
    """Highest frequency (Hz) whose amplitude is at least ``fraction`` of the spectral peak."""
    freqs, spec = amplitude_spectrum(wavelet, dt)
    if spec.max() == 0:
        return 0.0
    return float(freqs[np.nonzero(spec >= fraction * spec.max())[0][-1]])
