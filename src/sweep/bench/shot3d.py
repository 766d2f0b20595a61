"""The 3-D shots of ``sweep-bench --equation acoustic3d`` and of ``python -m sweep.bench.speed --sections 3d``.

Every 3-D shot is the layered 3-D model (:func:`sweep.datasets.layered_3d`, true model for the observed
data, its smooth version as the model the gradient is taken at) on a cube of ``n`` cells at
``dh = 25 m``, space order 4, 20 absorbing cells on every face, ``dt = 2 ms`` (the stability limit at
4500 m/s is 2.78 ms), a 4 Hz Ricker delayed by one period (0.25 s). The wavelet reaches 9.3 Hz (5 % of
its spectral peak), so the 1500 m/s water has 6.5 grid points per shortest wavelength, above the 5
below which sweep warns of dispersion. One source at the surface centre (``[x, y, z] = [n/2, n/2, 2]``),
a patch of receivers at depth index 4 every ``rec_step`` cells in x and y.

Grids (:data:`GRIDS`): ``large`` 160^3 (4 km cube) and 2000 steps (4 s); ``small`` 64^3 (1.6 km cube)
and 600 steps (1.2 s: the bottom reflection is back at the surface).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..datasets import layered_3d
from ..propagator.torch import PropTorch
from ..signal import max_frequency, ricker
from .models import bench_equation

DH3, DT3, FREQ3, ORDER3, ABCN3 = 25.0, 0.002, 4.0, 4, 20
SRC_DEPTH, REC_DEPTH = 2, 4

#: name -> interior cells per axis, time steps, receiver spacing in cells.
GRIDS: dict[str, dict] = {"large": dict(n=160, nt=2000, rec_step=8),
                          "small": dict(n=64, nt=600, rec_step=4)}


def wavelet3d(nt: int, dt: float = DT3, freq: float = FREQ3) -> torch.Tensor:
    """A Ricker of peak ``freq`` Hz delayed by one period, ``nt`` samples of ``dt`` (float32)."""
    t = np.arange(nt) * dt - 1.0 / freq
    return torch.from_numpy(ricker(t, freq).astype(np.float32))


def geometry3d(shape: tuple[int, int, int], rec_step: int) -> tuple[np.ndarray, np.ndarray]:
    """(sources (1, 3), receivers (1, nrec, 3)) as [x, y, z] indices: the surface centre, and a patch
    every ``rec_step`` cells in x and y at depth REC_DEPTH (centred, at least one receiver per axis)."""
    nz, ny, nx = shape

    def line(n: int) -> np.ndarray:
        count = max(1, n // rec_step)
        start = (n - 1 - (count - 1) * rec_step) // 2
        return start + rec_step * np.arange(count)

    xs, ys = np.meshgrid(line(nx), line(ny), indexing="ij")
    rec = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, min(REC_DEPTH, nz - 1))], axis=-1)
    return np.array([[nx // 2, ny // 2, min(SRC_DEPTH, nz - 1)]], dtype=np.int64), rec[None].astype(np.int64)


def shot3d(n: int, nt: int, rec_step: int, freq: float = FREQ3, dh: float = DH3, dt: float = DT3,
           shape: tuple[int, int, int] | None = None) -> tuple[dict, torch.Tensor]:
    """(shot, starting model): the shot dict (``vp`` true model, ``dh``, ``dt``, ``freq``, ``wavelet``,
    ``sources``, ``receivers``, ``equation='acoustic3d'``) on an ``n``-cube (or ``shape``), and the smooth
    model the gradient is taken at (torch float32, m/s)."""
    shape = tuple(shape or (n, n, n))
    vp = torch.from_numpy(np.ascontiguousarray(layered_3d(shape, dh, "true")))
    vp_start = torch.from_numpy(np.ascontiguousarray(layered_3d(shape, dh, "smooth")))
    sources, receivers = geometry3d(shape, rec_step)
    shot = dict(vp=vp, dh=float(dh), dt=float(dt), freq=float(freq), wavelet=wavelet3d(nt, dt, freq),
                sources=sources, receivers=receivers, equation="acoustic3d")
    return shot, vp_start


def propagator3d(shot: dict, nt: int, device: torch.device | str = "cpu", **options) -> PropTorch:
    """A sweep propagator of ``shot``'s equation (:func:`~sweep.bench.models.bench_equation`: Acoustic3D, or
    AcousticVRZ3D for a ``vrz3d`` shot) on its grid, time step, space order 4 and 20 absorbing cells;
    ``options`` (``impl``, ``memory``, ``use_ckpt``, ...) go to :class:`PropTorch`, ``substep`` by default
    the shot's own (``shot['substep']``, see :mod:`sweep.bench.vrz`)."""
    options = {"substep": shot.get("substep"), **options}
    equation = bench_equation(shot).cls(device=device)
    return PropTorch(equation, tuple(shot["vp"].shape), shot["dh"], shot["dt"], nt, abcn=ABCN3,
                     space_order=ORDER3, pml_freq=shot["freq"], **options)


def sampling3d(shot: dict, vp_start: torch.Tensor) -> dict:
    """Grid points per shortest wavelength (slowest velocity / highest frequency of the wavelet / dh)."""
    vmin = min(float(shot["vp"].min()), float(vp_start.min()))
    fmax = max_frequency(shot["wavelet"].numpy(), shot["dt"])
    return dict(points_per_wavelength=vmin / fmax / shot["dh"], vmin=vmin, fmax=fmax, dh=float(shot["dh"]))


def padded_cells(shot: dict) -> int:
    """Cells of the padded grid (interior plus ABCN3 on each face), the ones every step updates."""
    return math.prod(n + 2 * ABCN3 for n in shot["vp"].shape)


def deepwave_call3d(shot: dict, nt: int, vp: torch.Tensor, **options) -> torch.Tensor:
    """Deepwave's ``deepwave.scalar`` on ``shot`` with model ``vp`` (on its device): same grid, space order,
    absorbing width, time step and PML frequency as :func:`propagator3d`; the receiver amplitudes
    (1, nrec, nt). ``options`` go to ``deepwave.scalar`` (storage_mode, storage_path, storage_compression,
    checkpoint_segments). Deepwave scales the source differently from sweep: compare times and memory,
    and its gradients only with its own."""
    import deepwave

    # Deepwave takes locations in the model's axis order [z, y, x]; sweep takes [x, y, z].
    src = torch.from_numpy(shot["sources"][..., ::-1].copy()).view(1, -1, 3).to(vp.device)
    rec = torch.from_numpy(shot["receivers"][..., ::-1].copy()).to(vp.device)
    amp = shot["wavelet"][:nt].view(1, 1, nt).to(vp.device)
    return deepwave.scalar(vp, shot["dh"], shot["dt"], source_amplitudes=amp, source_locations=src,
                           receiver_locations=rec, accuracy=ORDER3, pml_width=ABCN3, pml_freq=shot["freq"],
                           **options).receiver_amplitudes
