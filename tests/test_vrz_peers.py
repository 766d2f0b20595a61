"""sweep's variable-density AcousticVRZ against Deepwave's ``acoustic`` (v, rho), and the constant-density
Acoustic against Deepwave's ``scalar`` as the baseline, on a Marmousi-II section with its shipped density.

The shot: Marmousi-II decimated to 25 m, columns 300-899 of the 12.5 m grid (141 x 300 cells), dt 2 ms
(stable for every contender; Deepwave does not sub-step: step_ratio 1), 700 steps, space order 4, 20
absorbing cells, C-PML tuned to 5 Hz, one source at (z=2, x=150) in the water, 100 receivers at z=4,
Ricker 5 Hz delayed 0.2 s; impl='eager', float64 and float32 (both peers in the same dtype).

What is compared: the zero-lag normalised correlation ``<a, b> / (|a| |b|)`` of the whole gather (nt x nrec),
and the least-squares gain ``<a, b> / <b, b>``, Deepwave's ``a`` against sweep's ``b`` after the source
scaling that makes them solve one problem:

- ``scalar``: its source term is ``-v^2 dt^2 f`` with no ``1/dh^2``, so its data are ``-dh^2`` times sweep
  Acoustic's (as in tests/test_acoustic3d.py's 3-D check).
- ``acoustic``: a volume-rate source ``s`` (1/s per cell) enters as ``K ds/dt``; sweep's is ``vp^2 f / dh^2``;
  fed ``s = dt cumsum(f) / (rho_s dh^2)`` (:func:`sweep.bench.vrz_peers.deepwave_volume_rate`: the time-integrated
  wavelet over the source cell's density and area) Deepwave records sweep's pressure itself (gain 1, sign +).

Measured (eager, Deepwave 0.1.0, CPU; float64, float32 the same to the digits shown): scalar vs Acoustic
correlation 1 - 4e-11, gain 0.999998; acoustic vs VRZ correlation 0.99996, gain 0.9982 (staggered first
derivatives against sweep's centred pair-averaged second derivatives, and different C-PMLs); shifted one step
either way 0.9981 / 0.9978, and the parabola through the three lags peaks at -0.04 steps: no time shift
between the staggered and the second-order scheme (both record p at t = n dt; Deepwave's source sample i
acts at (i + 1/2) dt, which the cumulative sum accounts for). The density matters: Deepwave acoustic against
sweep's constant-density Acoustic (same vp) correlates 0.983 only.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("deepwave", reason="Deepwave is the optional bench extra (pip install -e '.[bench]'), "
                                       "not installed in CI")

from sweep.bench.speed import deepwave_output  # noqa: E402
from sweep.bench.vrz_peers import deepwave_acoustic_output, vrz_models
from sweep.datasets import load_marmousi  # noqa: E402
from sweep.datasets import MARMOUSI_DH, load_marmousi  # noqa: E402
from sweep.equations import Acoustic, AcousticVRZ  # noqa: E402
from sweep.propagator.torch import PropTorch  # noqa: E402
from sweep.signal import ricker  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:At least six grid cells per wavelength",
                                        "ignore:only .* grid points per shortest wavelength")

DEC, COLUMNS, NT, DT, F0, DELAY, NREC = 2, slice(300, 900), 700, 0.002, 5.0, 0.2, 100
ABCN, ORDER = 20, 4


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)  # float32 sums would round it past 1
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


def gain(a: np.ndarray, b: np.ndarray) -> float:
    """The least-squares scale of ``b`` that fits ``a``."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float((a * b).sum() / (b * b).sum())


def lagged(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """Correlation of ``a`` at t + lag steps with ``b`` at t (over the overlap)."""
    return correlation(a[lag:], b[:-lag]) if lag > 0 else correlation(a[:lag], b[-lag:])


@pytest.fixture(scope="module", params=[torch.float64, torch.float32], ids=["float64", "float32"])
def shot(request) -> dict:
    dtype = request.param
    vp = load_marmousi("true")[::DEC, COLUMNS][:, ::DEC]
    rho = load_marmousi("true", model="rho")[::DEC, COLUMNS][:, ::DEC]
    nx = vp.shape[1]
    receivers = np.stack([np.linspace(0, nx - 1, NREC).round().astype(np.int64), np.full(NREC, 4)], -1)[None]
    wavelet = torch.from_numpy(ricker(np.arange(NT) * DT - DELAY, F0)).to(dtype)
    return dict(vp=torch.from_numpy(vp).to(dtype), rho=torch.from_numpy(rho).to(dtype),
                dh=DEC * MARMOUSI_DH, wavelet=wavelet, sources=np.array([[nx // 2, 2]]), receivers=receivers)


def sweep_gather(shot: dict, equation, models: list[torch.Tensor]) -> np.ndarray:
    """sweep's receivers (nt, nrec), impl='eager'."""
    prop = PropTorch(equation, tuple(shot["vp"].shape), shot["dh"], DT, NT, abcn=ABCN, space_order=ORDER,
                     impl="eager", pml_freq=F0)
    with torch.no_grad():
        return prop(shot["wavelet"], shot["sources"], shot["receivers"], models)[0, :, :, 0].numpy()


@pytest.fixture(scope="module")
def acoustic(shot) -> np.ndarray:
    return sweep_gather(shot, Acoustic(), [shot["vp"]])


def test_scalar_matches_acoustic(shot, acoustic):
    out = deepwave_output(shot, NT, shot["vp"], dt=DT, pml_freq=F0)
    assert out.info.step_ratio == 1
    theirs = out.receiver_amplitudes[0].T.numpy()
    expected = -shot["dh"] ** 2 * acoustic  # scalar's source term: -v^2 dt^2 f, no 1/dh^2
    corr, g = correlation(theirs, expected), gain(theirs, expected)
    print(f"Deepwave scalar vs sweep Acoustic: correlation {corr:.12f}, gain {g:.7f}")
    assert corr >= 0.99999 and abs(g - 1) < 1e-3  # measured 1 - 4e-11 and 0.999998


def test_acoustic_matches_vrz(shot, acoustic):
    out = deepwave_acoustic_output(shot, NT, shot["vp"], shot["rho"], dt=DT, pml_freq=F0)
    assert out.info.step_ratio == 1
    theirs = out.receiver_amplitudes_p[0].T.numpy()
    ours = sweep_gather(shot, AcousticVRZ(), vrz_models(shot["vp"], shot["rho"]))
    corr, g = correlation(theirs, ours), gain(theirs, ours)
    before, after = lagged(theirs, ours, -1), lagged(theirs, ours, 1)
    peak = 0.5 * (before - after) / (before - 2 * corr + after)  # parabola through lags -1, 0, 1 (steps)
    constant = correlation(theirs, acoustic)
    print(f"Deepwave acoustic vs sweep AcousticVRZ: correlation {corr:.6f}, gain {g:.5f}, lag -1 {before:.5f}, "
          f"lag +1 {after:.5f}, peak at {peak:+.3f} steps; vs constant-density Acoustic {constant:.4f}")
    assert corr >= 0.999 and abs(g - 1) < 0.01  # measured 0.99996 and 0.9982
    assert abs(peak) < 0.1  # measured -0.04: no time shift
    assert max(before, after) < corr - 1e-3  # the comparison sees a one-step misalignment
    assert constant < 0.99  # measured 0.983: the density's reflections are what VRZ adds
