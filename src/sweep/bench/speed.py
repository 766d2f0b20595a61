"""Speed of the seed shot: sweep impl='c' and impl='eager' against Deepwave, forward and forward+backward.

Run ``python -m sweep.bench.speed`` (``--help`` for options). The seed shot: Marmousi-II decimated to
(141, 681) at 25 m, dt = 2 ms, 2000 steps, one source at (z=2, x=nx//2), 100 receivers at z=4, Ricker
5 Hz delayed 0.2 s, space order 4, 20 absorbing cells. Deepwave (``pip install -e ".[bench]"``) is
timed when installed; its source amplitude scaling differs from sweep's, which does not matter for time.

Repeats of the contenders are interleaved (the machine is noisy) and the median is reported, with
physical cell updates per second (nz * nx * nt / seconds) and the ratio to Deepwave's time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from typing import Callable

import numpy as np
import torch

from ..datasets import MARMOUSI_DH, load_marmousi
from ..equations import Acoustic
from ..propagator.torch import PropTorch
from ..signal import ricker

DT, NT, ABCN, ORDER, FREQ, DELAY, NREC = 0.002, 2000, 20, 4, 5.0, 0.2, 100


def seed_shot(nt: int, decimate: int = 2) -> dict:
    """The seed shot's model (torch float32, m/s), wavelet (nt,), [x, z] source (1, 2) and receivers (1, NREC, 2);
    ``decimate`` keeps every k-th Marmousi cell (2: the notebook's 25 m grid); the source and receivers stay
    at rows 2 and 4."""
    vp = torch.from_numpy(np.ascontiguousarray(load_marmousi("true")[::decimate, ::decimate]))
    nz, nx = vp.shape
    wavelet = torch.from_numpy(ricker(np.arange(nt) * DT - DELAY, FREQ).astype(np.float32))
    rec_x = np.linspace(0, nx - 1, NREC).round().astype(np.int64)
    receivers = np.stack([rec_x, np.full(NREC, 4)], axis=-1)[None]
    return dict(vp=vp, dh=decimate * MARMOUSI_DH, wavelet=wavelet, sources=np.array([[nx // 2, 2]]), receivers=receivers)


def seed_propagator(shot: dict, nt: int, device: torch.device | str = "cpu", **options) -> PropTorch:
    """A sweep propagator on the seed shot's grid, time step, absorbing width and space order; ``options``
    (``impl``, ``memory``, ``use_ckpt``, ...) go to :class:`PropTorch`."""
    return PropTorch(Acoustic(device=device), tuple(shot["vp"].shape), shot["dh"], DT, nt, abcn=ABCN,
                     space_order=ORDER, **options)


def sweep_runner(impl: str, shot: dict, nt: int, backward: bool) -> Callable[[], None]:
    prop = seed_propagator(shot, nt, impl=impl, use_ckpt=False)

    def run() -> None:
        vp = shot["vp"].clone().requires_grad_(backward)
        with torch.set_grad_enabled(backward):
            data = prop(shot["wavelet"], shot["sources"], shot["receivers"], [vp])
            if backward:
                (data**2).sum().backward()

    return run


def deepwave_call(shot: dict, nt: int, vp: torch.Tensor, **options) -> torch.Tensor:
    """Deepwave's ``deepwave.scalar`` on the seed shot's grid, space order and absorbing width, with model ``vp``
    (on its device): the receiver amplitudes (1, NREC, nt). ``options`` go to ``deepwave.scalar`` unchanged
    (e.g. ``storage_mode``, ``storage_path``, ``storage_compression``, ``checkpoint_segments``)."""
    import deepwave

    # Deepwave takes [z, x] (slow, fast) locations; sweep takes [x, z].
    src = torch.from_numpy(shot["sources"][:, ::-1].copy()).view(1, 1, 2).to(vp.device)
    rec = torch.from_numpy(shot["receivers"][..., ::-1].copy()).to(vp.device)
    amp = shot["wavelet"].view(1, 1, nt).to(vp.device)
    return deepwave.scalar(vp, shot["dh"], DT, source_amplitudes=amp, source_locations=src, receiver_locations=rec,
                           accuracy=ORDER, pml_width=ABCN, pml_freq=FREQ, **options).receiver_amplitudes


def deepwave_runner(shot: dict, nt: int, backward: bool, **options) -> Callable[[], None]:
    """One Deepwave run of the seed shot (forward, or forward + backward of sum(data**2)); ``options`` as in
    :func:`deepwave_call`."""
    def run() -> None:
        vp = shot["vp"].clone().requires_grad_(backward)
        with torch.set_grad_enabled(backward):
            out = deepwave_call(shot, nt, vp, **options)
            if backward:
                (out**2).sum().backward()

    return run


def deepwave_available() -> bool:
    try:
        import deepwave  # noqa: F401
    except ImportError:
        return False
    return True


def save_result(rows: list[dict], shape: tuple[int, int], nt: int, path: str | None) -> dict:
    """The benchmark's result (grid, nt, threads, rows), also written as JSON to ``path`` when given."""
    result = dict(shape=list(shape), nt=nt, threads=torch.get_num_threads(), rows=rows)
    if path:
        with open(path, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


def measure(contenders: dict[str, tuple[Callable[[], None], int]], repeats: int) -> dict[str, list[float]]:
    """Times each contender ``repeats`` times (or its own smaller count), interleaved, after one warm-up."""
    for run, _ in contenders.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(repeats):
        for name, (run, count) in contenders.items():
            if r < count:
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m sweep.bench.speed", description=__doc__.splitlines()[0])
    parser.add_argument("--nt", type=int, default=NT, help=f"time steps (default {NT}; smaller for a quick run)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per contender (median reported)")
    parser.add_argument("--eager-repeats", type=int, default=1,
                        help="timed repeats of impl='eager' (slow); 0 skips it")
    parser.add_argument("--no-deepwave", action="store_true", help="skip Deepwave even if installed")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="only .* grid points per shortest wavelength")

    shot = seed_shot(args.nt)
    nz, nx = shot["vp"].shape
    updates = nz * nx * args.nt
    use_deepwave = not args.no_deepwave and deepwave_available()
    rows = []
    for mode, backward in (("forward", False), ("forward+backward", True)):
        contenders: dict[str, tuple[Callable[[], None], int]] = {
            "sweep c": (sweep_runner("c", shot, args.nt, backward), args.repeats)}
        if args.eager_repeats > 0:
            contenders["sweep eager"] = (sweep_runner("eager", shot, args.nt, backward), args.eager_repeats)
        if use_deepwave:
            contenders["deepwave"] = (deepwave_runner(shot, args.nt, backward), args.repeats)
        times = measure(contenders, args.repeats)
        reference = statistics.median(times["deepwave"]) if use_deepwave else None
        for name, ts in times.items():
            seconds = statistics.median(ts)
            rows.append(dict(contender=name, mode=mode, seconds=seconds, repeats=len(ts), all_seconds=ts,
                             cell_updates_per_s=updates / seconds,
                             ratio_to_deepwave=None if reference is None else seconds / reference))

    print(f"seed shot: {nz}x{nx} physical cells, nt={args.nt}, space order {ORDER}, abcn={ABCN}, "
          f"{torch.get_num_threads()} threads, {args.repeats} repeats (median)")
    print(f"{'contender':<13} {'mode':<17} {'seconds':>9} {'G cells/s':>10} {'x deepwave':>11} {'n':>3}")
    for row in rows:
        ratio = "-" if row["ratio_to_deepwave"] is None else f"{row['ratio_to_deepwave']:.2f}"
        print(f"{row['contender']:<13} {row['mode']:<17} {row['seconds']:>9.3f} "
              f"{row['cell_updates_per_s'] / 1e9:>10.3f} {ratio:>11} {row['repeats']:>3}")
    return save_result(rows, (nz, nx), args.nt, args.json)


if __name__ == "__main__":
    main()
