"""Validation of one propagation call's inputs into a canonical :class:`Problem` every back-end reads."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..equations.sampling import MIN_POINTS_PER_WAVELENGTH
from ..messages import round_down
from ..resampling import check_sampling, upsample
from ..signal import max_frequency, peak_frequency
from .grid import PaddedGrid


@dataclass
class Problem:
    """The geometry of one call, validated and in canonical shapes (no autograd links, no earth model):
    what every stepper of every equation reads; the models are handed to the stepper beside it.

    Attributes
    ----------
    grid : PaddedGrid
    dh, dt : float
        Grid spacing (m) and time step (s).
    nt, space_order, nshots : int
    dtype, device
        Of the computation (the models' dtype).
    wavelet : (nshots, nsrc, nt) tensor.
    src : (nshots, nsrc, ndim) int64 tensor
        Source cells as padded-grid indices in axis order (z, [y,] x).
    rec : (nshots, nrec, ndim) int64 tensor
        Receiver cells, likewise.
    pml : dict of float64 tensors
        ``a<axis>``, ``b<axis>`` for each axis of the grid (its padded length), see
        :meth:`PaddedGrid.pml_profiles`.
    """

    grid: PaddedGrid
    dh: float
    dt: float
    nt: int
    space_order: int
    nshots: int
    dtype: torch.dtype
    device: torch.device
    wavelet: torch.Tensor
    src: torch.Tensor
    rec: torch.Tensor
    pml: dict[str, torch.Tensor]

    @property
    def nrec(self) -> int:
        return int(self.rec.shape[1])

    @property
    def nsrc(self) -> int:
        return int(self.src.shape[1])


def _at(name: str, index: tuple[int, ...]) -> str:
    """``'receivers[0, 1]'`` for ``('receivers', (0, 1))``."""
    return f"{name}[{', '.join(str(i) for i in index)}]" if index else name


def _is_nested(value: object) -> bool:
    return isinstance(value, (list, tuple)) or (isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim > 0)


def _ragged_at(value: object, name: str) -> str | None:
    """Where the nested sequences ``value`` first stop being rectangular (e.g. ``'receivers[1] has length 1
    but receivers[0] has length 2'``); None when they do not."""
    level: list[tuple[tuple[int, ...], object]] = [((), value)]
    while level:
        nested = [(index, v) for index, v in level if _is_nested(v)]
        if not nested:
            return None
        if len(nested) < len(level):
            single = next(index for index, v in level if not _is_nested(v))
            return f"{_at(name, single)} is a single value but {_at(name, nested[0][0])} is a sequence"
        first, length = nested[0][0], len(nested[0][1])
        for index, v in nested:
            if len(v) != length:
                return f"{_at(name, index)} has length {len(v)} but {_at(name, first)} has length {length}"
        level = [(index + (k,), item) for index, v in nested for k, item in enumerate(v)]
    return None


def location_names(ndim: int) -> str:
    """``'[x, z]'`` or ``'[x, y, z]'``: the order of a location's components in a grid of ``ndim`` axes."""
    return "[x, z]" if ndim == 2 else "[x, y, z]"


def index_array(value: object, name: str, ndims: tuple[int, ...], space: int = 2) -> np.ndarray:
    """``value`` (array, tensor or nested lists) as an int64 array of grid locations of ``space``
    components (``[x, z]`` or ``[x, y, z]``) whose number of dimensions is one of ``ndims`` (2:
    ``(nshots, space)``, 3: ``(nshots, n, space)``).

    Raises
    ------
    ValueError
        Wrong shape, or nested lists of unequal lengths (saying where), naming ``name``.
    TypeError
        Not integers.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    shapes = " or ".join({2: f"(nshots, {space})", 3: f"(nshots, n, {space})"}[d] for d in ndims)
    expected = f"{name} must have shape {shapes} of {location_names(space)} indices"
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # NumPy refuses nested lists of unequal lengths ("inhomogeneous shape")
        raise ValueError(f"{expected}, the same number in every shot; it is ragged: "
                         f"{_ragged_at(value, name) or exc}") from None
    if arr.dtype == object and (where := _ragged_at(value, name)):  # ragged lists made into an object array
        raise ValueError(f"{expected}, the same number in every shot; it is ragged: {where}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer grid indices, got dtype {arr.dtype}")
    if arr.ndim not in ndims or arr.shape[-1] != space:
        raise ValueError(f"{expected}, got {arr.shape}")
    return arr.astype(np.int64)


def _check_on_grid(arr: np.ndarray, name: str, shape: tuple[int, ...]) -> None:
    """Raise ValueError naming ``name`` when a location ``[x, (y,) z]`` lies outside ``shape`` (array order)."""
    extent = np.asarray(shape[::-1])  # location components are in reversed axis order
    bad = ((arr < 0) | (arr >= extent)).any(-1)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        bounds = " and ".join(f"0 <= {c} < {n}" for c, n in zip(location_names(len(shape))[1:-1].split(", "), extent))
        raise ValueError(f"{_at(name, where)} = {arr[where].tolist()} is off the grid: "
                         f"{location_names(len(shape))} must satisfy {bounds}")


def on_device(actual: torch.device, wanted: torch.device) -> bool:
    """Whether a tensor on ``actual`` is on ``wanted``: a device without an index (``'cuda'``) means the
    current one, whose tensors report an index (``cuda:0``), so any index of that type matches it."""
    return actual.type == wanted.type and (wanted.index is None or actual.index == wanted.index)


def check_models(models: Sequence[object], names: Sequence[str], shape: tuple[int, ...],
                 device: torch.device) -> list[torch.Tensor]:
    """Check count, type, shape, dtype, device and values of ``models``; returns them as tensors."""
    if not isinstance(models, (list, tuple)):
        raise TypeError(f"models must be a list of tensors in order {list(names)}, got {type(models).__name__}")
    if len(models) != len(names):
        raise ValueError(f"models must hold {len(names)} model(s) {list(names)}, got {len(models)}")
    out = []
    for name, m in zip(names, models):
        if isinstance(m, np.ndarray):
            m = torch.from_numpy(m).to(device)
        if not isinstance(m, torch.Tensor):
            raise TypeError(f"models: {name} must be a torch.Tensor or numpy array, got {type(m).__name__}")
        if m.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"models: {name} must be float32 or float64, got {m.dtype}")
        if tuple(m.shape) != tuple(shape):
            axes = "(nz, nx)" if len(shape) == 2 else "(nz, ny, nx)"
            raise ValueError(f"models: {name} must have shape {tuple(shape)} {axes}, got {tuple(m.shape)}")
        if not on_device(m.device, device):
            raise ValueError(f"models: {name} is on {m.device} but the equation's device is {device}; move the model "
                             f"with .to({str(device)!r}) or build the equation with device={str(m.device)!r}")
        if not bool(torch.isfinite(m).all()):
            raise ValueError(f"models: {name} contains NaN or inf")
        if bool((m <= 0).any()):
            raise ValueError(f"models: {name} must be positive everywhere, min is {float(m.min())}")
        out.append(m)
    if len({m.dtype for m in out}) > 1:
        raise TypeError(f"models must share one dtype, got {[m.dtype for m in out]}")
    return out


def canonical_wavelet(wavelet: object, nt: int, nshots: int, nsrc: int, dtype: torch.dtype,
                      device: torch.device) -> torch.Tensor:
    """The wavelet as a (nshots, nsrc, nt) tensor, keeping its autograd link (expand, no copy)."""
    if isinstance(wavelet, np.ndarray):
        if wavelet.dtype.kind not in "fiu":
            raise TypeError(f"wavelet must be a real numeric array, got dtype {wavelet.dtype}")
        wavelet = torch.from_numpy(np.ascontiguousarray(wavelet))
    if not isinstance(wavelet, torch.Tensor):
        raise TypeError(f"wavelet must be a numpy array or torch.Tensor, got {type(wavelet).__name__}")
    if wavelet.is_complex() or wavelet.dtype == torch.bool:
        raise TypeError(f"wavelet must be real, got {wavelet.dtype}")
    if wavelet.ndim not in (1, 2, 3) or wavelet.shape[-1] != nt:
        raise ValueError(f"wavelet must have shape (nt,), (nshots, nt) or (nshots, nsrc, nt) with nt={nt}, "
                         f"got {tuple(wavelet.shape)}")
    expected = {1: (nt,), 2: (nshots, nt), 3: (nshots, nsrc, nt)}[wavelet.ndim]
    if tuple(wavelet.shape) != expected:
        raise ValueError(f"wavelet shape {tuple(wavelet.shape)} does not match {expected} "
                         f"(nshots={nshots}, nsrc={nsrc} from sources, nt={nt})")
    if not bool(torch.isfinite(wavelet).all()):
        raise ValueError("wavelet contains NaN or inf")
    wavelet = wavelet.to(device=device, dtype=dtype)
    as_3d = {1: (1, 1, nt), 2: (nshots, 1, nt), 3: (nshots, nsrc, nt)}[wavelet.ndim]
    return wavelet.reshape(as_3d).expand(nshots, nsrc, nt)


def _distinct(wav: torch.Tensor) -> torch.Tensor:
    """``wav`` without the copies it was broadcast to (axes of stride 0): its spectrum's peak and band are
    those of all the copies (their sum only scales it), and nothing of nshots x nsrc x nt is materialised
    before the memory guard has looked at the call."""
    for axis in range(wav.dim() - 1):
        if wav.stride(axis) == 0:
            wav = wav.narrow(axis, 0, 1)
    return wav


def _substepped(wav: torch.Tensor, dt: float, ratio: int) -> torch.Tensor:
    """The (nshots, nsrc, nt) wavelet at ``dt`` upsampled band-limited to ``nt * ratio`` samples at
    ``dt / ratio``, after checking that it is band-limited at ``dt`` (the upsampling assumes it); copies
    broadcast along shots or sources are upsampled once and broadcast again."""
    distinct = _distinct(wav)
    check_sampling(distinct.detach(), dt, "dt")
    return upsample(distinct, ratio).expand(*wav.shape[:-1], wav.shape[-1] * ratio)


def build_problem(*, grid: PaddedGrid, dh: float, dt: float, nt: int, space_order: int, max_stable_dt: float,
                  velocity: torch.Tensor, wavelet: object, sources: object, receivers: object,
                  pml_freq: float | None, pml_vmax: float | None = None, ratio: int = 1,
                  unstable_hint: str = "") -> tuple[Problem, torch.Tensor]:
    """Validate a call's inputs; returns the :class:`Problem` and the canonical wavelet with its autograd link.

    ``velocity`` (m/s, the grid's shape) is the model the stability limit, the dispersion warning and the
    default C-PML damping read; its dtype and device are the computation's. ``max_stable_dt`` is the
    equation's limit for its peak. ``pml_freq`` (Hz) and ``pml_vmax`` (m/s) fix the C-PML's frequency
    shift and damping; ``None`` takes them from this call's wavelet (peak frequency) and velocity (peak).
    The stability check always uses the model's own peak velocity, whatever sets the damping.

    Time sub-stepping: ``dt`` and ``nt`` are the data's; with ``ratio`` r > 1 the wavelet (checked to be
    band-limited at ``dt``) is upsampled to ``nt * r`` samples and the problem steps at ``dt / r``, which
    ``max_stable_dt`` is compared with. ``unstable_hint`` ends the unstable-dt error (what option would
    help). The returned wavelet is the internal one, linked by autograd to the user's.
    """
    space = grid.ndim
    src = index_array(sources, "sources", (2, 3), space)
    if src.ndim == 2:
        src = src[:, None, :]
    rec = index_array(receivers, "receivers", (3,), space)
    nshots = src.shape[0]
    if nshots == 0 or src.shape[1] == 0 or rec.shape[1] == 0:
        raise ValueError(f"need at least one shot, source and receiver; sources {src.shape}, receivers {rec.shape}")
    if rec.shape[0] != nshots:
        raise ValueError(f"receivers has {rec.shape[0]} shots but sources has {nshots}")
    _check_on_grid(src, "sources", grid.shape)
    _check_on_grid(rec, "receivers", grid.shape)

    v = velocity.detach()
    vmax, vmin = float(v.max()), float(v.min())
    if dt / ratio > max_stable_dt:
        step = f"dt={dt} s" if ratio == 1 else f"the internal step dt/{ratio} = {dt / ratio:.6g} s"
        raise ValueError(f"{step} is unstable for vmax={vmax:g} m/s, dh={dh} m, space_order={space_order} in "
                         f"{space}-D: the largest stable dt is {round_down(max_stable_dt):.6g} s{unstable_hint}")
    wav = canonical_wavelet(wavelet, nt, nshots, src.shape[1], v.dtype, v.device)
    if ratio > 1:
        wav, dt, nt = _substepped(wav, dt, ratio), dt / ratio, nt * ratio
    wav_np = _distinct(wav).detach().cpu().numpy()
    fmax = max_frequency(wav_np, dt)
    if fmax > 0:
        points = vmin / fmax / dh
        if points < MIN_POINTS_PER_WAVELENGTH:
            warnings.warn(f"only {points:.1f} grid points per shortest wavelength (vmin={vmin:g} m/s, "
                          f"fmax={fmax:.3g} Hz, dh={dh} m); below {MIN_POINTS_PER_WAVELENGTH:g} the result is "
                          "dominated by numerical dispersion", stacklevel=4)
    if pml_freq is None:
        pml_freq = peak_frequency(wav_np, dt)
    if pml_vmax is None:
        pml_vmax = vmax
    pml = {k: torch.from_numpy(p) for k, p in grid.pml_profiles(pml_vmax, dh, dt, pml_freq).items()}
    before = np.array([a for a, _ in grid.pad])

    def padded(locations: np.ndarray) -> torch.Tensor:  # [x, (y,) z] -> padded (z, (y,) x) indices
        return torch.from_numpy(np.ascontiguousarray(locations[..., ::-1] + before)).to(v.device)

    problem = Problem(grid=grid, dh=dh, dt=dt, nt=nt, space_order=space_order, nshots=nshots, dtype=v.dtype,
                      device=v.device, wavelet=wav.detach(), src=padded(src), rec=padded(rec), pml=pml)
    return problem, wav
