"""Marmousi-II P-wave velocity and density at 12.5 m, shipped inside the package and verified on load.

Provenance (full text in ``sweep/datasets/data/PROVENANCE.md``): the AGL Elastic Marmousi-II model
(Martin, Wiley and Marfurt, 2006, The Leading Edge 25(2), 156-166), point-decimated by 10 from the
1.25 m SEG-Y to 12.5 m (``a[::10, ::10]``, no anti-alias filter) and stored as float16 (rounding at most
2 m/s in vp), then cast back to float32. Shape (281, 1361) = (nz, nx), axis 0 depth, top row the sea
surface; 450 m of water (rows 0-36) at 1500 m/s and 1010 kg/m^3; vp range 1028-4700 m/s, density
(``model='rho'``) 1010-2626 kg/m^3. Please cite the model.
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
_MODELS = ("vp", "rho")


def _bundled_bytes() -> bytes:
    return resources.files("sweep.datasets").joinpath("data", _FILENAME).read_bytes()


def _read(path: str | os.PathLike | None, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``names`` (each 'vp' or 'rho') of the shipped file (sha256 verified) or of ``path``,
    float32 (nz, nx), finite and positive; errors name ``path`` and the array."""
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
        if names != ("vp",):  # a .npy holds one unnamed array, read as vp
            raise ValueError(f"path: {os.fspath(path)!r} is a .npy, one unnamed array read as vp; model='rho' "
                             "needs an .npz with a 'rho' array (density, kg/m^3)")
        arrays = {"vp": np.load(source, allow_pickle=False)}
    else:
        with np.load(source, allow_pickle=False) as archive:
            missing = [n for n in names if n not in archive]
            if missing:
                hint = "; model='rho' reads the density (kg/m^3) from 'rho'" if missing[0] == "rho" else ""
                raise ValueError(f"path: {os.fspath(path)!r} has no {missing[0]!r} array "
                                 f"(keys: {list(archive.keys())}){hint}")
            arrays = {n: archive[n] for n in names}
    for name, a in arrays.items():
        if a.ndim != 2:
            raise ValueError(f"path: expected a 2-D (nz, nx) {name} array, got shape {a.shape}")
        a = arrays[name] = np.ascontiguousarray(a, dtype=np.float32)
        if not np.all(np.isfinite(a)) or a.min() <= 0:
            raise ValueError(f"path: {name} must be finite and positive everywhere")
    if len({a.shape for a in arrays.values()}) > 1:
        raise ValueError(f"path: vp and rho differ in shape: {arrays['vp'].shape} and {arrays['rho'].shape}")
    return arrays


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


def smooth_density(rho: np.ndarray, vp: np.ndarray, dh: float, length_m: float = SMOOTHING_LENGTH_M) -> np.ndarray:
    """Smooth starting density: Gaussian of standard deviation ``length_m`` (m) on the density itself, with
    the water column of ``vp`` (see :func:`water_mask`) reset to its original density.

    ``rho`` (kg/m^3) and ``vp`` (m/s) are (nz, nx) or (nz, ny, nx) with axis 0 depth and spacing ``dh`` (m)
    on every axis; the result has ``rho``'s shape, float32, kg/m^3.

    Density is averaged as it is, not as its inverse: for waves longer than the layering the effective
    density is the volume (arithmetic) average of density (Backus averaging), as the effective slowness
    is what matters for :func:`smooth_model`'s traveltimes. The same ``length_m`` as the smooth velocity
    gives both models one resolution, so ``z = rho * vp`` of the two smooth models is a consistent
    impedance starting model; the water keeps its known density.
    """
    mask = water_mask(vp)
    out = gaussian_filter(rho.astype(np.float64), sigma=length_m / dh, mode="nearest").astype(np.float32)
    out[mask] = rho[mask]
    return out


def load_marmousi(kind: str = "true", path: str | os.PathLike | None = None, model: str = "vp") -> np.ndarray:
    """Marmousi-II P-wave velocity (m/s) or density (kg/m^3), float32, shape (nz, nx) = (281, 1361), spacing
    ``MARMOUSI_DH``.

    Parameters
    ----------
    kind : {'true', 'smooth'}
        ``'true'``: the model as shipped. ``'smooth'``: a usual FWI starting model: for vp
        :func:`smooth_model` (250 m Gaussian on slowness, water kept at 1500 m/s), for rho
        :func:`smooth_density` (250 m Gaussian on density, water kept at its 1010 kg/m^3).
    path : path, optional
        Load from your own ``.npz`` (key ``'vp'``, and ``'rho'`` for the density) or ``.npy`` (vp only)
        instead of the shipped copy (whose sha256 is verified on every load). Your grid is assumed to have
        spacing ``MARMOUSI_DH``.
    model : {'vp', 'rho'}
        ``'vp'``: P-wave velocity, m/s (1028-4700 shipped). ``'rho'``: density, kg/m^3 (1010-2626 shipped,
        1010 in the water); its ``'smooth'`` kind also reads vp, whose water column it keeps.

    Returns
    -------
    numpy.ndarray, float32, (nz, nx), m/s or kg/m^3; a new array the caller owns.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if model not in _MODELS:
        raise ValueError(f"model must be one of {_MODELS}, got {model!r}")
    names = ("vp",) if model == "vp" else ("rho",) if kind == "true" else ("rho", "vp")
    arrays = _read(path, names)
    if model == "rho":
        return arrays["rho"] if kind == "true" else smooth_density(arrays["rho"], arrays["vp"], MARMOUSI_DH)
    return smooth_model(arrays["vp"], MARMOUSI_DH) if kind == "smooth" else arrays["vp"]
