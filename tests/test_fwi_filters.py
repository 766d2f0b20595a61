"""Zero-phase low-pass: pass band, stop band, phase, types and argument checks."""
import numpy as np
import pytest
import torch

from sweep.fwi.filters import lowpass
from sweep.signal import ricker

DT = 0.002
T = np.arange(1500) * DT


def _middle_amplitude(x):
    return np.abs(x[300:-300]).max()


def test_passes_low_and_stops_high_frequencies():
    low, high = np.sin(2 * np.pi * 2.0 * T), np.sin(2 * np.pi * 40.0 * T)
    assert _middle_amplitude(lowpass(low, 10.0, DT)) == pytest.approx(1.0, rel=0.01)
    assert 20 * np.log10(_middle_amplitude(lowpass(high, 10.0, DT))) < -40


def test_zero_phase_keeps_ricker_peak():
    wavelet = ricker(T - 1.0, 8.0)
    filtered = lowpass(wavelet, 12.0, DT)
    assert np.argmax(filtered) == np.argmax(wavelet)


def test_filters_along_axis_of_data():
    data = np.stack([np.sin(2 * np.pi * 40.0 * T)] * 3, axis=-1)[None, :, :, None]  # (1, nt, 3, 1)
    out = lowpass(data, 10.0, DT, axis=1)
    assert out.shape == data.shape
    assert np.abs(out[0, 300:-300]).max() < 0.01


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_in_torch_out(dtype):
    x = torch.tensor(np.sin(2 * np.pi * 2.0 * T), dtype=dtype, requires_grad=True)
    out = lowpass(x, 10.0, DT)
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.device == x.device
    assert not out.requires_grad


def test_numpy_dtype_kept_and_short_signal_filtered():
    x = np.random.default_rng(0).standard_normal(10).astype(np.float32)
    out = lowpass(x, 10.0, DT)
    assert out.dtype == np.float32 and out.shape == x.shape and np.isfinite(out).all()


@pytest.mark.parametrize("cutoff", [250.0, 300.0, 0.0, -5.0])
def test_cutoff_out_of_range(cutoff):
    with pytest.raises(ValueError, match=r"cutoff.*Nyquist = 250 Hz"):
        lowpass(np.zeros(100), cutoff, DT)


def test_bad_dt_and_order():
    with pytest.raises(ValueError, match="dt"):
        lowpass(np.zeros(100), 10.0, 0.0)
    with pytest.raises(ValueError, match="order"):
        lowpass(np.zeros(100), 10.0, DT, order=0)
