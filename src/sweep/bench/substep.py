"""Time sub-stepping and gradient sampling on the notebook shot: ``python -m sweep.bench.substep``.

The seed notebook's shot (Marmousi-II at 25 m, a 5 Hz Ricker, space order 4, 20 absorbing cells, one
source, 100 receivers, 4 s) with its data sampled at 4 ms (nt = 1000) and at 8 ms (nt = 500): both above
the 3.26 ms that order 4 allows for the true model's 4700 m/s, so sweep steps at ``dt / r`` inside
(``substep=r``, r = 2 and 3: the smallest stable r for the true model, which makes the observed data).
For full storage, chunk checkpointing (100 internal steps), Revolve (8 checkpoints) and boundary saving
(fp32, in the compute device's memory), all impl='c', fp32, on the CPU:

- the velocity gradient of ``(d(v) - d_obs).pow(2).mean()`` at the smooth start model, with the
  gradient interval ``k = 1`` (exact) and ``k = r`` (:class:`~sweep.propagator.options.MemoryOptions`'s
  ``gradient_interval``), and the error of ``k = r`` against ``k = 1`` of the same strategy: relative L2
  over the grid, below depth index 10, and max|dg| / max|g|;
- the bytes the strategy stored (``memory_report``) and the forward+backward time (median of
  ``--repeats`` runs, interleaved), with their ratios ``k = r`` over ``k = 1``;
- each strategy against full storage at the same k: bit for bit for checkpointing, within round-off for
  boundary saving;
- full storage's k = r error again in float64 (not timed), which is the sampling error without fp32's
  round-off, and how far fp32's exact gradient is from float64's (the scale fp32's errors compare with).

Deepwave 0.1.0 (when installed) on the same shot and data dt, with its defaults: it sub-steps by itself
(Courant number 0.6: r = 2 at 4 ms, 4 at 8 ms) and its model-gradient stride is its step ratio times
``model_gradient_sampling_interval`` (default 1), so its default gradient samples the imaging sum once per
data sample. Its exact gradient (stride 1) is the same call made at the internal dt on the wavelet
upsampled with Deepwave's own ``upsample`` and its data downsampled with its ``downsample`` (the two
routes' data are compared, and agree bit for bit). Its misfit is against its own data of the true model
(its source scaling differs from sweep's), so its errors compare with sweep's, its gradients do not.

Writes results.json (every number and the machine) and results.md (tables) to ``--out``. ``--quick`` is
a smoke check in seconds on a 100 m grid (data at 16 and 32 ms, a 1.25 Hz Ricker), not the shot's numbers.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from ..propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from ..signal import max_frequency, ricker
from .report import save_results
from .runner import gradient_errors, machine_info
from .shot import DISPERSION_WARNING, ricker_delay, starting_model
from .speed import deepwave_available, deepwave_output, seed_propagator, seed_shot

MIB = 2**20
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """The shot of a run: Marmousi kept every ``decimate``-th cell (2: 25 m), a Ricker of ``freq`` Hz
    delayed one period, ``duration`` s recorded at each data sample interval of ``dts`` (s)."""

    decimate: int
    freq: float
    duration: float
    dts: tuple[float, ...]


NOTEBOOK = Settings(decimate=2, freq=5.0, duration=4.0, dts=(0.004, 0.008))
# Four times coarser in space and in time: the same r (2 and 3) and Courant numbers, 16x fewer cells.
QUICK = Settings(decimate=8, freq=1.25, duration=4.0, dts=(0.016, 0.032))

#: label -> the memory options of that strategy at gradient interval k.
STRATEGIES: dict[str, Callable[[int], MemoryOptions]] = {
    "full": lambda k: MemoryOptions("full", gradient_interval=k),
    "chunk (100 steps)": lambda k: MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=100), gradient_interval=k),
    "Revolve (8 checkpoints)": lambda k: MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=8),
                                                      gradient_interval=k),
    "boundary (fp32, device)": lambda k: MemoryOptions("boundary", boundary=BoundaryOptions(storage="gpu",
                                                                                           storage_dtype="fp32"),
                                                      gradient_interval=k),
}
REFERENCE = "full"


def data_shot(settings: Settings, dt: float) -> dict:
    """The seed shot (:func:`~sweep.bench.speed.seed_shot`) on ``settings``' grid with its wavelet sampled at
    ``dt`` (s): ``nt = round(duration / dt)`` samples of the Ricker, in ``shot['wavelet']`` (nt,) float32."""
    nt = round(settings.duration / dt)
    shot = seed_shot(nt, settings.decimate)
    t = np.arange(nt) * dt - ricker_delay(settings.freq)
    shot["wavelet"] = torch.from_numpy(ricker(t, settings.freq).astype(np.float32))
    return shot


def _timed(run: Callable[[], T]) -> tuple[T, float]:
    """(what ``run`` returns, its wall time in s)."""
    began = time.perf_counter()
    out = run()
    return out, time.perf_counter() - began


def sweep_gradient(shot: dict, dt: float, r: int, memory: MemoryOptions, vp_start: torch.Tensor,
                   observed: torch.Tensor) -> tuple[torch.Tensor, float, dict]:
    """(velocity gradient (nz, nx), forward+backward seconds, memory summary) of one sweep call at data
    interval ``dt`` with ``r`` internal steps per sample; ``observed`` (1, nt, NREC, 1). The summary holds
    ``memory_report``'s stored bytes, its tracked peak held in memory (a chunk's snapshot block is held, not
    stored) and its step counts."""
    nt = observed.shape[1]
    prop = seed_propagator(shot, nt, dt=dt, impl="c", substep=r, memory=memory)
    vp = vp_start.clone().requires_grad_(True)

    def run() -> torch.Tensor:
        (prop(shot["wavelet"], shot["sources"], shot["receivers"], [vp]) - observed).pow(2).mean().backward()
        return vp.grad

    grad, seconds = _timed(run)
    rep = prop.memory_report()
    return grad, seconds, dict(stored_bytes=rep.stored_bytes, peak_bytes=rep.peak_memory_bytes,
                               forward_steps=rep.forward_steps,
                               replayed_steps=rep.replayed_steps, rebuilt_steps=rep.rebuilt_steps,
                               adjoint_steps=rep.adjoint_steps)


def float64_errors(shot: dict, dt: float, r: int, vp_start: torch.Tensor, fp32_exact: torch.Tensor) -> dict:
    """Full storage in float64 (not timed): ``sampling``, the k = r gradient against the k = 1 one, which is
    the sampling error without fp32's round-off; ``fp32``, the fp32 k = 1 gradient ``fp32_exact`` against
    the float64 one, the round-off that fp32's errors are to be read against."""
    shot64 = dict(shot, vp=shot["vp"].double(), wavelet=shot["wavelet"].double())
    nt = shot["wavelet"].shape[0]
    with torch.no_grad():
        observed = seed_propagator(shot64, nt, dt=dt, impl="c", substep=r)(
            shot64["wavelet"], shot64["sources"], shot64["receivers"], [shot64["vp"]])
    exact, approx = (sweep_gradient(shot64, dt, r, MemoryOptions("full", gradient_interval=k), vp_start.double(),
                                    observed)[0] for k in (1, r))
    return dict(sampling=gradient_errors(approx, exact), fp32=gradient_errors(fp32_exact.double(), exact))


def deepwave_gradient(shot: dict, dt: float, freq: float, vp_start: torch.Tensor, target: torch.Tensor,
                      exact_ratio: int | None) -> tuple[torch.Tensor, float, torch.Tensor, dict]:
    """(velocity gradient, forward+backward seconds, predicted data (1, NREC, nt), what Deepwave chose) of
    one Deepwave call with its defaults; with ``exact_ratio`` r, the same call made at ``dt / r`` on the
    wavelet upsampled by Deepwave's ``upsample``, its data downsampled by its ``downsample``: model-gradient
    stride 1, the exact gradient of the default call's misfit. ``target``: Deepwave's data of the true model."""
    from deepwave.discretisation import downsample, upsample

    nt = target.shape[-1]
    vp = vp_start.clone().requires_grad_(True)

    def run() -> tuple[torch.Tensor, object]:
        if exact_ratio is None:
            out = deepwave_output(shot, nt, vp, dt=dt, pml_freq=freq)
            pred = out.receiver_amplitudes
        else:
            fine = dict(shot, wavelet=upsample(shot["wavelet"], exact_ratio))
            out = deepwave_output(fine, nt * exact_ratio, vp, dt=dt / exact_ratio, pml_freq=freq)
            pred = downsample(out.receiver_amplitudes, exact_ratio)
        (pred - target).pow(2).mean().backward()
        return pred.detach(), out.info

    (pred, info), seconds = _timed(run)
    chose = dict(step_ratio=info.step_ratio, model_gradient_sampling_interval=info.model_gradient_sampling_interval,
                 model_gradient_stride=info.model_gradient_stride, internal_dt=info.internal_dt)
    return vp.grad, seconds, pred, chose


def deepwave_ratio(shot: dict, dt: float, vp: torch.Tensor) -> int:
    """The step ratio Deepwave chooses for ``dt`` on ``vp``'s grid (its CFL condition at the model's peak)."""
    from deepwave.discretisation import cfl_condition_n

    return cfl_condition_n([shot["dh"]] * 2, dt, float(vp.max()))[1]


class Runs:
    """Cases run ``repeats`` times, rounds interleaved: the first run's result is kept, the median time."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar
        self.cases: dict[str, Callable[[], tuple]] = {}
        self.first: dict[str, tuple] = {}
        self.seconds: dict[str, list[float]] = {}

    def add(self, name: str, case: Callable[[], tuple]) -> None:
        """``case()`` returns a tuple whose second item is its seconds."""
        self.cases[name] = case
        self.seconds[name] = []

    def run(self, repeats: int) -> None:
        for _ in range(repeats):
            for name, case in self.cases.items():
                self.bar.set_postfix_str(name)
                out = case()
                self.first.setdefault(name, out)
                self.seconds[name].append(out[1])
                self.bar.update()

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])


def measure(settings: Settings, dt: float, repeats: int, bar: tqdm, peers: bool) -> dict:
    """Every number of one data sample interval ``dt`` (s): sweep's rows and Deepwave's (or why not)."""
    shot = data_shot(settings, dt)
    nt = shot["wavelet"].shape[0]
    vp_start = starting_model(settings.decimate)
    # The observed data fix r ('auto': the smallest stable for the true model, the faster one); every
    # gradient call then uses that r, as an inversion would.
    maker = seed_propagator(shot, nt, dt=dt, impl="c", substep="auto")
    with torch.no_grad():
        observed = maker(shot["wavelet"], shot["sources"], shot["receivers"], [shot["vp"]])
    r = maker.step_ratio
    runs = Runs(bar)
    for label, memory in STRATEGIES.items():
        for k in (1, r):
            runs.add(f"{label} k={k}", lambda m=memory(k): sweep_gradient(shot, dt, r, m, vp_start, observed))
    dw_ratio = None
    if peers:
        with torch.no_grad():
            target = deepwave_output(shot, nt, shot["vp"], dt=dt, pml_freq=settings.freq).receiver_amplitudes
        dw_ratio = deepwave_ratio(shot, dt, vp_start)
        runs.add("deepwave default", lambda: deepwave_gradient(shot, dt, settings.freq, vp_start, target, None))
        runs.add("deepwave stride 1", lambda: deepwave_gradient(shot, dt, settings.freq, vp_start, target, dw_ratio))
    runs.run(repeats)

    rows = []
    for label in STRATEGIES:
        exact = runs.first[f"{label} k=1"]
        for k in (1, r):
            grad, _, memory = runs.first[f"{label} k={k}"]
            full = runs.first[f"{REFERENCE} k={k}"][0]
            row = dict(strategy=label, k=k, seconds=runs.median(f"{label} k={k}"),
                       all_seconds=runs.seconds[f"{label} k={k}"], stored_mib=memory["stored_bytes"] / MIB,
                       peak_mib=memory["peak_bytes"] / MIB, **memory,
                       **gradient_errors(grad, exact[0]),
                       identical_to_full=bool(torch.equal(grad, full)),
                       vs_full=gradient_errors(grad, full))
            if k > 1:
                row.update(time_ratio=row["seconds"] / runs.median(f"{label} k=1"),
                           stored_ratio=memory["stored_bytes"] / exact[2]["stored_bytes"],
                           peak_ratio=memory["peak_bytes"] / exact[2]["peak_bytes"])
            rows.append(row)
    limit = maker.max_stable_dt(float(shot["vp"].max()))
    points = float(min(shot["vp"].min(), vp_start.min())) / max_frequency(shot["wavelet"].numpy(), dt) / shot["dh"]
    result = dict(dt=dt, nt=nt, r=r, internal_dt=dt / r, internal_steps=nt * r, max_stable_dt=limit,
                  points_per_wavelength=points, rows=rows,
                  float64=float64_errors(shot, dt, r, vp_start, runs.first[f"{REFERENCE} k=1"][0]))
    result["deepwave"] = _deepwave_result(runs, dw_ratio) if peers else dict(
        skipped="Deepwave is not installed (pip install -e '.[bench]')")
    return result


def _deepwave_result(runs: Runs, ratio: int) -> dict:
    """Deepwave's default against its stride-1 gradient (see :func:`deepwave_gradient`)."""
    grad, _, pred, chose = runs.first["deepwave default"]
    exact, _, exact_pred, exact_chose = runs.first["deepwave stride 1"]
    if chose["step_ratio"] != ratio or exact_chose["model_gradient_stride"] != 1:
        raise RuntimeError(f"Deepwave chose step ratio {chose['step_ratio']} (expected {ratio}) and stride "
                           f"{exact_chose['model_gradient_stride']} at the internal dt (expected 1)")
    peak = float(pred.abs().max())
    return dict(**chose, seconds=runs.median("deepwave default"), all_seconds=runs.seconds["deepwave default"],
                exact_seconds=runs.median("deepwave stride 1"), exact_all_seconds=runs.seconds["deepwave stride 1"],
                data_difference=float((pred - exact_pred).abs().max()) / peak if peak > 0 else None,
                **gradient_errors(grad, exact))


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else ("0" if x == 0 else format(x, spec))


def sweep_table(run: dict) -> str:
    """One data dt's sweep rows as a Markdown table."""
    head = ["strategy", "k", "stored MiB", "peak MiB", "fwd+bwd s", "k=r/k=1: stored", "peak", "time", "err whole",
            "err z>=10", "pointwise", "vs full, same k"]
    lines = []
    for row in run["rows"]:
        if row["strategy"] == REFERENCE:
            agree = "reference"
        elif row["identical_to_full"]:
            agree = "identical"
        else:
            agree = f"{_fmt(row['vs_full']['err_whole'], '.1e')} (pointwise {_fmt(row['vs_full']['err_pointwise'], '.1e')})"
        lines.append([row["strategy"], str(row["k"]), f"{row['stored_mib']:.2f}", f"{row['peak_mib']:.2f}",
                      f"{row['seconds']:.2f}", _fmt(row.get("stored_ratio"), ".3f"), _fmt(row.get("peak_ratio"), ".3f"),
                      _fmt(row.get("time_ratio"), ".2f"),
                      _fmt(row["err_whole"], ".1e"), _fmt(row["err_below10"], ".1e"), _fmt(row["err_pointwise"], ".1e"),
                      agree])
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                     ["| " + " | ".join(c) + " |" for c in lines])


def deepwave_table(runs: list[dict]) -> str:
    """Deepwave's defaults at each data dt as a Markdown table (or why there are none)."""
    head = ["data dt", "step ratio", "sampling interval", "gradient stride", "fwd+bwd s", "stride 1 fwd+bwd s",
            "err whole", "err z>=10", "pointwise"]
    lines = []
    for run in runs:
        d = run["deepwave"]
        if "skipped" in d:
            return f"Deepwave: not run: {d['skipped']}."
        lines.append([f"{run['dt'] * 1e3:g} ms", str(d["step_ratio"]), str(d["model_gradient_sampling_interval"]),
                      str(d["model_gradient_stride"]), f"{d['seconds']:.2f}", f"{d['exact_seconds']:.2f}",
                      _fmt(d["err_whole"], ".1e"), _fmt(d["err_below10"], ".1e"), _fmt(d["err_pointwise"], ".1e")])
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                     ["| " + " | ".join(c) + " |" for c in lines])


def markdown(result: dict) -> str:
    """results.md: what was run, then one table per data dt and Deepwave's."""
    s, m = result["setup"], result["machine"]
    md = [f"# Time sub-stepping and gradient sampling\n\n"
          f"Marmousi shot {s['shape'][0]}x{s['shape'][1]} at {s['dh']:g} m, {s['duration']:g} s, {s['freq']:g} Hz "
          f"Ricker, space order 4, impl='c', fp32, {s['threads']} thread(s), {s['repeats']} repeat(s) "
          f"(median, interleaved), {m['cpu']}, torch {m['torch']}, sweep {m['git'] or 'no git'}, load "
          f"{m['load'][0]:.2f}." + (" Quick run: a smoke check, not the notebook shot's numbers." if s["quick"] else "")
          + "\n",
          "k: gradient interval (`MemoryOptions(gradient_interval=k)`); r: internal steps per data sample "
          "(`substep`). Errors: the k = r gradient against the k = 1 gradient of the same strategy (relative L2 over "
          "the grid and below depth index 10; max|dg| / max|g|). 'vs full, same k': the strategy's gradient against "
          "full storage's at the same k. Stored: memory_report's stored bytes; peak: its tracked peak held in memory (a "
          "chunk's snapshot block is held, not stored). Times: one forward+backward each, the "
          "median of the repeats; noisy on a shared machine, but the repeats are interleaved, so the two medians of "
          "a ratio were measured under the same conditions.\n"]
    for run in result["runs"]:
        f64 = {part: ", ".join(_fmt(errors[key], ".1e") for key in ("err_whole", "err_below10", "err_pointwise"))
               for part, errors in run["float64"].items()}
        md += [f"## Data at {run['dt'] * 1e3:g} ms: nt = {run['nt']}, r = {run['r']} (internal dt "
               f"{run['internal_dt'] * 1e3:.4g} ms, {run['internal_steps']} steps; stable up to "
               f"{run['max_stable_dt'] * 1e3:.3g} ms)\n", sweep_table(run),
               f"\nIn float64 (full storage, not timed) the k = {run['r']} gradient is {f64['sampling']} (whole, "
               f"z>=10, pointwise) from the k = 1 one: the sampling error without fp32's round-off; fp32's k = 1 "
               f"gradient is {f64['fp32']} from float64's.\n"]
    md += ["## Deepwave 0.1.0's default on the same shot\n",
           "Its step ratio (Courant number 0.6) and model-gradient stride (step ratio x "
           "`model_gradient_sampling_interval`) as it chooses them; errors against its stride-1 gradient (the call "
           "at the internal dt, resampled with Deepwave's own upsample/downsample outside, whose data equal the "
           "default call's to " + ", ".join(_fmt(r["deepwave"].get("data_difference"), ".1e")
                                           for r in result["runs"]) + " of their peak).\n",
           deepwave_table(result["runs"]), ""]
    return "\n".join(md)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sweep.bench.substep", description=__doc__.split("\n\n")[0],
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]).replace("``", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="output folder (default: a new sweep-substep-DATE-TIME folder)")
    p.add_argument("--quick", action="store_true", help="a smoke check in seconds on a 100 m grid")
    p.add_argument("--repeats", type=int, default=None, help="runs per case, interleaved (default 3; 1 with --quick)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (the C kernels' too)")
    return p


def run(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, measure, write results.json and results.md into ``--out``; returns the results."""
    p = _parser()
    args = p.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else 1 if args.quick else 3
    if repeats < 1 or args.threads < 1:
        p.error(f"--repeats and --threads must be positive, got {repeats} and {args.threads}")
    out = args.out or time.strftime("sweep-substep-%Y%m%d-%H%M%S")
    if os.path.exists(out) and not os.path.isdir(out):
        p.error(f"--out {out!r} is a file, not a folder")
    settings = QUICK if args.quick else NOTEBOOK
    peers = deepwave_available()
    if not peers:
        print("sweep.bench.substep: Deepwave is not installed (pip install -e '.[bench]'); no Deepwave rows")
    grid = seed_shot(1, settings.decimate)
    cases = 2 * len(STRATEGIES) + (2 if peers else 0)
    threads = torch.get_num_threads()  # restored after: run() may be called inside another program
    torch.set_num_threads(args.threads)
    try:
        with warnings.catch_warnings(), tqdm(total=cases * repeats * len(settings.dts), unit="run") as bar:
            # The notebook's grid is under 5 points per wavelength in its slowest layer (sweep-bench says so
            # once too); results.json keeps the number for each dt.
            warnings.filterwarnings("ignore", message=DISPERSION_WARNING)
            runs = [measure(settings, dt, repeats, bar, peers) for dt in settings.dts]
    finally:
        torch.set_num_threads(threads)
    setup = dict(asdict(settings), shape=list(grid["vp"].shape), dh=grid["dh"], repeats=repeats,
                 threads=args.threads, quick=args.quick, device="cpu", strategies=list(STRATEGIES))
    result = dict(machine=machine_info("cpu", args.threads), setup=setup, runs=runs)
    os.makedirs(out, exist_ok=True)
    text = markdown(result)
    save_results(out, result, text)
    print(text + f"\nresults in {out}/ (results.json, results.md)")
    return result


if __name__ == "__main__":
    run()
