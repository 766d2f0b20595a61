"""Showcase: the 3-D FWI shot that ran out of memory on an 80 GB A100 (the reference SWEEP's issue #4), on this
machine, with the memory guard and strategy='auto'.

    python -m sweep.bench.showcase3d                 # predictions only: seconds, nothing allocated
    python -m sweep.bench.showcase3d --run           # and run it with impl='c' (tens of minutes)
    python -m sweep.bench.showcase3d --scale 0.1 --run   # the same, shrunk for a test

The shot: 401 x 383 x 383 cells ((nz, ny, nx) here), space order 4, nt = 2800, as in the issue (which
gives no spacing or wavelet); here the layered 3-D model (:func:`sweep.datasets.layered_3d`) at 20 m
(an 8 x 7.7 x 7.7 km box), 20 absorbing cells per face, dt = 1.5 ms (the stability limit at 4500 m/s is
2.22 ms), a 5 Hz Ricker delayed 0.2 s (6.4 points per shortest wavelength in the 1500 m/s water), one
source at the surface centre and a patch of receivers every 8 cells at depth index 4. The gradient is
that of 0.5 ||d - d_obs||^2 from the smooth model, d_obs the true model's data (one forward without
gradient first, timed apart; ``--no-observed`` uses d_obs = 0).

It prints what the memory guard finds available (host RAM: MemAvailable and the cgroup; the disk's free
space), full storage's prediction and whether the guard lets it run, the strategy strategy='auto' picks
for what is available with the disk allowed (``budget=None, disk_budget='available'``: the fastest exact
strategy that fits), and the lossy alternatives (fp16/int8 strips, ZFP strips on the device: ZFP sizes
depend on the data and are predicted as upper bounds). ``--run`` then runs the chosen strategy (or
``--strategy``'s) and reports wall time, the process's peak resident memory above its baseline, the
tracked peak and the stored bytes by location.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

from ..memory import InsufficientMemoryError, available
from ..memory.guard import needed_bytes
from ..propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from .child import peak_since, reset_peak
from .shot3d import geometry3d, propagator3d, sampling3d, wavelet3d

SHAPE, NT, DH, DT, FREQ, REC_STEP = (401, 383, 383), 2800, 20.0, 0.0015, 5.0, 8
GIB = 2**30


def showcase_shot(scale: float, nt: int | None) -> tuple[dict, torch.Tensor]:
    from ..datasets import layered_3d

    shape = tuple(max(8, round(n * scale)) for n in SHAPE)
    nt = nt or NT
    vp = torch.from_numpy(np.ascontiguousarray(layered_3d(shape, DH, "true")))
    start = torch.from_numpy(np.ascontiguousarray(layered_3d(shape, DH, "smooth")))
    sources, receivers = geometry3d(shape, max(1, min(REC_STEP, round(REC_STEP * scale * 4))))
    shot = dict(vp=vp, dh=DH, dt=DT, freq=FREQ, wavelet=wavelet3d(nt, DT, FREQ), sources=sources,
                receivers=receivers, equation="acoustic3d")
    return shot, start


def strategies(disk_dir: str) -> dict[str, MemoryOptions]:
    """The options shown (and runnable with ``--strategy``), 'auto' first."""
    dirs = dict(boundary=BoundaryOptions(disk_dir=disk_dir), ckpt=CkptOptions(disk_dir=disk_dir))

    def bdy(dtype: str, storage: str = "gpu") -> MemoryOptions:
        return MemoryOptions("boundary", boundary=BoundaryOptions(storage=storage, storage_dtype=dtype,
                                                                  disk_dir=disk_dir if storage == "disk" else None))

    return {"auto": MemoryOptions("auto", disk_budget="available", **dirs), "full": MemoryOptions("full"),
            "bdy-fp32": bdy("fp32"), "bdy-fp16": bdy("fp16"), "bdy-int8": bdy("int8"), "bdy-zfp": bdy("zfp"),
            "bdy-disk-fp32": bdy("fp32", "disk"), "bdy-disk-zfp": bdy("zfp", "disk"),
            "revolve": MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=8)),
            "multistage": MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=4, disk_count=8,
                                                                 disk_dir=disk_dir))}


def _gib(nbytes: float) -> str:
    return f"{nbytes / GIB:,.2f} GiB" if nbytes >= GIB / 10 or not nbytes else f"{nbytes / 2**20:,.2f} MiB"


def predict_all(shot: dict, start: torch.Tensor, nt: int, impl: str, disk_dir: str) -> tuple[list[dict], dict]:
    """(one prediction per strategy: needed bytes by place, fits or not, stored by location; what is available)."""
    places = {"host": available.host_memory(), "disk": available.disk_space(disk_dir)}
    vp = start.clone().requires_grad_(True)
    rows = []
    for name, memory in strategies(disk_dir).items():
        prop = propagator3d(shot, nt, impl=impl, memory=memory)
        try:
            r = prop.estimate_memory(shot["wavelet"], shot["sources"], shot["receivers"], [vp])
        except ValueError as exc:  # strategy='auto' with nothing that fits
            rows.append(dict(name=name, error=str(exc)))
            continue
        needed = needed_bytes(r, separate_device=False)
        fits = all(places.get(p) is None or n <= places[p].nbytes for p, n in needed.items())
        rows.append(dict(name=name, strategy=r.strategy, needed=needed, fits=fits, notes=list(r.notes),
                         stored=r.bytes_by_location("stored"), tracked_peak=r.peak_memory_bytes,
                         process=r.process_bytes_estimate, lossy=name in ("bdy-fp16", "bdy-int8") or "zfp" in name))
    return rows, {p: None if a is None else dict(nbytes=a.nbytes, source=a.source) for p, a in places.items()}


def print_predictions(rows: list[dict], places: dict) -> None:
    for p, a in places.items():
        print(f"available {p}: " + ("unknown" if a is None else f"{_gib(a['nbytes'])} ({a['source']})"))
    print(f"\n{'strategy':<15} {'chosen / kind':<34} {'memory (process)':>17} {'disk':>11}  fits  stored by location")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<15} {r['error']}")
            continue
        stored = ", ".join(f"{k} {_gib(v)}" for k, v in r["stored"].items() if v)
        print(f"{r['name']:<15} {r['strategy'][:34]:<34} {_gib(r['needed'].get('host', r['process'])):>17} "
              f"{_gib(r['needed'].get('disk', 0)):>11}  {'yes ' if r['fits'] else 'NO  '}  {stored}"
              f"{'  (lossy' + (', upper bound' if 'zfp' in r['name'] else '') + ')' if r['lossy'] else ''}")
    auto = next(r for r in rows if r["name"] == "auto")
    if auto.get("notes"):
        print(f"\n{auto['notes'][0]}")


def run_showcase(shot: dict, start: torch.Tensor, nt: int, impl: str, memory: MemoryOptions, observed: bool) -> dict:
    """One gradient with ``memory``: wall times, peaks, stored bytes by location."""
    out: dict = {}
    d_obs = 0.0
    if observed:
        t0 = time.perf_counter()
        with torch.no_grad():
            d_obs = propagator3d(shot, nt, impl=impl)(shot["wavelet"], shot["sources"], shot["receivers"], [shot["vp"]])
        out["observed_seconds"] = time.perf_counter() - t0
    prop = propagator3d(shot, nt, impl=impl, memory=memory)
    vp = start.clone().requires_grad_(True)
    kind, baseline = reset_peak()
    t0 = time.perf_counter()
    try:
        data = prop(shot["wavelet"], shot["sources"], shot["receivers"], [vp])
        (0.5 * (data - d_obs).pow(2).sum()).backward()
    except InsufficientMemoryError as exc:
        return dict(out, status="does not fit", guard=str(exc))
    out["seconds"] = time.perf_counter() - t0
    rep = prop.memory_report()
    out.update(status="ok", strategy=rep.strategy, notes=list(rep.notes), peak_rss_bytes=peak_since(kind, baseline),
               peak_kind=kind, tracked_peak_bytes=rep.peak_memory_bytes, stored=rep.bytes_by_location("stored"),
               grad_rms=float(vp.grad.pow(2).mean().sqrt()))
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m sweep.bench.showcase3d", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="shrink every axis by this factor (default 1: the issue's)")
    p.add_argument("--nt", type=int, default=None, help=f"time steps (default {NT})")
    p.add_argument("--run", action="store_true", help="run the gradient (default: predictions only)")
    p.add_argument("--strategy", default="auto", help="which one --run runs (default auto; see the table)")
    p.add_argument("--impl", default="c", help="back-end (default c; eager only for a small --scale)")
    p.add_argument("--disk-dir", default=None, help="where disk strategies write (default: the temp folder)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--no-observed", action="store_true", help="d_obs = 0 (skips the observed data's forward)")
    p.add_argument("--json", metavar="PATH", help="also write everything as JSON")
    args = p.parse_args(argv)
    if not 0 < args.scale <= 1 or (args.nt is not None and args.nt < 1) or args.threads < 1:
        p.error("--scale must be in (0, 1], --nt and --threads positive")
    warnings.filterwarnings("ignore", message="only .* grid points per shortest wavelength")
    torch.set_num_threads(args.threads)
    disk_dir = args.disk_dir or tempfile.gettempdir()
    if args.strategy not in strategies(disk_dir):
        p.error(f"--strategy must be one of {', '.join(strategies(disk_dir))}")
    from .bench3d import impl_missing

    missing = impl_missing(args.impl)
    shot, start = showcase_shot(args.scale, args.nt)
    nt = len(shot["wavelet"])
    cells = "x".join(map(str, shot["vp"].shape))
    s = sampling3d(shot, start)
    print(f"showcase: {cells} cells (nz, ny, nx) at {DH:g} m, nt={nt} x {DT * 1e3:g} ms, space order 4, 20 absorbing "
          f"cells, {FREQ:g} Hz Ricker ({s['points_per_wavelength']:.1f} points per wavelength), 1 shot, "
          f"{shot['receivers'].shape[1]} receivers; impl={args.impl!r}, {args.threads} threads")
    predict_impl = "eager" if missing else args.impl  # predictions are the same for every back-end
    rows, places = predict_all(shot, start, nt, predict_impl, disk_dir)
    print_predictions(rows, places)
    result = dict(shape=list(shot["vp"].shape), nt=nt, dh=DH, dt=DT, freq=FREQ, impl=args.impl,
                  threads=args.threads, available=places, predictions=rows)
    if args.run:
        if missing:
            print(f"\n--run: {missing}", file=sys.stderr)
            raise SystemExit(2)
        chosen = strategies(disk_dir)[args.strategy]
        print(f"\nrunning {args.strategy} ...", flush=True)
        t0 = time.perf_counter()
        run = run_showcase(shot, start, nt, args.impl, chosen, not args.no_observed)
        run["wall_seconds"] = time.perf_counter() - t0
        result["run"] = run
        if run["status"] != "ok":
            print(f"does not fit:\n{run['guard']}")
        else:
            stored = ", ".join(f"{k} {_gib(v)}" for k, v in run["stored"].items() if v)
            print(f"ran {run['strategy']}: gradient {run['seconds']:.1f} s"
                  + (f" (+ observed data {run['observed_seconds']:.1f} s)" if "observed_seconds" in run else "")
                  + f", wall {run['wall_seconds']:.1f} s; peak RSS above baseline {_gib(run['peak_rss_bytes'])}, "
                  f"tracked peak {_gib(run['tracked_peak_bytes'])}; stored: {stored}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2, default=str)
    return result


if __name__ == "__main__":
    main()
