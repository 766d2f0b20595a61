"""The shipped Marmousi-II model, user model files, and the Ricker wavelet."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from sweep.datasets import MARMOUSI_DH, load_marmousi
from sweep.signal import ricker

marmousi = importlib.import_module("sweep.datasets.marmousi")


@pytest.fixture(scope="module")
def true_vp() -> np.ndarray:
    return load_marmousi("true")


@pytest.fixture(scope="module")
def smooth_vp() -> np.ndarray:
    return load_marmousi("smooth")


def total_variation(a: np.ndarray) -> float:
    a = a.astype(np.float64)
    return float(np.abs(np.diff(a, axis=0)).sum() + np.abs(np.diff(a, axis=1)).sum())


def test_marmousi_dh():
    assert MARMOUSI_DH == 12.5


def test_true_model(true_vp):
    assert true_vp.shape == (281, 1361)
    assert true_vp.dtype == np.float32
    assert true_vp.min() == 1028.0
    assert true_vp.max() == 4700.0
    assert np.all(true_vp[:37] == 1500.0)          # 450 m of water: rows 0..36
    assert not np.all(true_vp[37] == 1500.0)        # the sea floor starts at row 37 somewhere
    assert np.all(np.isfinite(true_vp))
    assert true_vp.flags["C_CONTIGUOUS"]
    assert load_marmousi().shape == (281, 1361)    # kind defaults to 'true'
    np.testing.assert_array_equal(load_marmousi(), true_vp)


def test_returns_a_new_array(true_vp):
    a = load_marmousi("true")
    a[:] = 0.0
    np.testing.assert_array_equal(load_marmousi("true"), true_vp)
    assert true_vp.min() == 1028.0


def test_smooth_model(true_vp, smooth_vp):
    assert smooth_vp.shape == true_vp.shape and smooth_vp.dtype == np.float32
    assert np.all(smooth_vp[:37] == 1500.0)          # water column kept
    assert smooth_vp.min() >= true_vp.min() and smooth_vp.max() <= true_vp.max()
    assert np.all(np.isfinite(smooth_vp))
    # Much smoother below the water.
    assert total_variation(smooth_vp[37:]) < 0.3 * total_variation(true_vp[37:])
    # ... but the same model at long wavelengths: a deep, wide average barely moves.
    deep_true, deep_smooth = true_vp[150:250, 300:1000].mean(), smooth_vp[150:250, 300:1000].mean()
    assert abs(deep_smooth - deep_true) < 0.05 * deep_true
    assert not np.array_equal(smooth_vp, true_vp)


def test_notebook_decimation(true_vp, smooth_vp):
    assert true_vp[::2, ::2].shape == (141, 681)
    assert smooth_vp[::2, ::2].shape == (141, 681)


def test_corrupted_package_file_detected(monkeypatch):
    raw = marmousi._bundled_bytes()
    altered = bytearray(raw)
    altered[len(altered) // 2] ^= 0xFF
    monkeypatch.setattr(marmousi, "_bundled_bytes", lambda: bytes(altered))
    with pytest.raises(OSError, match="sha256"):
        load_marmousi("true")
    with pytest.raises(OSError, match="sha256"):
        load_marmousi("smooth")
    monkeypatch.setattr(marmousi, "_bundled_bytes", lambda: raw[:-10])  # truncated
    with pytest.raises(OSError, match="sha256"):
        load_marmousi("true")


def test_user_npz_and_npy(tmp_path):
    vp = np.linspace(1500, 3000, 6 * 9, dtype=np.float64).reshape(6, 9)
    npz = tmp_path / "model.npz"
    np.savez(npz, vp=vp, other=np.zeros(3))
    npy = tmp_path / "model.npy"
    np.save(npy, vp)
    for p in (npz, str(npz), npy, str(npy)):
        out = load_marmousi("true", path=p)
        assert out.shape == (6, 9) and out.dtype == np.float32
        np.testing.assert_allclose(out, vp.astype(np.float32))
    sm = load_marmousi("smooth", path=npz)
    assert sm.shape == (6, 9) and sm.dtype == np.float32
    assert sm.min() >= vp.min() - 1e-3 and sm.max() <= vp.max() + 1e-3


def test_user_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        load_marmousi("true", path=tmp_path / "missing.npz")
    no_vp = tmp_path / "novp.npz"
    np.savez(no_vp, velocity=np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"'vp'.*velocity"):
        load_marmousi("true", path=no_vp)
    one_d = tmp_path / "oned.npy"
    np.save(one_d, np.full(10, 2000.0))
    with pytest.raises(ValueError, match=r"2-D"):
        load_marmousi("true", path=one_d)
    one_d_npz = tmp_path / "oned.npz"
    np.savez(one_d_npz, vp=np.full(10, 2000.0))
    with pytest.raises(ValueError, match=r"2-D"):
        load_marmousi("true", path=one_d_npz)
    bad_values = tmp_path / "neg.npy"
    np.save(bad_values, np.array([[1500.0, -1.0], [1500.0, 1500.0]]))
    with pytest.raises(ValueError, match=r"positive"):
        load_marmousi("true", path=bad_values)
    nan_values = tmp_path / "nan.npy"
    np.save(nan_values, np.array([[1500.0, np.nan], [1500.0, 1500.0]]))
    with pytest.raises(ValueError, match=r"finite"):
        load_marmousi("true", path=nan_values)


@pytest.mark.parametrize("kind", ["smoothed", "TRUE", "", None, 1])
def test_bad_kind(kind):
    with pytest.raises(ValueError, match="kind must be one of"):
        load_marmousi(kind)


@pytest.fixture(scope="module")
def true_rho() -> np.ndarray:
    return load_marmousi("true", model="rho")


def test_true_density(true_rho, true_vp):
    assert true_rho.shape == true_vp.shape == (281, 1361) and true_rho.dtype == np.float32
    assert true_rho.min() == 1010.0 and true_rho.max() == 2626.0
    water = marmousi.water_mask(true_vp)
    assert 1010.0 <= true_rho[water].min() and true_rho[water].max() <= 1030.0
    assert true_rho[~water].min() > 1030.0                  # sediments are denser than the sea
    assert load_marmousi(model="vp").shape == (281, 1361)   # model defaults to vp, kind to 'true'
    np.testing.assert_array_equal(load_marmousi("true", model="vp"), true_vp)


def test_smooth_density(true_rho, true_vp):
    smooth = load_marmousi("smooth", model="rho")
    assert smooth.shape == true_rho.shape and smooth.dtype == np.float32
    assert np.all(smooth[:37] == true_rho[:37])             # water kept at 1010 kg/m^3
    assert smooth.min() >= true_rho.min() and smooth.max() <= true_rho.max()
    assert total_variation(smooth[37:]) < 0.3 * total_variation(true_rho[37:])
    # an arithmetic average: a deep, wide mean of density barely moves
    assert abs(smooth[150:250, 300:1000].mean() - true_rho[150:250, 300:1000].mean()) < 0.01 * true_rho.mean()


def test_density_sha256_checked(monkeypatch):
    raw = marmousi._bundled_bytes()
    monkeypatch.setattr(marmousi, "_bundled_bytes", lambda: raw[:-10])
    for kind in ("true", "smooth"):
        with pytest.raises(OSError, match="sha256"):
            load_marmousi(kind, model="rho")


def test_user_density_file(tmp_path):
    vp = np.full((6, 9), 2500.0)
    vp[:2] = 1500.0
    rho = np.linspace(1000, 2400, 54).reshape(6, 9)
    both = tmp_path / "both.npz"
    np.savez(both, vp=vp, rho=rho)
    np.testing.assert_allclose(load_marmousi("true", path=both, model="rho"), rho.astype(np.float32))
    smooth = load_marmousi("smooth", path=both, model="rho")
    np.testing.assert_array_equal(smooth[:2], rho[:2].astype(np.float32))  # the water rows of vp
    vp_only = tmp_path / "vp_only.npz"
    np.savez(vp_only, vp=vp)
    with pytest.raises(ValueError, match=r"has no 'rho' array.*model='rho'"):
        load_marmousi("true", path=vp_only, model="rho")
    npy = tmp_path / "vp.npy"
    np.save(npy, vp)
    with pytest.raises(ValueError, match=r"\.npy.*model='rho' needs an \.npz"):
        load_marmousi("true", path=npy, model="rho")
    bad = tmp_path / "bad.npz"
    np.savez(bad, vp=vp, rho=-rho)
    with pytest.raises(ValueError, match="rho must be finite and positive"):
        load_marmousi("true", path=bad, model="rho")
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, vp=vp, rho=rho[:5])
    with pytest.raises(ValueError, match="differ in shape"):
        load_marmousi("smooth", path=mismatch, model="rho")


@pytest.mark.parametrize("model", ["density", "RHO", "z", "", None])
def test_bad_model(model):
    with pytest.raises(ValueError, match="model must be one of"):
        load_marmousi("true", model=model)


def test_ricker():
    assert ricker(np.array([0.0]), f=5.0)[0] == 1.0
    assert float(ricker(torch.tensor([0.0]), f=5.0)[0]) == 1.0
    t = np.linspace(-1.0, 1.0, 4001)
    w = ricker(t, f=5.0)
    assert w.max() == pytest.approx(1.0) and np.argmax(w) == 2000
    assert abs(w.mean()) < 1e-6
    np.testing.assert_allclose(w, w[::-1], atol=1e-12)          # symmetric about t = 0
    # zero crossings at t = +-1/(pi f sqrt 2)
    t0 = 1.0 / (np.pi * 5.0 * np.sqrt(2.0))
    assert abs(ricker(np.array([t0]), f=5.0)[0]) < 1e-12
    # numpy and torch agree, dtype and shape preserved
    t32 = np.linspace(-0.3, 0.3, 60, dtype=np.float32).reshape(3, 20)
    wn = ricker(t32, f=7.5)
    wt = ricker(torch.from_numpy(t32), f=7.5)
    assert isinstance(wt, torch.Tensor) and wt.dtype == torch.float32 and wt.shape == (3, 20)
    assert isinstance(wn, np.ndarray) and wn.dtype == np.float32 and wn.shape == (3, 20)
    np.testing.assert_allclose(wt.numpy(), wn, rtol=1e-6, atol=1e-6)
    w64 = ricker(torch.linspace(-0.3, 0.3, 21, dtype=torch.float64), f=7.5)
    assert w64.dtype == torch.float64
    np.testing.assert_allclose(w64.numpy(), ricker(np.linspace(-0.3, 0.3, 21), f=7.5), rtol=0, atol=1e-14)


@pytest.mark.parametrize("f", [0.0, -5.0, float("nan"), float("inf")])
def test_ricker_bad_frequency(f):
    with pytest.raises(ValueError, match="f must be a positive"):
        ricker(np.zeros(3), f=f)
    with pytest.raises(ValueError, match="f must be a positive"):
        ricker(torch.zeros(3), f=f)
