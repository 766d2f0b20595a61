"""Band-limited up/downsampling for time sub-stepping (sweep.resampling): accuracy against analytic
Rickers, the exact relations between the two maps, gradients, shapes, the aliasing check, bad inputs."""
from __future__ import annotations

import math

import pytest
import torch

from sweep.resampling import (HIGH_BAND, MAX_HIGH_BAND_ENERGY, check_sampling, downsample,
                              high_band_energy, upsample)
from sweep.signal import ricker

F = 5.0  # Ricker peak frequency (Hz)
DELAY = 2 / F  # the Ricker is exp(-(2 pi)^2) ~ 1e-16 of its peak at t = 0: no truncation at the start
T = 1.0  # trace length (s): 3 / F of the Ricker after its peak, so no truncation at the end either
# FFT round-off grows like eps * log2(length) (~14 for these traces); a factor 1000 leaves room.
ROUND = 1000 * torch.finfo(torch.float64).eps


def times(n: int, dt: float) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float64) * dt


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def ricker_energy_above(u0: float) -> float:
    """Fraction of a Ricker's energy above u0 x its peak frequency: its energy spectrum is
    u^4 exp(-2 u^2), u = f / f_peak, whose tail integral has a closed form (a = 2)."""
    a = 2.0
    tail = (math.exp(-a * u0 ** 2) * (u0 ** 3 / (2 * a) + 3 * u0 / (4 * a ** 2))
            + 3 / (8 * a ** 2) * math.sqrt(math.pi / a) * math.erfc(math.sqrt(a) * u0))
    return tail / (3 / (8 * a ** 2) * math.sqrt(math.pi / a))


@pytest.mark.parametrize("r", [2, 3, 4])
@pytest.mark.parametrize("f, dt", [(F, 0.004), (F, 0.008), (25.0, 0.008)])
def test_upsampled_ricker_matches_the_analytic_one(f, dt, r):
    # Interpolating samples at dt loses the energy E above Nyquist and folds it back below: the relative
    # L2 error e has E <= e^2 <= 3 E (the two folded halves add at most coherently). The 5 Hz cases have
    # E ~ 0, so e is round-off; 25 Hz at 8 ms (Nyquist 2.5 x peak) has e ~ 1.5%, which a tapered or
    # misplaced cut-off would change.
    n = round(T / dt)
    x = ricker(times(n, dt) - DELAY, f)
    exact = ricker(times(n * r, dt / r) - DELAY, f)
    out = upsample(x, r)
    aliased = ricker_energy_above(0.5 / dt / f)
    err = rel(out, exact)
    assert math.sqrt(aliased) - ROUND <= err <= math.sqrt(3 * aliased) + ROUND
    if aliased < ROUND ** 2:  # and no larger near the ends of the trace than anywhere
        near_ends = (out - exact).view(n, r)[[0, 1, 2, -3, -2, -1]]
        assert float(near_ends.abs().max()) <= ROUND


@pytest.mark.parametrize("dt, r", [(0.004, 2), (0.008, 3)])
def test_a_trace_cut_at_its_end_rings_there_and_does_not_wrap_onto_its_start(dt, r):
    n = round(DELAY / dt) + 1  # ends at the Ricker's peak: a jump of 1 to the zeros past the trace
    x = ricker(times(n, dt) - DELAY, F)
    out = upsample(x, r)
    exact = ricker(times(n * r, dt / r) - DELAY, F)
    err = (out - exact).abs().view(n, r).amax(1)  # largest error in each coarse interval
    # Gibbs: the ideal low-pass's step response overshoots by ~1/(pi d) at d samples from the jump.
    d = torch.arange(n, 0, -1, dtype=torch.float64)
    assert bool((err[:-1] <= 1 / (math.pi * (d[:-1] - 1))).all())
    # What wraps around crosses at least n samples of zero padding: against a trace padded 16 times
    # longer (no wrap within reach) the start moves by less than the jump's tail there.
    far = upsample(torch.nn.functional.pad(x, (0, 15 * n)), r)[: n * r]
    assert float((out - far)[: 10 * r].abs().max()) <= 1 / (math.pi * n)


@pytest.mark.parametrize("n", [7, 8, 33, 64])
@pytest.mark.parametrize("r", [2, 3, 4])
def test_upsample_interpolates_and_the_pair_is_adjoint(n, r):
    # Both hold for any input: (S U) x = x with S taking every r-th sample, and <U x, y> = r <x, D y>.
    g = torch.Generator().manual_seed(n * r)
    x = torch.randn(2, 3, n, dtype=torch.float64, generator=g)
    y = torch.randn(2, 3, n * r, dtype=torch.float64, generator=g)
    up = upsample(x, r)
    assert float((up[..., ::r] - x).abs().max()) <= ROUND
    lhs, rhs = float((up * y).sum()), r * float((x * downsample(y, r)).sum())
    assert abs(lhs - rhs) <= 1e-12 * float(up.norm() * y.norm())


@pytest.mark.parametrize("dt, r", [(0.004, 2), (0.008, 3), (0.008, 4)])
def test_downsample_undoes_upsample_for_a_wavelet_that_dies_out(dt, r):
    # D U x = x exactly when x's interpolant vanishes past the trace's end: true to round-off for a sum of
    # Rickers at least 2 / f from both ends, not for noise (whose interpolant rings into the padding).
    n = round(T / dt)
    t = times(n, dt)
    x = ricker(t - DELAY, F) - 0.7 * ricker(t - 0.5, 2 * F) + 0.3 * ricker(t - 0.55, 1.5 * F)
    assert rel(downsample(upsample(x, r), r), x) <= ROUND
    noise = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert rel(downsample(upsample(noise, r), r), noise) > 1e3 * ROUND


@pytest.mark.parametrize("dt, r", [(0.004, 2), (0.008, 3)])
def test_downsample_matches_coarse_sampling_and_removes_what_is_above_nyquist(dt, r):
    n = round(T / dt)
    fine = times(n * r, dt / r)
    wavelet = ricker(fine - DELAY, F)
    # A tone at 1.5 x the coarse Nyquist under a Gaussian of 0.05 s: its spectrum is 1/(2 pi 0.05 s)
    # ~ 3 Hz wide, all of it above Nyquist (and below the fine one). Plain decimation folds it to 0.5 x
    # Nyquist; the anti-aliased one removes it.
    f_tone = 1.5 * 0.5 / dt
    tone = torch.exp(-(((fine - 0.6) / 0.05) ** 2) / 2) * torch.cos(2 * math.pi * f_tone * fine)
    coarse = ricker(times(n, dt) - DELAY, F)
    assert rel(downsample(wavelet, r), coarse) <= ROUND
    assert rel(downsample(wavelet + tone, r), coarse) <= ROUND
    assert rel((wavelet + tone)[::r], coarse) > 0.1


def test_gradients_are_exact():
    g = torch.Generator().manual_seed(1)
    for n, r in [(5, 2), (6, 3)]:
        x = torch.randn(2, n, dtype=torch.float64, generator=g, requires_grad=True)
        y = torch.randn(2, n * r, dtype=torch.float64, generator=g, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a: upsample(a, r), (x,))
        assert torch.autograd.gradcheck(lambda a: downsample(a, r), (y,))


@pytest.mark.parametrize("n", [9, 10])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_dtypes_and_r_one(n, dtype):
    x = torch.randn(2, 3, n).to(dtype)
    up = upsample(x, 3)
    assert up.shape == (2, 3, 3 * n) and up.dtype == dtype
    down = downsample(up, 3)
    assert down.shape == (2, 3, n) and down.dtype == dtype
    assert upsample(x, 1) is x and downsample(x, 1) is x


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = torch.randn(4, 50, dtype=torch.float64)
    up = upsample(x.cuda(), 3)
    assert up.device.type == "cuda"
    assert rel(up.cpu(), upsample(x, 3)) <= ROUND
    assert rel(downsample(up, 3).cpu(), downsample(upsample(x, 3), 3)) <= ROUND


@pytest.mark.parametrize("dt", [0.002, 0.004, 0.008])
def test_aliasing_check_accepts_a_5hz_ricker_at_usual_intervals(dt):
    wavelet = ricker(times(round(T / dt), dt) - DELAY, F).float().expand(2, 1, -1)
    assert high_band_energy(wavelet) < MAX_HIGH_BAND_ENERGY
    check_sampling(wavelet, dt)


@pytest.mark.parametrize("dt", [0.04, 0.05])
def test_aliasing_check_refuses_a_5hz_ricker_sampled_too_coarsely(dt):
    # Nyquist at 2.5 and 2 x the peak: the interpolated Ricker is off by at least sqrt(E above Nyquist).
    assert math.sqrt(ricker_energy_above(0.5 / dt / F)) > 0.01
    wavelet = ricker(times(round(2 * T / dt), dt) - DELAY, F)
    with pytest.raises(ValueError, match=r"not band-limited at dt=.*above 0\.8 x Nyquist.*aliases.*cut off"):
        check_sampling(wavelet, dt)


def test_high_band_energy_sees_where_a_tone_is():
    t = times(400, 0.004)
    for fraction_of_nyquist, expected in [(0.5, 0.0), (0.9, 1.0)]:
        tone = torch.exp(-(((t - 0.8) / 0.1) ** 2) / 2) * torch.cos(2 * math.pi * fraction_of_nyquist * 125 * t)
        assert abs(high_band_energy(tone) - expected) < 1e-6
    assert high_band_energy(torch.zeros(3, 10)) == 0.0
    # White noise: flat spectrum, so the band holds its share of the energy (to a few percent, from 1000 samples).
    noise = torch.randn(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert abs(high_band_energy(noise) - (1 - HIGH_BAND)) < 0.05


@pytest.mark.parametrize("fn", [upsample, downsample])
def test_bad_inputs_are_refused_by_name(fn):
    x = torch.zeros(2, 12)
    for r in (0, -1, 2.0, True, "2"):
        with pytest.raises(ValueError, match="r must be a positive int"):
            fn(x, r)
    for bad in (torch.zeros(2, 0), torch.tensor(1.0)):
        with pytest.raises(ValueError, match="x must have a non-empty last"):
            fn(bad, 2)
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        fn(torch.zeros(2, 12, dtype=torch.int64), 2)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        fn([0.0] * 12, 2)


def test_bad_lengths_intervals_and_bands_are_refused_by_name():
    with pytest.raises(ValueError, match=r"x's last axis \(12 samples\) must be a multiple of r=5"):
        downsample(torch.zeros(12), 5)
    for dt in (0.0, -0.004, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="dt must be a positive sample interval"):
            check_sampling(torch.ones(8), dt)
    with pytest.raises(ValueError, match="band must be a fraction of Nyquist"):
        high_band_energy(torch.ones(8), band=1.0)
