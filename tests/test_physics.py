"""Physics of the eager back-end against independent references: the analytic 2-D Green's function,
a much larger grid (absorbing-layer reflections) and an image source (free surface)."""
import numpy as np
import pytest
import torch
from scipy.special import hankel2

from sweep.equations import Acoustic
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker

V, DH, DT, F0, DELAY = 2000.0, 5.0, 0.0005, 15.0, 0.1


def wavelet(nt):
    return ricker(np.arange(nt) * DT - DELAY, F0)


def run(shape, nt, sources, receivers, wav, dtype=torch.float64, **kw):
    solver = PropTorch(Acoustic(), shape, DH, DT, nt, impl="eager", **kw)
    with torch.no_grad():
        return solver(wav, sources, receivers, [torch.full(shape, V, dtype=dtype)])[0, :, :, 0].numpy()


def analytic_trace(wav, r):
    """Wavelet convolved with the 2-D Green's function of (1/v^2) d_tt - laplacian at distance r (m),
    evaluated in the frequency domain (e^{+i w t} convention: G = -i/4 H0^(2)(w r / v))."""
    nt = wav.shape[-1]
    n = 8 * nt  # long zero padding: the 2-D Green's function has a 1/t tail
    spectrum = np.fft.rfft(wav, n)
    omega = 2 * np.pi * np.fft.rfftfreq(n, DT)
    green = np.zeros_like(spectrum)
    green[1:] = -0.25j * hankel2(0, omega[1:] * r / V)
    return np.fft.irfft(spectrum * green, n)[:nt]


@pytest.mark.parametrize("space_order", [4, 8])
def test_homogeneous_trace_matches_analytic_greens_function(space_order):
    nt, n, c = 600, 101, 50
    receivers = np.array([[[c + 36, c], [c, c + 30], [c + 24, c + 24]]])
    data = run((n, n), nt, np.array([[c, c]]), receivers, wavelet(nt), space_order=space_order)
    t = np.arange(nt) * DT
    for i, (x, z) in enumerate(receivers[0]):
        r = DH * np.hypot(x - c, z - c)
        expected = analytic_trace(wavelet(nt), r)
        window = (t > r / V + DELAY - 1.5 / F0) & (t < r / V + DELAY + 2.5 / F0)
        err = np.linalg.norm(data[window, i] - expected[window]) / np.linalg.norm(expected[window])
        assert err < 0.02, f"receiver {i} at {r:.0f} m: relative L2 error {err:.4f}"


def test_analytic_reference_is_sensitive_to_velocity():
    """The comparison above can fail: a 3% velocity error is far outside its tolerance."""
    nt, n, c = 600, 101, 50
    solver = PropTorch(Acoustic(), (n, n), DH, DT, nt, impl="eager")
    with torch.no_grad():
        data = solver(wavelet(nt), np.array([[c, c]]), np.array([[[c + 36, c]]]),
                      [torch.full((n, n), 1.03 * V, dtype=torch.float64)])[0, :, 0, 0].numpy()
    r = 36 * DH
    t = np.arange(nt) * DT
    window = (t > r / V + DELAY - 1.5 / F0) & (t < r / V + DELAY + 2.5 / F0)
    expected = analytic_trace(wavelet(nt), r)
    assert np.linalg.norm(data[window] - expected[window]) / np.linalg.norm(expected[window]) > 0.1


@pytest.mark.parametrize("space_order", [2, 4, 8])
def test_pml_reflection_below_one_percent(space_order):
    """A 61x61 grid with 20 absorbing cells against a grid so large its edges are never reached."""
    nt, n, big = 700, 61, 241
    off = (big - n) // 2
    sources = np.array([[30, 30]])
    receivers = np.array([[[5, 30], [30, 5], [55, 55], [10, 50]]])
    small = run((n, n), nt, sources, receivers, wavelet(nt), dtype=torch.float32, space_order=space_order)
    reference = run((big, big), nt, sources + off, receivers + off, wavelet(nt), dtype=torch.float32,
                    space_order=space_order)
    # The reference's own edges are too far for any reflection to reach a receiver within nt steps.
    nearest_edge_path = (off + sources.min() + off + receivers.min()) * DH
    assert nearest_edge_path / V > nt * DT
    reflection = np.abs(small - reference).max(axis=0) / np.abs(reference).max(axis=0)
    assert reflection.max() < 0.01, reflection
    no_pml = run((n, n), nt, sources, receivers, wavelet(nt), dtype=torch.float32, space_order=space_order, abcn=0)
    assert (np.abs(no_pml - reference).max(axis=0) / np.abs(reference).max(axis=0)).min() > 0.1


@pytest.mark.parametrize("space_order,tolerance", [(2, 1e-6), (4, 0.03), (8, 0.04)])
def test_free_surface_is_an_opposite_sign_image_source(space_order, tolerance):
    """With a free surface the field equals, in an unbounded medium, the source plus an image source of
    opposite sign mirrored about the row above the model (exactly for the 3-point stencil)."""
    nt, nz, nx, extra, zs = 450, 50, 81, 40, 10
    receivers = np.array([[[40, 5], [70, 5], [40, 30]]])
    with_surface = run((nz, nx), nt, np.array([[40, zs]]), receivers, wavelet(nt), space_order=space_order,
                       free_surface=True)
    pair = np.array([[[40, zs + extra], [40, extra - 2 - zs]]])
    shifted = receivers + np.array([0, extra])
    image = run((nz + extra, nx), nt, pair, shifted, np.stack([wavelet(nt), -wavelet(nt)])[None],
                space_order=space_order)
    err = np.linalg.norm(with_surface - image, axis=0) / np.linalg.norm(image, axis=0)
    assert err.max() < tolerance, err
    same_sign = run((nz + extra, nx), nt, pair, shifted, np.stack([wavelet(nt), wavelet(nt)])[None],
                    space_order=space_order)
    assert (np.linalg.norm(with_surface - same_sign, axis=0) / np.linalg.norm(same_sign, axis=0)).min() > 0.3
