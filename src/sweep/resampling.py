"""Band-limited resampling of traces by an integer factor, for time sub-stepping.

A propagator that steps at ``dt / r`` while the data are sampled at ``dt`` upsamples the source
wavelet with :func:`upsample` and downsamples the recorded traces with :func:`downsample`, inside
the differentiable call. Both are linear maps built from ``torch.fft``, so autograd differentiates
them exactly, on any device.

Filter: the ideal low-pass at the coarse Nyquist frequency ``1 / (2 dt)`` (the spectrum is cut, not
tapered). Samples at ``dt`` carry nothing above that frequency, so the ideal filter is the one that
adds nothing and removes nothing the samples can represent: :func:`upsample` interpolates exactly
(``upsample(x, r)[..., r * i] == x[..., i]``) and a taper would change in-band content that
:func:`check_sampling` has already accepted.

Wrap-around: an FFT treats the trace as periodic, which would make its end leak into its start.
Both functions instead treat the trace as zero outside ``[0, n dt)`` (a source is silent before
``t = 0``; nothing past the record is known): the trace is zero-padded to an odd length ``m >= 2n``
at the coarse rate, resampled on that circle and cropped back. The kernel of an ideal low-pass
decays like ``1 / distance``, so what still wraps around has crossed at least ``n`` samples of
padding. A trace that does not decay to zero at its end is resampled as if cut there: Gibbs ringing
of about ``1 / (pi d)`` of the jump at ``d`` samples from the end (measured for a unit jump: 0.5 past
the last sample, 0.14 in the interval before, 0.018 ten samples back); of that, ~1e-3 reaches the start.

Nyquist bin: the padded length ``m`` is odd, so its spectrum has no Nyquist bin to split or drop.
The band kept is ``|f| <= (m - 1) / (2 m dt)``, symmetric and just under the coarse Nyquist; the
alternating sequence of an even-length trace is interpolated like any other.

Exact relations (``U = upsample(., r)``, ``D = downsample(., r)``, ``S`` taking every r-th sample):

- ``S U = I``: upsampling interpolates, for every input;
- ``U^T = r D``, i.e. ``<U x, y> = r <x, D y>``: downsampling is the adjoint of upsampling divided
  by the ``r`` fine samples each coarse sample stands for. Backpropagation through ``D`` therefore
  returns the band-limited interpolation of the coarse-rate gradient divided by ``r``, and through
  ``U`` the anti-aliased decimation of the fine-rate gradient times ``r``;
- ``D U x = x`` for every ``x`` whose band-limited interpolant vanishes outside ``[0, n dt)`` (a
  wavelet that starts from and dies out to zero inside its trace); otherwise ``D U x`` differs from
  ``x`` by the part of the interpolant the padding cut off, projected back, mostly near the ends
  (white noise of 1000 samples comes back 2% off overall, 0.3-0.45 of its rms in its first sample).
"""
from __future__ import annotations

import numbers

import torch

#: Default lower edge, as a fraction of the Nyquist frequency, of the band :func:`check_sampling` reads.
HIGH_BAND = 0.8
#: Largest fraction of a wavelet's energy :func:`check_sampling` accepts above ``HIGH_BAND`` x Nyquist.
#: The error aliasing makes in a resampled wavelet is roughly the square root of twice its energy above
#: Nyquist, which the samples cannot show; the energy just below Nyquist is the visible sign of it. A
#: Ricker of peak frequency ``f`` reaches this limit at ``dt = 0.178 / f`` (Nyquist at 2.81 ``f``, where
#: its amplitude spectrum is 0.8% of its peak; ``max_frequency`` puts its top at 2.4 ``f``). There the
#: resampled Ricker is 0.3% (relative L2) off the Ricker evaluated at ``dt / r``, against 1.5% at
#: ``0.2 / f`` (5 Hz at 40 ms, refused) and 11% at ``0.25 / f`` (5 Hz at 50 ms).
MAX_HIGH_BAND_ENERGY = 1e-3


def _padded_length(n: int) -> int:
    """Smallest odd ``m >= 2 n`` with no prime factor above 7 (fast for every FFT library)."""
    m = 2 * n + 1
    while True:
        k = m
        for p in (3, 5, 7):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 2


def _check(x: torch.Tensor, r: int) -> None:
    if isinstance(r, bool) or not isinstance(r, numbers.Integral):
        raise ValueError(f"r must be a positive int, got {r!r} ({type(r).__name__})")
    if r < 1:
        raise ValueError(f"r must be a positive int, got {r!r}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last (time) axis, got shape {tuple(x.shape)}")


def upsample(x: torch.Tensor, r: int) -> torch.Tensor:
    """Band-limited interpolation of ``x`` along its last axis from interval ``dt`` to ``dt / r``.

    Parameters
    ----------
    x : Tensor, shape (..., n), float32 or float64, any device
        Traces sampled at ``dt`` (any unit), taken as zero outside ``[0, n dt)``.
    r : int
        Upsampling factor, >= 1.

    Returns
    -------
    Tensor, shape (..., n * r), ``x``'s dtype and device
        The traces at ``dt / r``; ``out[..., r * i] == x[..., i]`` to round-off. ``r == 1`` returns
        ``x`` itself (no copy).
    """
    _check(x, r)
    if r == 1:
        return x
    n = x.shape[-1]
    m = _padded_length(n)
    # Unnormalised FFTs: the inverse divides by m * r, so scaling by r keeps the samples' values.
    spectrum = torch.fft.rfft(x, n=m) * r
    # irfft zero-fills the bins above the coarse band: that is the ideal low-pass.
    return torch.fft.irfft(spectrum, n=m * r)[..., : n * r]


def downsample(x: torch.Tensor, r: int) -> torch.Tensor:
    """Anti-aliased decimation of ``x`` along its last axis from interval ``dt / r`` to ``dt``.

    Content at or above the coarse Nyquist frequency ``1 / (2 dt)`` is removed (not folded back),
    then every r-th sample is kept; it is ``upsample``'s adjoint divided by ``r``.

    Parameters
    ----------
    x : Tensor, shape (..., n * r), float32 or float64, any device
        Traces sampled at ``dt / r`` (any unit), taken as zero outside ``[0, n dt)``.
    r : int
        Downsampling factor, >= 1; must divide the length of the last axis.

    Returns
    -------
    Tensor, shape (..., n), ``x``'s dtype and device
        The traces at ``dt``. ``r == 1`` returns ``x`` itself (no copy).
    """
    _check(x, r)
    if r == 1:
        return x
    if x.shape[-1] % r:
        raise ValueError(f"x's last axis ({x.shape[-1]} samples) must be a multiple of r={r}")
    n = x.shape[-1] // r
    m = _padded_length(n)
    # Keeping the first (m + 1) // 2 bins of the padded fine spectrum is the ideal low-pass; the
    # coarse inverse FFT divides by m where the fine samples' spectrum was summed over m * r.
    spectrum = torch.fft.rfft(x, n=m * r)[..., : (m + 1) // 2] / r
    return torch.fft.irfft(spectrum, n=m)[..., :n]


def high_band_energy(x: torch.Tensor, band: float = HIGH_BAND) -> float:
    """Fraction of the energy of ``x`` above ``band`` x Nyquist of its own sampling.

    Parameters
    ----------
    x : Tensor, shape (..., n), float32 or float64
        Traces (e.g. a wavelet (nshots, nsrc, nt)), taken as zero outside their time axis; the
        energy of all of them is summed.
    band : float
        Lower edge of the band, as a fraction of the Nyquist frequency, in [0, 1).

    Returns
    -------
    float
        Energy above ``band`` x Nyquist over the total energy, in [0, 1]; 0 for an all-zero ``x``.
        Independent of the sample interval: the band is a fraction of the sampling's own Nyquist.
    """
    _check(x, 1)
    if not 0 <= band < 1:
        raise ValueError(f"band must be a fraction of Nyquist in [0, 1), got {band!r}")
    x = x.detach().to(torch.float64)
    m = _padded_length(x.shape[-1])
    # Zero-padded like the resampling (the trace's end is not wrapped onto its start); m odd, so every
    # rfft bin but 0 stands for two of the full spectrum's.
    power = torch.fft.rfft(x, n=m).abs().square().reshape(-1, (m + 1) // 2).sum(0)
    power[1:] *= 2
    total = float(power.sum())
    if total == 0:
        return 0.0
    above = torch.arange(power.numel(), device=power.device) > band * m / 2
    return float(power[above].sum()) / total


def check_sampling(wavelet: torch.Tensor, dt: float, name: str = "dt") -> None:
    """Refuse a sample interval at which ``wavelet`` aliases.

    Parameters
    ----------
    wavelet : Tensor, shape (..., nt), float32 or float64
        The source wavelet(s) as sampled at ``dt``.
    dt : float
        Their sample interval in seconds (only reported).
    name : str
        The argument to name in the error.

    Raises
    ------
    ValueError
        If more than ``MAX_HIGH_BAND_ENERGY`` of the wavelet's energy lies above ``HIGH_BAND`` x Nyquist.
    """
    if not dt > 0 or dt == float("inf"):
        raise ValueError(f"{name} must be a positive sample interval in seconds, got {dt!r}")
    fraction = high_band_energy(wavelet)
    if fraction > MAX_HIGH_BAND_ENERGY:
        raise ValueError(
            f"the wavelet is not band-limited at {name}={dt:g} s: {100 * fraction:.2g}% of its energy is above "
            f"{HIGH_BAND:g} x Nyquist ({HIGH_BAND * 0.5 / dt:g} Hz), more than the "
            f"{100 * MAX_HIGH_BAND_ENERGY:g}% that band-limited resampling allows: it aliases at this {name} "
            f"(sample it more finely: a smaller {name}), or it is cut off while still ringing at an end of its "
            "trace (let it die out within the trace: a longer record, or a taper)")
