"""Speed of the seed shot: sweep impl='c' and impl='eager' against Deepwave, forward and forward+backward.

Run ``python -m sweep.bench.speed`` (``--help`` for options). The seed shot: Marmousi-II decimated to
(141, 681) at 25 m, dt = 2 ms, 2000 steps, one source at (z=2, x=nx//2), 100 receivers at z=4, Ricker
5 Hz delayed 0.2 s, space order 4, 20 absorbing cells. Deepwave (``pip install -e ".[bench]"``) is
timed when installed; its source amplitude scaling differs from sweep's, which does not matter for time.

Repeats of the contenders are interleaved (the machine is noisy) and the median is reported, with
physical cell updates per second (nz * nx * nt / seconds) and the ratio to Deepwave's time.

Devito (``pip install devito``, optional) is timed with its own seismic example classes
(``examples.seismic``: ``Model`` with a 20-cell damping layer, ``AcquisitionGeometry``, ``AcousticWaveSolver``)
on the same grid, space order, time step and shot; its operator is compiled in a warm-up call that is not
timed. Its wall time is the comparison; the kernel time its performance summary reports is shown beside it.

Further sections (``--sections``): ``loaded`` times every memory strategy's forward+backward while another
process runs sweep forwards of the same shot, against one thread beside it and against quiet
(:mod:`sweep.bench.loaded`); ``shots`` reports forward shots
per second at several shot counts and forward+backward with chunk checkpointing, against Deepwave; ``3d``
(opt-in) a 100^3 3-D shot, impl='c' against Deepwave (:mod:`sweep.bench.speed3d`); ``vrz`` the seed shot with
the shipped Marmousi-II density, forward through the variable-density ``AcousticVRZ`` against ``Acoustic``,
Deepwave's ``acoustic`` (v, rho) and ``scalar`` (:mod:`sweep.bench.vrz_peers`). The
sweep forward is also reported in GFLOP/s (a nominal ``6 r + 9`` flops per padded cell and step, the
interior stencil's) against the peak of a short FMA microbenchmark on the same threads.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from typing import Callable

import numpy as np
import torch

from ..datasets import MARMOUSI_DH, load_marmousi
from ..propagator.torch import PropTorch
from ..signal import ricker
from .models import bench_equation

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


def seed_propagator(shot: dict, nt: int, device: torch.device | str = "cpu", dt: float = DT, **options) -> PropTorch:
    """A sweep propagator of ``shot``'s equation (:func:`~sweep.bench.models.bench_equation`: Acoustic for the
    seed shot) on the seed shot's grid, absorbing width and space order, with time step ``dt`` (s; the seed's
    2 ms by default); ``options`` (``impl``, ``memory``, ``use_ckpt``, ``substep``, ...) go to
    :class:`PropTorch`, ``substep`` by default the shot's own (``shot['substep']``: a VRZ shot whose dt is
    unstable for its density, see :mod:`sweep.bench.vrz`)."""
    options = {"substep": shot.get("substep"), **options}
    return PropTorch(bench_equation(shot).cls(device=device), tuple(shot["vp"].shape), shot["dh"], dt, nt, abcn=ABCN,
                     space_order=ORDER, **options)


def sweep_runner(impl: str, shot: dict, nt: int, backward: bool, **options) -> Callable[[], None]:
    """sweep on ``shot`` (the seed shot or a :func:`multi_shot` one); ``options`` go to :class:`PropTorch`
    (default: full storage)."""
    prop = seed_propagator(shot, nt, impl=impl, **(options or {"use_ckpt": False}))

    def run() -> None:
        vp = shot["vp"].clone().requires_grad_(backward)
        with torch.set_grad_enabled(backward):
            data = prop(shot["wavelet"], shot["sources"], shot["receivers"], [vp])
            if backward:
                (data**2).sum().backward()

    return run


def deepwave_output(shot: dict, nt: int, vp: torch.Tensor, dt: float = DT, pml_freq: float = FREQ, **options):
    """Deepwave's ``deepwave.scalar`` on the seed shot's grid, space order and absorbing width, with model ``vp``
    (on its device), the shot's wavelet (nt,) at ``dt`` (s) and the C-PML tuned to ``pml_freq`` (Hz): its whole
    output, whose ``receiver_amplitudes`` are (1, NREC, nt) and whose ``info`` says what the call chose (step
    ratio, model-gradient stride, internal dt). ``options`` go to ``deepwave.scalar`` unchanged (e.g.
    ``storage_mode``, ``storage_path``, ``storage_compression``, ``checkpoint_segments``)."""
    import deepwave

    # Deepwave takes [z, x] (slow, fast) locations; sweep takes [x, z].
    src = torch.from_numpy(shot["sources"][:, ::-1].copy()).view(1, 1, 2).to(vp.device)
    rec = torch.from_numpy(shot["receivers"][..., ::-1].copy()).to(vp.device)
    amp = shot["wavelet"].view(1, 1, nt).to(vp.device)
    return deepwave.scalar(vp, shot["dh"], dt, source_amplitudes=amp, source_locations=src, receiver_locations=rec,
                           accuracy=ORDER, pml_width=ABCN, pml_freq=pml_freq, **options)


def deepwave_call(shot: dict, nt: int, vp: torch.Tensor, **options) -> torch.Tensor:
    """The receiver amplitudes (1, NREC, nt) of :func:`deepwave_output` at the seed's dt."""
    return deepwave_output(shot, nt, vp, **options).receiver_amplitudes


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


def multi_shot(shot: dict, nshots: int) -> dict:
    """``nshots`` copies of the seed shot with sources spread along row 2 (same receivers)."""
    nx = shot["vp"].shape[1]
    xs = np.linspace(nx // 8, nx - 1 - nx // 8, nshots).round().astype(np.int64) if nshots > 1 else [nx // 2]
    return dict(shot, sources=np.array([[[x, 2]] for x in xs], dtype=np.int64),
                receivers=np.repeat(shot["receivers"], nshots, 0),
                wavelet=shot["wavelet"].view(1, 1, -1).expand(nshots, 1, -1).contiguous())


def deepwave_shots_runner(shot: dict, nt: int, backward: bool) -> Callable[[], None]:
    """Deepwave on a :func:`multi_shot` shot (its default storage)."""
    import deepwave

    src = torch.from_numpy(shot["sources"][..., ::-1].copy())
    rec = torch.from_numpy(shot["receivers"][..., ::-1].copy())

    def run() -> None:
        vp = shot["vp"].clone().requires_grad_(backward)
        with torch.set_grad_enabled(backward):
            out = deepwave.scalar(vp, shot["dh"], DT, source_amplitudes=shot["wavelet"], source_locations=src,
                                  receiver_locations=rec, accuracy=ORDER, pml_width=ABCN,
                                  pml_freq=FREQ).receiver_amplitudes
            if backward:
                (out**2).sum().backward()

    return run


def devito_missing() -> str | None:
    """Why Devito cannot be timed (None when it can)."""
    try:
        import devito  # noqa: F401
        from examples.seismic import AcquisitionGeometry, Model  # noqa: F401
        from examples.seismic.acoustic import AcousticWaveSolver  # noqa: F401
    except ImportError as exc:
        return f"devito or its examples.seismic package is not installed ({exc}); `pip install devito`"
    return None


def configure_devito() -> None:
    """Devito generating OpenMP code (so that its operators take ``nthreads``) and logging errors only."""
    os.environ.setdefault("DEVITO_LANGUAGE", "openmp")
    os.environ.setdefault("DEVITO_LOGGING", "ERROR")
    import devito

    devito.configuration["language"] = "openmp"
    devito.configuration["log-level"] = "ERROR"


def devito_runner(shot: dict, nt: int, threads: int) -> tuple[Callable[[], None], list[float]]:
    """Devito's acoustic example solver on the seed shot: same grid and spacing, space order, 20-cell
    absorbing layer (Devito's damping mask), dt, source and receivers; OpenMP on ``threads`` threads. Returns
    (run, kernel_seconds): each run appends the kernel time of Devito's performance summary. The operator is
    compiled here (one untimed call)."""
    configure_devito()
    from examples.seismic import AcquisitionGeometry, Model
    from examples.seismic.acoustic import AcousticWaveSolver

    vp = shot["vp"].numpy().T.astype(np.float32) / 1000.0  # Devito: (x, z), km/s
    nx, nz = vp.shape
    dh = float(shot["dh"])
    model = Model(vp=vp, origin=(0.0, 0.0), spacing=(dh, dh), shape=(nx, nz), space_order=ORDER, nbl=ABCN,
                  bcs="damp", dtype=np.float32)
    src = (shot["sources"].reshape(-1, 2) * dh).astype(np.float32)
    rec = (shot["receivers"].reshape(-1, 2) * dh).astype(np.float32)
    dt_ms = DT * 1000.0
    geometry = AcquisitionGeometry(model, rec, src, t0=0.0, tn=(nt - 1) * dt_ms, f0=FREQ / 1000.0,
                                   src_type="Ricker", t0w=DELAY * 1000.0).resample(dt_ms)
    solver = AcousticWaveSolver(model, geometry, space_order=ORDER)
    kernel: list[float] = []

    def run() -> None:
        _, _, summary = solver.forward(dt=dt_ms, nthreads=threads)
        kernel.append(sum(entry.time for entry in summary.values()))

    run()  # compiles the operator (not timed)
    kernel.clear()
    return run, kernel


def _load_worker(nt: int) -> None:
    """Body of the load process: 2-thread sweep forwards of the seed shot until killed."""
    torch.set_num_threads(2)
    warnings.filterwarnings("ignore", message="only .* grid points per shortest wavelength")
    run = sweep_runner("c", seed_shot(nt), nt, False)
    run()
    print("ready", flush=True)
    while True:
        run()


def start_load(nt: int) -> subprocess.Popen:
    """Another process running 2-thread sweep forwards of the seed shot (warm when this returns)."""
    code = f"from sweep.bench.speed import _load_worker; _load_worker({nt})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def flops_per_cell() -> int:
    """Nominal flops of the interior stencil per padded cell and step (order ORDER): 2 (3 r + 1) for the two
    second derivatives, 3 to scale and add them, 4 for the leapfrog update."""
    r = ORDER // 2
    return 6 * r + 9


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
    parser.add_argument("--eager-nt", type=int, default=400,
                        help="time steps of the eager cases of the loaded section (default 400: eager is slow)")
    parser.add_argument("--no-deepwave", action="store_true", help="skip Deepwave even if installed")
    parser.add_argument("--no-devito", action="store_true", help="skip Devito even if installed")
    parser.add_argument("--sections", default="quiet",
                        help="comma-separated: quiet (seed shot forward and forward+backward), loaded (every "
                             "strategy's forward+backward beside another sweep process, against 1 thread and quiet: "
                             "several minutes), shots (throughput), 3d (a 100^3 shot, c against Deepwave, ns per "
                             "cell-step beside 2-D, a loaded row: a few minutes, opt-in), vrz (variable-density "
                             "AcousticVRZ against Acoustic and Deepwave's acoustic and scalar, forward; VRZ runs "
                             "eager where its c kernels are not registered: --eager-repeats); default quiet")
    parser.add_argument("--shots", default="1,8,32", help="shot counts of the shots section (default 1,8,32)")
    parser.add_argument("--n3d", type=int, default=None, help="3d section: cells per axis (default 100)")
    parser.add_argument("--nt3d", type=int, default=None, help="3d section: time steps (default 500)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="only .* grid points per shortest wavelength")
    sections = {x.strip() for x in args.sections.split(",") if x.strip()}
    unknown = sections - {"quiet", "loaded", "shots", "3d", "vrz"}
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")
    from ..propagator.c import code_path, fma_peak

    threads = torch.get_num_threads()
    shot = seed_shot(args.nt)
    nz, nx = shot["vp"].shape
    updates = nz * nx * args.nt
    padded = (nz + 2 * ABCN) * (nx + 2 * ABCN)
    use_deepwave = not args.no_deepwave and deepwave_available()
    if not use_deepwave:
        print("deepwave: skipped (" + ("--no-deepwave" if args.no_deepwave else "not installed") + ")")
    devito_reason = "--no-devito" if args.no_devito else devito_missing()
    if devito_reason:
        print(f"devito: skipped ({devito_reason})")
    rows: list[dict] = []
    extra: dict = dict(code_path=code_path())
    peak = fma_peak(threads)
    extra["fma_peak_gflops"] = peak / 1e9

    if "quiet" in sections:
        for mode, backward in (("forward", False), ("forward+backward", True)):
            contenders: dict[str, tuple[Callable[[], None], int]] = {
                "sweep c": (sweep_runner("c", shot, args.nt, backward), args.repeats)}
            if args.eager_repeats > 0:
                contenders["sweep eager"] = (sweep_runner("eager", shot, args.nt, backward), args.eager_repeats)
            if use_deepwave:
                contenders["deepwave"] = (deepwave_runner(shot, args.nt, backward), args.repeats)
            kernel: list[float] | None = None
            if not backward and not devito_reason:
                run, kernel = devito_runner(shot, args.nt, threads)
                contenders["devito"] = (run, args.repeats)
            times = measure(contenders, args.repeats)
            if kernel is not None:
                del kernel[0]  # measure()'s warm-up call
            reference = statistics.median(times["deepwave"]) if use_deepwave else None
            devito_wall = statistics.median(times["devito"]) if "devito" in times else None
            for name, ts in times.items():
                seconds = statistics.median(ts)
                row = dict(section="quiet", contender=name, mode=mode, seconds=seconds, repeats=len(ts),
                           all_seconds=ts, cell_updates_per_s=updates / seconds,
                           ratio_to_deepwave=None if reference is None else seconds / reference,
                           ratio_to_devito=None if devito_wall is None else seconds / devito_wall)
                if name == "devito" and kernel:
                    row["kernel_seconds"] = statistics.median(kernel)
                if name == "sweep c" and not backward:
                    row["gflops"] = padded * args.nt * flops_per_cell() / seconds / 1e9
                    row["fraction_of_peak"] = row["gflops"] * 1e9 / peak
                rows.append(row)

    if "loaded" in sections:
        from .loaded import loaded_table, measure_loaded

        loaded_rows = measure_loaded(args.nt, args.repeats, args.eager_nt)
        rows += loaded_rows

    if "shots" in sections:
        counts = [int(c) for c in args.shots.split(",") if c.strip()]
        cases = [(n, False, {"use_ckpt": False}) for n in counts] + [(8, True, {"use_ckpt": True})]
        for n, backward, options in cases:
            multi = multi_shot(shot, n)
            mode = f"{n} shots " + ("fwd+bwd (sweep: chunks)" if backward else "forward")
            contenders = {"sweep c": (sweep_runner("c", multi, args.nt, backward, **options), args.repeats)}
            if use_deepwave:
                contenders["deepwave"] = (deepwave_shots_runner(multi, args.nt, backward), args.repeats)
            reps = max(3, args.repeats if n <= 8 else 3)
            times = measure(contenders, reps)
            reference = statistics.median(times["deepwave"]) if use_deepwave else None
            for name, ts in times.items():
                seconds = statistics.median(ts)
                rows.append(dict(section="shots", contender=name, mode=mode, nshots=n, seconds=seconds,
                                 repeats=len(ts), all_seconds=ts, shots_per_s=n / seconds,
                                 ratio_to_deepwave=None if reference is None else seconds / reference))

    if "3d" in sections:
        from .speed3d import measure_3d

        rows += measure_3d(args.repeats, peak, use_deepwave, devito_reason,
                           **({"nt": args.nt3d} if args.nt3d else {}), **({"n": args.n3d} if args.n3d else {}))

    if "vrz" in sections:
        from .vrz_peers import measure_vrz

        rows += measure_vrz(args.nt, args.repeats, args.eager_repeats, use_deepwave)

    print(f"seed shot: {nz}x{nx} physical cells, nt={args.nt}, space order {ORDER}, abcn={ABCN}, "
          f"{threads} threads, {args.repeats} repeats (median); sweep c code path: {extra['code_path']}; "
          f"FMA peak {peak / 1e9:.1f} GFLOP/s")
    print(f"{'section':<7} {'contender':<12} {'mode':<34} {'seconds':>8} {'x deepwave':>10} {'x devito':>9} "
          f"{'other':>28}")
    for row in (r for r in rows if r["section"] not in ("loaded", "3d", "vrz")):
        ratio = lambda key: "-" if row.get(key) is None else f"{row[key]:.2f}"  # noqa: E731
        other = ""
        if "kernel_seconds" in row:
            other = f"kernel {row['kernel_seconds']:.3f} s"
        if "gflops" in row:
            other = f"{row['gflops']:.1f} GFLOP/s = {100 * row['fraction_of_peak']:.0f}% peak"
        if "shots_per_s" in row:
            other = f"{row['shots_per_s']:.2f} shots/s"
        print(f"{row['section']:<7} {row['contender']:<12} {row['mode']:<34} {row['seconds']:>8.3f} "
              f"{ratio('ratio_to_deepwave'):>10} {ratio('ratio_to_devito'):>9} {other:>28}")
    if "loaded" in sections:
        print(f"\nloaded: forward+backward beside another {threads}-thread sweep process")
        print(loaded_table([r for r in rows if r["section"] == "loaded"]))
    if "3d" in sections:
        from .speed3d import table_3d

        print(f"\n3d: layered 3-D model {args.n3d or 100}^3 (+{ABCN} absorbing cells per face), nt={args.nt3d or 500}, "
              "1 shot; c forward and fwd+bwd (boundary fp32) against Deepwave's forward and fwd+bwd (full storage)")
        print(table_3d([r for r in rows if r["section"] == "3d"], peak))
    if "vrz" in sections:
        from .vrz_peers import vrz_summary, vrz_table

        vrz_rows = [r for r in rows if r["section"] == "vrz"]
        print(f"\nvrz: {vrz_summary(vrz_rows)}")
        print(vrz_table(vrz_rows))
    result = save_result(rows, (nz, nx), args.nt, None)
    result.update(extra)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
