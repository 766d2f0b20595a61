"""Marmousi-II P-wave velocity at 12.5 m, shipped inside the package and verified on load.

Provenance (full text in ``sweep/datasets/data/PROVENANCE.md``): the AGL Elastic Marmousi-II model
(Martin, Wiley and Marfurt, 2006, The Leading Edge 25(2), 156-166), point-decimated by 10 from the
1.25 m SEG-Y to 12.5 m (``a[::10, ::10]``, no anti-alias filter) and stored as float16 (rounding at most
2 m/s in vp), then cast back to float32. Shape (281, 1361) = (nz, nx), axis 0 depth, top row the sea
surface; 450 m of water (rows 0-36) at 1500 m/s; vp range 1028-4700 m/s. Please cite the model.
"""
from __future__ import annotations

import hashlib
import os
from importlib import resources

import numpy as np
from scipy.ndimage import gaussian_filter

MARMOUSI_DH = 12.5
"""Grid spacing of the shipped Marmousi-II arrays, metres (dz = dx)."""

MARMOUSI_SHAPE = (281, 1361)
MARMOUSI_SHA256 = "fad4581151d5858647df42964cbb1e1b476fb4de638eb779ddb65da42489dcb8"
WATER_VELOCITY = 1500.0
SMOOTHING_LENGTH_M = 250.0
"""Standard deviation (m) of the Gaussian applied to slowness for the ``'smooth'`` model."""

_FILENAME = "marmousi2_12.5m.npz"
_KINDS = ("true", "smooth")


def _bundled_bytes() -> bytes:
    return resources.files("sweep.datasets").joinpath("data", _FILENAME).read_bytes()


def _read_vp(path: str | os.PathLike | None) -> np.ndarray:
    if path is None:
        raw = _bundled_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if digest != MARMOUSI_SHA256:
            raise OSError(
                f"the packaged {_FILENAME} is corrupt: sha256 {digest}, expected {MARMOUSI_SHA256}; reinstall sweep"
            )
        import io

        source = io.BytesIO(raw)
    else:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"path: no such file {os.fspath(path)!r}")
        source = path
    if path is not None and os.fspath(path).endswith(".npy"):
        vp = np.load(source, allow_pickle=False)
    else:
        with np.load(source, allow_pickle=False) as archive:
            if "vp" not in archive:
                raise ValueError(f"path: {os.fspath(path)!r} has no 'vp' array (keys: {list(archive.keys())})")
            vp = archive["vp"]
    if vp.ndim != 2:
        raise ValueError(f"path: expected a 2-D (nz, nx) vp array, got shape {vp.shape}")
    vp = np.ascontiguousarray(vp, dtype=np.float32)
    if not np.all(np.isfinite(vp)) or vp.min() <= 0:
        raise ValueError("path: vp must be finite and positive everywhere")
    return vp


def water_mask(vp: np.ndarray, water_velocity: float = WATER_VELOCITY) -> np.ndarray:
    """Boolean mask of the water column, the shape of ``vp`` ((nz, nx) or (nz, ny, nx), axis 0 depth):
    per column, the cells from the top down to the first cell whose velocity differs from
    ``water_velocity``."""
    not_water = vp != water_velocity
    first_rock = np.where(not_water.any(axis=0), not_water.argmax(axis=0), vp.shape[0])
    depth = np.arange(vp.shape[0]).reshape((-1,) + (1,) * (vp.ndim - 1))
    return depth < first_rock[None]


def smooth_model(vp: np.ndarray, dh: float, length_m: float = SMOOTHING_LENGTH_M) -> np.ndarray:
    """Smooth starting model: Gaussian of standard deviation ``length_m`` (m) on the slowness, with
    the water column (see :func:`water_mask`) reset to its original velocity.

    ``vp`` is (nz, nx) or (nz, ny, nx) in m/s with axis 0 depth and spacing ``dh`` (m) on every axis;
    the Gaussian is isotropic (the same ``length_m`` along every axis) and the result has ``vp``'s shape.

    Smoothing slowness rather than velocity keeps traveltimes closer to the true model's.
    """
    mask = water_mask(vp)
    slowness = gaussian_filter(1.0 / vp.astype(np.float64), sigma=length_m / dh, mode="nearest")
    out = (1.0 / slowness).astype(np.float32)
    out[mask] = vp[mask]
    return out


def load_marmousi(kind: str = "true", path: str | os.PathLike | None = None) -> np.ndarray:
    """Marmousi-II P-wave velocity (m/s), float32, shape (nz, nx) = (281, 1361), spacing ``MARMOUSI_DH``.

    Parameters
    ----------
    kind : {'true', 'smooth'}
        ``'true'``: the model as shipped. ``'smooth'``: :func:`smooth_model` of it (250 m Gaussian on
        slowness, water kept at 1500 m/s), a usual FWI starting model.
    path : path, optional
        Load vp from your own ``.npz`` (key ``'vp'``) or ``.npy`` instead of the shipped copy (whose
        sha256 is verified on every load). Your grid is assumed to have spacing ``MARMOUSI_DH``.

    Returns
    -------
    numpy.ndarray, float32, (nz, nx), m/s; a new array the caller owns.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    vp = _read_vp(path)
    return smooth_model(vp, MARMOUSI_DH) if kind == "smooth" else vp
