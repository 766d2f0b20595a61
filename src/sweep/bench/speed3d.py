"""The ``3d`` section of ``python -m sweep.bench.speed``: a 3-D shot, sweep impl='c' against Deepwave 0.1.0.

The shot (:func:`sweep.bench.shot3d.shot3d`): the layered 3-D model, 100^3 interior cells at 25 m, space
order 4, 20 absorbing cells per face (140^3 padded), nt=500 x 2 ms, a 4 Hz Ricker, 1 shot at the surface
centre, 144 receivers (every 8th cell in x and y at depth index 4). Contenders, interleaved, medians of
``repeats``:

- forward: sweep c (no gradient) against Deepwave's ``deepwave.scalar`` with a 3-D model (no gradient);
- forward+backward of sum(data**2): sweep c with boundary saving in fp32 on the device against Deepwave
  with its full wavefield storage on the device (its default; run only where its estimate, with the
  headroom of :mod:`sweep.bench.peers3d`, fits the memory available, else said);
- the 2-D kernel's forward on the seed shot (181 x 721 padded, 2000 steps) in the same rounds, for ns per
  padded cell-step next to the 3-D one.

Targets: c forward <= 0.2x Deepwave's forward, c fwd+bwd (boundary fp32) <= 0.2x Deepwave's fwd+bwd.
GFLOP/s counts a nominal ``9 r + 12`` flops per padded cell and step (order 4: 30), the 3-D interior
stencil's: three second derivatives of ``3 r + 1`` (the centre tap and ``r`` symmetric pairs, an add and an
FMA each), three scalings by 1/dh^2 and two adds to sum them, four for the leapfrog update; the 2-D
kernel's ``6 r + 9`` likewise. Against the measured FMA peak (:func:`sweep.propagator.c.fma_peak`).

``loaded``: the c fwd+bwd timed quiet, beside another process running N-thread c forwards of the same 3-D
shot, and with 1 thread beside it (as :mod:`sweep.bench.loaded` does for 2-D; targets 1.1x one thread, 3x
quiet). Devito, when importable, is timed on the forward with its own seismic example classes; it is not
installed here, and the section says so.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import warnings
from typing import Callable

import torch

from ..propagator.options import BoundaryOptions, MemoryOptions
from .shot3d import ABCN3, ORDER3, deepwave_call3d, padded_cells, propagator3d, shot3d

N3, NT3, REC_STEP3 = 100, 500, 8
TARGET = 0.2
BOUNDARY_FP32 = MemoryOptions("boundary", boundary=BoundaryOptions(storage_dtype="fp32"))


def flops_per_cell_3d(order: int = ORDER3) -> int:
    """Nominal flops of the 3-D interior stencil per padded cell and step (see the module docstring)."""
    return 9 * (order // 2) + 12


def sweep3d_runner(shot: dict, nt: int, backward: bool, threads: int | None = None, impl: str = "c",
                   **options) -> Callable[[], None]:
    """One sweep run (impl='c' by default) on ``shot``: forward, or forward + backward of sum(data**2)
    (``options`` go to PropTorch; default boundary saving in fp32 for the backward). ``threads``: torch's
    count while it runs."""
    options = options or ({"memory": BOUNDARY_FP32} if backward else {})
    prop = propagator3d(shot, nt, impl=impl, **options)

    def run() -> None:
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            vp = shot["vp"].clone().requires_grad_(backward)
            with torch.set_grad_enabled(backward):
                data = prop(shot["wavelet"], shot["sources"], shot["receivers"], [vp])
                if backward:
                    (data**2).sum().backward()
        finally:
            torch.set_num_threads(before)

    return run


def deepwave3d_runner(shot: dict, nt: int, backward: bool) -> Callable[[], None]:
    """One Deepwave run on ``shot`` (full storage on the device when ``backward``)."""
    def run() -> None:
        vp = shot["vp"].clone().requires_grad_(backward)
        with torch.set_grad_enabled(backward):
            out = deepwave_call3d(shot, nt, vp)
            if backward:
                (out**2).sum().backward()

    return run


def deepwave3d_fits(shot: dict, nt: int) -> str | None:
    """Why Deepwave's fwd+bwd with full storage is not run here (its estimate does not fit), or None."""
    from .peers import deepwave_cases
    from .peers3d import check_peer3d

    spec = dict(deepwave_cases())["deepwave · device"]
    refused = check_peer3d(dict(peer=spec, disk_dir=None), dict(shot=shot, nt=nt), torch.device("cpu"))
    return None if refused is None else refused["error"]


def devito3d_runner(shot: dict, nt: int, threads: int) -> Callable[[], None]:
    """Devito's acoustic example solver on the 3-D shot (as :func:`sweep.bench.speed.devito_runner` in 2-D):
    same grid, spacing, order, a 20-cell damping layer, dt, source and receivers; compiled in an untimed call."""
    from .speed import configure_devito

    configure_devito()
    from examples.seismic import AcquisitionGeometry, Model
    from examples.seismic.acoustic import AcousticWaveSolver
    import numpy as np

    vp = shot["vp"].numpy().transpose(2, 1, 0).astype(np.float32) / 1000.0  # Devito: (x, y, z), km/s
    dh = shot["dh"]
    model = Model(vp=vp, origin=(0.0, 0.0, 0.0), spacing=(dh, dh, dh), shape=vp.shape, space_order=ORDER3,
                  nbl=ABCN3, bcs="damp", dtype=np.float32)
    src = (shot["sources"].reshape(-1, 3) * dh).astype(np.float32)
    rec = (shot["receivers"].reshape(-1, 3) * dh).astype(np.float32)
    dt_ms = shot["dt"] * 1000.0
    geometry = AcquisitionGeometry(model, rec, src, t0=0.0, tn=(nt - 1) * dt_ms, f0=shot["freq"] / 1000.0,
                                   src_type="Ricker", t0w=1000.0 / shot["freq"]).resample(dt_ms)
    solver = AcousticWaveSolver(model, geometry, space_order=ORDER3)

    def run() -> None:
        solver.forward(dt=dt_ms, nthreads=threads)

    run()
    return run


def _load_worker3d(n: int, nt: int, threads: int, impl: str = "c") -> None:
    """Body of the load process: ``threads``-thread sweep forwards of the 3-D shot until killed."""
    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", message="only .* grid points per shortest wavelength")
    shot, _ = shot3d(n, nt, REC_STEP3)
    run = sweep3d_runner(shot, nt, False, impl=impl)
    run()
    print("ready", flush=True)
    while True:
        run()


def start_load3d(n: int, nt: int, threads: int, impl: str = "c") -> subprocess.Popen:
    code = f"from sweep.bench.speed3d import _load_worker3d; _load_worker3d({n}, {nt}, {threads}, {impl!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def measure_3d(repeats: int, peak: float, use_deepwave: bool, devito_reason: str | None, n: int = N3,
               nt: int = NT3, seed_nt: int = 2000, progress: Callable[[str], None] = print,
               impl: str = "c") -> list[dict]:
    """Rows of the 3d section (see the module docstring); ``peak``: the FMA peak in flop/s. ``impl``: the
    sweep back-end of the 3-D rows (impl='c'; a row says why where it has no 3-D stepper here)."""
    from .bench3d import impl_missing

    missing = impl_missing(impl)
    if missing:
        progress(f"3d: skipped ({missing})")
        return [dict(section="3d", contender=impl, mode=f"{impl} 3-D", seconds=None, skipped=missing)]
    from .speed import flops_per_cell, measure, seed_shot, sweep_runner, ABCN

    warnings.filterwarnings("ignore", message="only .* grid points per shortest wavelength")
    threads = torch.get_num_threads()
    repeats = max(3, repeats)
    shot, _ = shot3d(n, nt, REC_STEP3)
    cells3 = padded_cells(shot)
    seed = seed_shot(seed_nt)
    cells2 = (seed["vp"].shape[0] + 2 * ABCN) * (seed["vp"].shape[1] + 2 * ABCN)
    contenders: dict[str, tuple[Callable[[], None], int]] = {
        f"{impl} 3-D forward": (sweep3d_runner(shot, nt, False, impl=impl), repeats),
        f"{impl} 3-D forward+backward (boundary fp32)": (sweep3d_runner(shot, nt, True, impl=impl), repeats),
        "c 2-D forward (seed shot)": (sweep_runner("c", seed, seed_nt, False), repeats)}
    notes: dict[str, str] = {}
    if use_deepwave:
        contenders["deepwave 3-D forward"] = (deepwave3d_runner(shot, nt, False), repeats)
        unfit = deepwave3d_fits(shot, nt)
        if unfit is None:
            contenders["deepwave 3-D forward+backward (full storage)"] = (deepwave3d_runner(shot, nt, True), repeats)
        else:
            notes["deepwave 3-D forward+backward (full storage)"] = unfit
    if devito_reason is None:
        contenders["devito 3-D forward"] = (devito3d_runner(shot, nt, threads), repeats)
    progress(f"3d: {len(contenders)} contenders, {repeats} interleaved repeats each")
    times = measure(contenders, repeats)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    pairs = {f"{impl} 3-D forward": "deepwave 3-D forward",
             f"{impl} 3-D forward+backward (boundary fp32)": "deepwave 3-D forward+backward (full storage)"}
    rows = []
    for name, ts in times.items():
        steps, cells = (seed_nt, cells2) if "2-D" in name else (nt, cells3)
        row = dict(section="3d", contender=name.split()[0], mode=name, seconds=med[name], repeats=len(ts),
                   all_seconds=ts, ns_per_cell_step=med[name] / (cells * steps) * 1e9, padded_cells=cells, nt=steps)
        if name in pairs and pairs[name] in med:
            row["ratio_to_deepwave"] = med[name] / med[pairs[name]]
            row["target"] = TARGET
        if name.startswith(("c ", f"{impl} ")) and "forward+backward" not in name:
            flops = flops_per_cell_3d() if "3-D" in name else flops_per_cell()
            row.update(flops_per_cell=flops, gflops=cells * steps * flops / med[name] / 1e9)
            row["fraction_of_peak"] = row["gflops"] * 1e9 / peak
        rows.append(row)
    for name, why in notes.items():
        rows.append(dict(section="3d", contender=name.split()[0], mode=name, seconds=None, skipped=why))
    if devito_reason is not None:
        rows.append(dict(section="3d", contender="devito", mode="devito 3-D forward", seconds=None,
                         skipped=devito_reason))
    rows.append(measure_loaded3d(shot, nt, repeats, progress, impl))
    return rows


def measure_loaded3d(shot: dict, nt: int, repeats: int, progress: Callable[[str], None] = print,
                     impl: str = "c") -> dict:
    """The 3-D c fwd+bwd (boundary fp32) quiet, beside an N-thread 3-D forward process, and with 1 thread
    beside it (the loaded runs of both counts alternate, so that they see the same load)."""
    import time

    threads = torch.get_num_threads()
    runs = {k: sweep3d_runner(shot, nt, True, threads=t, impl=impl) for k, t in (("n", threads), ("one", 1))}

    def timed(run: Callable[[], None]) -> float:
        t0 = time.perf_counter()
        run()
        return time.perf_counter() - t0

    runs["n"]()
    quiet = [timed(runs["n"]) for _ in range(repeats)]
    load = start_load3d(shot["vp"].shape[0], nt, threads, impl)
    try:
        loaded, alone = [], []
        for _ in range(repeats):
            loaded.append(timed(runs["n"]))
            alone.append(timed(runs["one"]))
    finally:
        load.kill()
        load.wait()
    q, lo, one = (statistics.median(x) for x in (quiet, loaded, alone))
    progress(f"3d loaded: {lo:.2f} s with {threads} threads, {one:.2f} s with 1, quiet {q:.2f} s")
    return dict(section="3d", contender=impl, mode=f"{impl} 3-D forward+backward (boundary fp32), loaded", loaded=True,
                case=f"{impl} 3-D fwd+bwd · bdy device · fp32", nt=nt, threads=threads, quiet=q, seconds=lo,
                loaded_1=one,
                ratio_to_1=lo / one, ratio_to_quiet=lo / q, all_quiet=quiet, all_loaded=loaded, all_loaded_1=alone)


def table_3d(rows: list[dict], peak: float) -> str:
    """The 3d rows as a fixed-width table; '!' marks a ratio over its target."""
    lines = [f"{'3-D / 2-D contender':<50} {'seconds':>8} {'ns/cell-step':>12} {'x deepwave':>11} {'GFLOP/s':>16}"]
    for r in rows:
        if r.get("loaded"):
            continue
        if r.get("seconds") is None:
            lines.append(f"{r['mode']:<50} skipped: {r['skipped']}")
            continue
        ratio = r.get("ratio_to_deepwave")
        flag = "" if ratio is None else (" " if ratio <= r["target"] else "!")
        gf = f"{r['gflops']:.1f} = {100 * r['fraction_of_peak']:.0f}% pk" if "gflops" in r else "-"
        lines.append(f"{r['mode']:<50} {r['seconds']:>8.3f} {r['ns_per_cell_step']:>12.3f} "
                     f"{'-' if ratio is None else f'{ratio:.3f}':>10}{flag or ' '} {gf:>16}")
    lines.append(f"(medians; ns per padded cell-step; x deepwave: target <= {TARGET:g} ('!' above it); FMA peak "
                 f"{peak / 1e9:.1f} GFLOP/s)")
    for r in (r for r in rows if r.get("loaded")):
        lines.append(f"loaded: {r['case']}: quiet {r['quiet']:.2f} s, loaded {r['seconds']:.2f} s with {r['threads']} "
                     f"threads, {r['loaded_1']:.2f} s with 1 thread: {r['ratio_to_1']:.2f}x one thread"
                     f"{'' if r['ratio_to_1'] <= 1.1 else ' !'} (target 1.1), {r['ratio_to_quiet']:.2f}x quiet"
                     f"{'' if r['ratio_to_quiet'] <= 3.0 else ' !'} (target 3)")
    return "\n".join(lines)
