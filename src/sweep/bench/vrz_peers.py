"""The variable-density acoustic equation (VRZ) against Deepwave's ``acoustic`` (v, rho): the shipped Marmousi-II
density, the source scaling that makes the two solve the same problem, and the ``vrz`` section of
``python -m sweep.bench.speed``.

Deepwave's ``acoustic`` is the first-order velocity-pressure system on a staggered grid,
``1/K dp/dt = -div v + s`` and ``rho dv/dt = -grad p`` with ``K = rho v^2``; eliminating ``v`` gives
``p_tt = K div(b grad p) + K ds/dt`` (``b = 1/rho``), whose source term is ``K ds/dt`` with ``s`` a volume rate
per cell (1/s, no ``1/dh^2``; ``acoustic.py`` adds ``dt K s`` to the pressure at the source cell). sweep's
:class:`~sweep.equations.AcousticVRZ` solves ``p_tt = kappa div(b grad p) + vp^2 f delta`` with the delta spread
over one cell (``1/dh^2``). The two agree when ``K ds/dt = vp^2 f / dh^2`` at the source cell, i.e.

    ``s(t) = integral of f up to t / (rho_s dh^2)``

with ``rho_s`` the density at the source cell: the time-integrated wavelet, scaled. Discretely, Deepwave's
sample ``i`` of ``s`` acts at ``(i + 1/2) dt`` and its leapfrog puts ``dt K (s_i - s_{i-1})`` into
``p_{i+1} - 2 p_i + p_{i-1}``, while sweep puts ``K b dt^2 f_i / dh^2`` into the same difference; so
``s_i = dt sum_{m <= i} f_m / (rho_s dh^2)`` (:func:`deepwave_volume_rate`) makes the two recordings the same
pressure, sample for sample (both record ``p`` at ``t = n dt``: no time shift), up to the discretisations
(staggered first derivatives against sweep's centred pair-averaged second derivatives) and the C-PMLs.
"""
from __future__ import annotations

import statistics
from typing import Callable

import numpy as np
import torch

from ..datasets import load_marmousi
from ..equations import AcousticVRZ
from ..propagator.torch import PropTorch
from .speed import ABCN, DT, FREQ, ORDER, deepwave_runner, measure, seed_shot, sweep_runner

def vrz_shot(nt: int, decimate: int = 2) -> dict:
    """The seed shot (:func:`~sweep.bench.speed.seed_shot`) with ``rho`` (kg/m^3, torch float32, the shipped
    density decimated like ``vp``)."""
    shot = seed_shot(nt, decimate)
    rho = load_marmousi("true", model="rho")[::decimate, ::decimate]
    shot["rho"] = torch.from_numpy(np.ascontiguousarray(rho))
    return shot


def vrz_models(vp: torch.Tensor, rho: torch.Tensor) -> list[torch.Tensor]:
    """sweep's VRZ models ``[vp (m/s), z = rho vp (kg m^-2 s^-1)]``."""
    return [vp, rho * vp]


def deepwave_volume_rate(wavelet: torch.Tensor, rho_source: float, dh: float, dt: float,
                         ndim: int = 2) -> torch.Tensor:
    """Deepwave ``acoustic``'s volume-rate amplitudes (1/s, same shape as ``wavelet``: time last) that inject
    sweep's ``vp^2 f delta``: ``dt * cumsum(f) / (rho_source dh^ndim)`` (see the module docstring).

    Parameters
    ----------
    wavelet : tensor (..., nt)
        sweep's wavelet ``f``, sampled at ``dt``.
    rho_source : float
        Density at the source cell, kg/m^3.
    dh, dt : float
        Grid spacing (m) and time step (s).
    """
    return torch.cumsum(wavelet, -1) * (dt / (rho_source * dh**ndim))


def _locations(shot: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Deepwave's [z, x] (slow, fast) source (1, 1, 2) and receiver (1, NREC, 2) locations; sweep's are [x, z]."""
    src = torch.from_numpy(shot["sources"][:, ::-1].copy()).view(1, 1, 2)
    rec = torch.from_numpy(shot["receivers"][..., ::-1].copy())
    return src, rec


def deepwave_acoustic_output(shot: dict, nt: int, vp: torch.Tensor, rho: torch.Tensor, dt: float = DT,
                             pml_freq: float = FREQ, **options):
    """Deepwave's ``deepwave.acoustic`` on ``shot``'s grid with the seed's space order and absorbing width,
    models ``vp`` (m/s) and ``rho`` (kg/m^3), and the shot's wavelet (nt,) injected as
    :func:`deepwave_volume_rate`: its whole output, whose ``receiver_amplitudes_p`` (1, NREC, nt) are then
    sweep's :class:`AcousticVRZ` receivers. ``options`` go to ``deepwave.acoustic`` unchanged."""
    import deepwave

    src, rec = _locations(shot)
    x, z = (int(c) for c in shot["sources"][0])
    amp = deepwave_volume_rate(shot["wavelet"].to(vp.dtype), float(rho[z, x]), shot["dh"], dt).view(1, 1, nt)
    return deepwave.acoustic(vp, rho, shot["dh"], dt, source_amplitudes_volume_rate=amp,
                             source_locations_volume_rate=src, receiver_locations_p=rec, accuracy=ORDER,
                             pml_width=ABCN, pml_freq=pml_freq, **options)


def vrz_propagator(shot: dict, nt: int, dt: float = DT, impl: str | None = None, **options) -> PropTorch:
    """A sweep :class:`AcousticVRZ` propagator on ``shot``'s grid with the seed's absorbing width and space
    order; ``impl=None`` picks ``'c'`` where it is registered for the VRZ equation and built, else ``'eager'``;
    ``options`` go to :class:`PropTorch`."""
    return PropTorch(AcousticVRZ(), tuple(shot["vp"].shape), shot["dh"], dt, nt, abcn=ABCN, space_order=ORDER,
                     impl=impl, **options)


def common_dt(shot: dict) -> tuple[float, dict[str, float]]:
    """The seed's dt (s) and each contender's stable limit on ``shot`` (s): VRZ's (from
    :meth:`AcousticVRZ.stability_velocity`, above the peak velocity where density contrasts meet stiff cells),
    the constant-density ``Acoustic``'s and the largest dt at which Deepwave does not sub-step (its default
    Courant number 0.6: ``0.6 dh / (vmax sqrt 2)``, ``deepwave.discretisation.cfl_condition_n``).

    Raises
    ------
    ValueError
        The seed's dt exceeds one of them (the section would compare different time steps).
    """
    prop = vrz_propagator(shot, 1, impl="eager")
    models = vrz_models(shot["vp"], shot["rho"])
    vmax = float(shot["vp"].max())
    limits = dict(vrz=prop.max_stable_dt(AcousticVRZ().stability_velocity(models, ORDER)),
                  acoustic=prop.max_stable_dt(vmax), deepwave=0.6 * shot["dh"] / (vmax * 2**0.5))
    if DT > min(limits.values()):
        raise ValueError(f"dt {DT} s exceeds a contender's stable limit: {limits}")
    return DT, limits


def vrz_runner(shot: dict, nt: int, impl: str | None) -> tuple[Callable[[], None], str]:
    """A forward of ``shot`` through :class:`AcousticVRZ` (no gradient), and the impl it runs."""
    prop = vrz_propagator(shot, nt, impl=impl, use_ckpt=False)
    models = vrz_models(shot["vp"], shot["rho"])

    def run() -> None:
        with torch.no_grad():
            prop(shot["wavelet"], shot["sources"], shot["receivers"], models)

    return run, prop.impl


def deepwave_acoustic_runner(shot: dict, nt: int) -> Callable[[], None]:
    """A forward of ``shot`` through Deepwave's ``acoustic`` (v, rho)."""
    def run() -> None:
        with torch.no_grad():
            deepwave_acoustic_output(shot, nt, shot["vp"], shot["rho"])

    return run


def measure_vrz(nt: int, repeats: int, eager_repeats: int, use_deepwave: bool, decimate: int = 2) -> list[dict]:
    """Rows of the ``vrz`` section: forward of the seed shot with the shipped density through sweep
    :class:`AcousticVRZ` (``'c'`` where registered, else ``'eager'``), sweep ``Acoustic`` (impl='c', and
    impl='eager' too when VRZ runs eager, so that VRZ / Acoustic compares one back-end), Deepwave ``acoustic``
    and Deepwave ``scalar``; interleaved repeats (eager ones ``eager_repeats``, at least 1), medians, at the
    seed's dt (stable for all: :func:`common_dt`). Every row has ``vrz_over_this`` (VRZ's median time over
    the row's); the VRZ row also ``ratio_to_acoustic`` (against Acoustic of its own back-end),
    ``ratio_to_acoustic_c`` and ``ratio_to_deepwave_acoustic`` / ``ratio_to_deepwave_scalar`` (None without
    Deepwave)."""
    shot = vrz_shot(nt, decimate)
    dt, limits = common_dt(shot)
    vrz, impl = vrz_runner(shot, nt, None)
    slow = max(1, eager_repeats)
    name = f"sweep vrz {impl}"
    contenders = {name: (vrz, repeats if impl == "c" else slow),
                  "sweep acoustic c": (sweep_runner("c", shot, nt, False), repeats)}
    if impl == "eager":
        contenders["sweep acoustic eager"] = (sweep_runner("eager", shot, nt, False), slow)
    if use_deepwave:
        contenders["deepwave acoustic"] = (deepwave_acoustic_runner(shot, nt), repeats)
        contenders["deepwave scalar"] = (deepwave_runner(shot, nt, False), repeats)
    times = measure(contenders, repeats)
    seconds = {key: statistics.median(ts) for key, ts in times.items()}
    nz, nx = shot["vp"].shape
    rows = [dict(section="vrz", contender=key, mode="forward", seconds=seconds[key], repeats=len(ts),
                 all_seconds=ts, cell_updates_per_s=nz * nx * nt / seconds[key],
                 vrz_over_this=seconds[name] / seconds[key], shape=[nz, nx], nt=nt, dt=dt, stable_dt=limits,
                 vrz_impl=impl) for key, ts in times.items()]
    ratio = lambda other: seconds[name] / seconds[other] if other in seconds else None  # noqa: E731
    rows[0].update(ratio_to_acoustic=ratio(f"sweep acoustic {impl}"), ratio_to_acoustic_c=ratio("sweep acoustic c"),
                   ratio_to_deepwave_acoustic=ratio("deepwave acoustic"),
                   ratio_to_deepwave_scalar=ratio("deepwave scalar"))
    return rows


def vrz_summary(rows: list[dict]) -> str:
    """One line: the shot, the dt and why it is stable for all, VRZ's back-end and its two ratios."""
    vrz = rows[0]
    limits = ", ".join(f"{key} {1e3 * value:.2f}" for key, value in vrz["stable_dt"].items())
    fmt = lambda key: "-" if vrz[key] is None else f"{vrz[key]:.2f}"  # noqa: E731
    return (f"seed shot with the shipped density ({vrz['shape'][0]}x{vrz['shape'][1]}, nt={vrz['nt']}), forward, "
            f"dt {1e3 * vrz['dt']:g} ms for all (limits in ms: {limits}); AcousticVRZ impl={vrz['vrz_impl']}"
            + (" (no c kernels registered)" if vrz["vrz_impl"] == "eager" else "")
            + f": VRZ / Acoustic ({vrz['vrz_impl']}) {fmt('ratio_to_acoustic')}, "
            f"VRZ / Deepwave acoustic {fmt('ratio_to_deepwave_acoustic')}")


def vrz_table(rows: list[dict]) -> str:
    """The ``vrz`` rows as a text table: seconds, cell updates per second, and VRZ's time over the row's."""
    lines = [f"{'contender':<22} {'seconds':>8} {'Mcell/s':>8} {'repeats':>7} {'VRZ / this':>10}"]
    for row in rows:
        lines.append(f"{row['contender']:<22} {row['seconds']:>8.3f} {row['cell_updates_per_s'] / 1e6:>8.1f} "
                     f"{row['repeats']:>7} {row['vrz_over_this']:>10.2f}")
    return "\n".join(lines)
