"""Causal low-pass: pass band, stop band, causality, commuting with propagation, types and argument checks."""
import numpy as np
import pytest
import torch

from sweep.equations import Acoustic
from sweep.fwi.filters import lowpass
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker

DT = 0.002
T = np.arange(1500) * DT


def _middle_amplitude(x):
    return np.abs(x[300:-300]).max()


def test_passes_low_and_stops_high_frequencies():
    low, high = np.sin(2 * np.pi * 2.0 * T), np.sin(2 * np.pi * 40.0 * T)
    assert _middle_amplitude(lowpass(low, 10.0, DT)) == pytest.approx(1.0, rel=0.01)
    assert 20 * np.log10(_middle_amplitude(lowpass(high, 10.0, DT))) < -40


def test_causal():
    """Nothing comes out before the first non-zero input sample."""
    x = np.zeros_like(T)
    x[700:] = np.random.default_rng(1).standard_normal(T.size - 700)
    out = lowpass(x, 12.0, DT)
    assert np.all(out[:700] == 0) and np.abs(out[700:]).max() > 0


def test_commutes_with_a_truncated_causal_convolution():
    """filter(g * w) == g * filter(w) sample for sample up to the end of the record: what makes
    low-passed data and the data of the low-passed wavelet agree in frequency continuation."""
    rng = np.random.default_rng(2)
    w, g = rng.standard_normal(T.size), rng.standard_normal(200)
    record = lambda s: np.convolve(g, s)[:T.size]  # noqa: E731
    np.testing.assert_allclose(lowpass(record(w), 12.0, DT), record(lowpass(w, 12.0, DT)), atol=1e-9)


@pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")
def test_low_passed_data_equal_data_of_low_passed_wavelet():
    nt, dt = 120, 0.001
    prop = PropTorch(Acoustic(), (12, 14), 10.0, dt, nt, abcn=4, impl="eager", pml_freq=30.0)
    vp = torch.full((12, 14), 2000.0, dtype=torch.float64)
    wavelet = ricker(torch.arange(nt, dtype=torch.float64) * dt - 0.02, 60.0)
    src, rec = np.array([[6, 5]]), np.array([[[2, 3], [11, 9]]])
    with torch.no_grad():
        filtered_data = lowpass(prop(wavelet, src, rec, [vp]), 25.0, dt, axis=1)
        data_of_filtered = prop(lowpass(wavelet, 25.0, dt), src, rec, [vp])
    assert float(data_of_filtered.abs().max()) > 0
    torch.testing.assert_close(filtered_data, data_of_filtered, rtol=0, atol=1e-12 * float(filtered_data.abs().max()))


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
