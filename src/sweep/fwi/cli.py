"""``sweep-fwi``: invert Marmousi-II (2-D, the default) or a layered 3-D model (``--model layered3d``)
from its smoothed model, with progress, resume and a picture.

Runs alone or under ``torchrun --nproc-per-node=N -m sweep.fwi`` (shots split across the processes).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

from ..memory import InsufficientMemoryError
from ..propagator.options import BoundaryOptions, CkptOptions, EagerOptions, MemoryOptions
from ..propagator.torch import PropTorch
from .batches import ShotBatches
from .atomic import replacing
from .constraints import VelocityConstraints, default_bounds, water_mask
from .distributed import ShotGroup, launch_rank
from .inversion import Band, Inversion
from .layered3d import DEFAULT_DH, DEFAULT_SHAPE, figure_cuts, layered3d_problem
from .marmousi import marmousi_problem
from .parameters import velocity_and_impedance, velocity_at_density
from .plots import model_error, plot_inversion
from .plots3d import plot_inversion_3d
from .problem import Problem
from .state import saved_iterations

DESCRIPTION = """\
Invert Marmousi-II (--model marmousi, the default: 71 x 341 cells at 50 m) or a layered 3-D model
(--model layered3d: 32 x 32 x 32 cells at 50 m, 4 surface shots, a 28 x 28 receiver patch) from its
smoothed model, with observed data made from the true model by the same propagator. Prints a progress
bar per iteration with the misfit, writes the state after every iteration (rerun the same command to
resume an interrupted run), and at the end OUT/fwi.png (true / start / inverted models, or three cuts
through each in 3-D, and the loss curve) and OUT/fwi.npz. With the defaults, about 3 minutes on 2 cores
for marmousi and under 2 for layered3d. For shot parallelism: torchrun --nproc-per-node=2 -m sweep.fwi
[options]."""

MODELS = ("marmousi", "layered3d")

DEFAULTS = {
    "marmousi": {"shots": 12, "frequency": 1.5, "duration": 5.0, "dt": 0.005, "bands": "2:20,all:40", "lr": 40.0,
                 "batch_size": 4},
    "layered3d": {"shots": 4, "frequency": 2.5, "duration": 2.0, "dt": 0.005, "bands": "all:20", "lr": 40.0,
                  "batch_size": 2},
}
"""Each model's defaults of the options whose argparse default is None."""

ONLY = {"decimate": "marmousi", "shape": "layered3d", "dh": "layered3d", "equation": "marmousi"}
"""Options that apply to one model only (giving them with another is an error)."""

DENSITY_BOUNDS = (1000.0, 3000.0)
"""kg/m^3: with the velocity bounds, the impedance bounds of ``--invert vp+z`` (z from the lowest density at the
lowest velocity to the highest at the highest)."""

VRZ_CONTRAST_HEADROOM = 1.1
"""The default upper velocity bound of a variable-density run is the constant-density one divided by this: a
density contrast raises the stability limit's velocity above the peak vp (by 2.4% on Marmousi-II at 25 m)."""


def _default(option: str) -> str:
    """'default 12 for marmousi, 4 for layered3d' of ``option`` (its ``DEFAULTS`` key)."""
    return "default " + ", ".join(f"{DEFAULTS[m][option]} for {m}" for m in MODELS)


def _positive_int(text: str) -> int:
    """--gradient-interval: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


def _substep(text: str) -> int | str | None:
    """--substep: 'auto', 'off' (None: no sub-stepping) or an integer r >= 1."""
    if text in ("auto", "off"):
        return None if text == "off" else text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'auto', 'off' or an integer >= 1") from None


def _bands(text: str) -> list[Band]:
    """'2:15,all:25' -> [Band(2.0, 15), Band(None, 25)]."""
    bands = []
    for item in text.split(","):
        cutoff, sep, iterations = item.partition(":")
        try:
            bands.append(Band(None if cutoff.strip() == "all" else float(cutoff), int(iterations)))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{item!r} is not CUTOFF_HZ:ITERATIONS or all:ITERATIONS ({exc})")
    return bands


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line on stderr and exit status 2 (argparse prints the whole usage first, which
    for this many options buries the error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sweep-fwi", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("problem")
    g.add_argument("--model", choices=MODELS, default="marmousi",
                   help="marmousi: the 2-D Marmousi-II (default); layered3d: sweep.datasets.layered_3d, in 3-D")
    g.add_argument("--decimate", type=int, default=None,
                   help="marmousi: keep every k-th sample of the 12.5 m model (default 4: 50 m)")
    g.add_argument("--shape", type=int, nargs=3, default=None, metavar=("NZ", "NY", "NX"),
                   help=f"layered3d: cells (default {' '.join(map(str, DEFAULT_SHAPE))})")
    g.add_argument("--dh", type=float, default=None, help=f"layered3d: grid spacing, m (default {DEFAULT_DH:g})")
    g.add_argument("--shots", type=int, default=None,
                   help="sources along the surface (marmousi) or on a grid over it (layered3d, as square as "
                        f"the number allows: 4 = 2 x 2); {_default('shots')}")
    g.add_argument("--frequency", type=float, default=None, help=f"Ricker peak frequency, Hz ({_default('frequency')})")
    g.add_argument("--duration", type=float, default=None, help=f"record length, s ({_default('duration')})")
    g.add_argument("--dt", type=float, default=None,
                   help=f"sample interval of the wavelet and the data, s ({_default('dt')}); one above the "
                        "stability limit is sub-stepped (--substep)")
    g.add_argument("--equation", choices=("acoustic", "vrz"), default=None,
                   help="marmousi: 'acoustic' (constant density, default) or 'vrz' (variable density: Marmousi-II's "
                        "shipped density is the truth, its smoothed density the start)")
    g.add_argument("--substep", type=_substep, default="auto", metavar="{auto,off,R}",
                   help="internal time steps per data sample: 'auto' (default) the fewest that are stable for the "
                        "true model's peak velocity (1 when --dt is stable), fixed for the whole run; R: that many; "
                        "'off': step at --dt (an unstable --dt is then an error)")
    g = p.add_argument_group("inversion")
    g.add_argument("--bands", type=_bands, default=None,
                   help="frequency continuation, CUTOFF_HZ:ITERATIONS,... ('all' = no low-pass; "
                        f"{_default('bands')})")
    g.add_argument("--invert", choices=("vp", "vp+z"), default=None,
                   help="--equation vrz: what is inverted: 'vp+z' (default) velocity and impedance together, or 'vp' "
                        "the velocity at the starting density")
    g.add_argument("--lr-z", type=float, default=None,
                   help="--invert vp+z: Adam step of the impedance, kg/(m^2 s) per iteration (default 2000 x --lr: the "
                        "impedance step of a --lr velocity step at 2000 kg/m^3)")
    g.add_argument("--misfit", choices=("l2", "normalized_l2"), default="l2")
    g.add_argument("--lr", type=float, default=None, help=f"Adam step, m/s ({_default('lr')})")
    g.add_argument("--batch-size", type=int, default=None, help=f"shots per propagation call ({_default('batch_size')})")
    g.add_argument("--redraw", action="store_true", help="re-draw the batches at random every iteration")
    g.add_argument("--batches-per-iteration", type=int, default=None,
                   help="use only this many batches per iteration (stochastic gradient; default all)")
    g.add_argument("--encoding", action="store_true",
                   help="mix each batch into one simultaneous source with random polarities (re-drawn each iteration)")
    g.add_argument("--mask", default="water",
                   help="cells held fixed: 'water' (the water layer), 'none', or a .npy bool array of the model's shape, "
                        "True where updated")
    g.add_argument("--vmin", type=float, default=None, help="lower velocity bound, m/s (default: 5 points per wavelength)")
    g.add_argument("--vmax", type=float, default=None,
                   help="upper velocity bound, m/s (default: just below the stability limit of the internal step "
                        "dt / r)")
    g.add_argument("--seed", type=int, default=0, help="seed of the batches and encoding codes")
    g = p.add_argument_group("computation")
    g.add_argument("--impl", choices=("c", "eager"), default=None, help="back-end (default c where built)")
    g.add_argument("--strategy", choices=("full", "chunk", "recursive", "boundary"), default="chunk",
                   help="memory strategy of each propagation (default chunk)")
    g.add_argument("--chunks", type=int, default=100, help="chunk length for --strategy chunk (default 100)")
    g.add_argument("--count", type=int, default=8, help="checkpoints for --strategy recursive (default 8)")
    g.add_argument("--storage", choices=("gpu", "cpu", "disk"), default="gpu", help="boundary store (default gpu: on the device)")
    g.add_argument("--storage-dtype", choices=("fp32", "fp16", "bf16", "int8", "zfp"), default=None,
                   help="boundary codec (default lossless)")
    g.add_argument("--checkpoint-dtype", choices=("zfp",), default=None,
                   help="lossy ZFP compression of chunk checkpoints (--strategy chunk; default exact)")
    g.add_argument("--zfp-tolerance", type=float, default=1e-4,
                   help="ZFP fixed accuracy, relative to each compressed array's peak (default 1e-4)")
    g.add_argument("--zfp-rate", type=float, default=None, help="ZFP fixed rate in bits per value instead")
    g.add_argument("--compile", action="store_true", help="torch.compile the eager steps (impl='eager' only)")
    g.add_argument("--gradient-interval", type=_positive_int, default=1, metavar="K",
                   help="image every K-th internal step, weighted K (default 1: exact); up to the sub-step ratio "
                        "the data's bandwidth allows it (docs/memory.md has the error): full storage and a chunk's "
                        "snapshots shrink K-fold")
    g.add_argument("--threads", type=int, default=None, help="threads per process (default: cores / processes)")
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=Path("fwi-out"), help="output folder (default fwi-out)")
    g.add_argument("--state", type=Path, default=None,
                   help="state file, written every iteration; an existing one is resumed (default OUT/fwi-state.pt)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def memory_options(args: argparse.Namespace) -> MemoryOptions:
    if args.checkpoint_dtype and args.strategy != "chunk":
        raise ValueError("--checkpoint-dtype applies to --strategy chunk")
    if args.storage_dtype and args.strategy != "boundary":
        raise ValueError("--storage-dtype applies to --strategy boundary")
    k = dict(gradient_interval=args.gradient_interval)
    if args.strategy == "full":
        return MemoryOptions("full", **k)
    zfp = dict(zfp_tolerance=args.zfp_tolerance, zfp_rate=args.zfp_rate)
    if args.strategy == "chunk":
        return MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=args.chunks, storage_dtype=args.checkpoint_dtype,
                                                      **zfp), **k)
    if args.strategy == "recursive":
        return MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=args.count), **k)
    return MemoryOptions("boundary", boundary=BoundaryOptions(storage=args.storage, storage_dtype=args.storage_dtype,
                                                              **zfp), **k)


def _mask(spec: str, start: torch.Tensor) -> np.ndarray | None:
    if spec == "water":
        return water_mask(start)
    if spec == "none":
        return None
    if not os.path.isfile(spec):
        raise ValueError(f"--mask must be 'water', 'none' or an existing .npy file, got {spec!r}")
    return np.load(spec, allow_pickle=False)


def time_steps(prop: PropTorch) -> str:
    """How ``prop`` (a PropTorch, its step ratio fixed) steps in time, for the summary line: the data's nt and
    dt, the sub-step ratio r with the internal step, and the gradient interval k."""
    r, k = prop.step_ratio, prop.memory.gradient_interval
    inside = "r=1 (no sub-stepping)" if r == 1 else f"r={r} internal steps of {prop.dt / r:.4g} s"
    exact = " (exact)" if k == 1 else f" (imaging one internal step in {k})"
    return f"nt={prop.nt} samples at dt={prop.dt:g} s, {inside}, gradient interval k={k}{exact}"


def state_path(args: argparse.Namespace) -> Path:
    """The state file: ``--state``, default OUT/fwi-state.pt."""
    return args.state if args.state is not None else args.out / "fwi-state.pt"


def stopped_message(state: Path) -> str:
    """The line that ends an interrupted run: the last iteration whose state is in ``state`` (written
    atomically, so it is whole) and how to resume from it."""
    done = saved_iterations(state)
    if done:
        return f"sweep-fwi: stopped at iteration {done}; state saved in {state}; rerun the same command to resume"
    return ("sweep-fwi: stopped before the first iteration finished; no state saved yet (rerunning the same "
            "command starts afresh)")


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in ``args``' model-dependent defaults (``DEFAULTS``) in place; ValueError for an option of
    another model (``ONLY``)."""
    for option, model in ONLY.items():
        if getattr(args, option) is not None and args.model != model:
            raise ValueError(f"--{option} applies to --model {model}, not --model {args.model}")
    for option, value in DEFAULTS[args.model].items():
        if getattr(args, option) is None:
            setattr(args, option, _bands(value) if option == "bands" else value)
    vrz = args.equation == "vrz"
    if not vrz and (args.invert is not None or args.lr_z is not None):
        raise ValueError("--invert and --lr-z apply to --equation vrz")
    if args.invert == "vp" and args.lr_z is not None:
        raise ValueError("--lr-z applies to --invert vp+z")
    if vrz and args.invert is None:
        args.invert = "vp+z"
    if args.invert == "vp+z" and args.lr_z is None:
        args.lr_z = 2000.0 * args.lr
    return args


def build_problem(args: argparse.Namespace, **propagator_options) -> Problem:
    """The problem ``args.model`` names, as ``args`` (resolved by :func:`resolve`) size it."""
    common = dict(nshots=args.shots, frequency=args.frequency, duration=args.duration, dt=args.dt, **propagator_options)
    if args.model == "layered3d":
        return layered3d_problem(shape=tuple(args.shape or DEFAULT_SHAPE), dh=DEFAULT_DH if args.dh is None else args.dh,
                                 **common)
    return marmousi_problem(decimate=4 if args.decimate is None else args.decimate, equation=args.equation or "acoustic",
                            **common)


def _record(history: list[float], index: int, value: float) -> None:
    """Set ``history[index]`` to ``value``, NaN-filling entries not recorded (those a resumed run made)."""
    del history[index:]
    history.extend([float("nan")] * (index - len(history)))
    history.append(value)


def run(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, invert, write the outputs (rank 0); returns a summary dict."""
    return invert(parser().parse_args(argv))


def invert(args: argparse.Namespace) -> dict:
    """Invert as ``args`` (parsed by :func:`parser`) say, write the outputs (rank 0); returns a summary dict."""
    resolve(args)
    impl = args.impl
    if args.compile and impl != "eager":
        raise ValueError("--compile compiles the PyTorch steps of impl='eager'; impl='c' already runs compiled "
                         "kernels: add --impl eager or drop --compile")
    group = ShotGroup(threads=args.threads)
    try:
        state = state_path(args)
        problem = build_problem(args, impl=impl, memory=memory_options(args), substep=args.substep,
                                eager_options=EagerOptions(use_compile=args.compile))
        prop, start = problem.propagator, problem.start
        lower, upper = default_bounds(prop, problem.survey.wavelet, start)
        if problem.true_density is not None:
            upper /= VRZ_CONTRAST_HEADROOM
        mask = _mask(args.mask, start)
        constraints = [VelocityConstraints(start.shape, lower if args.vmin is None else args.vmin,
                                           upper if args.vmax is None else args.vmax, mask)]
        parameters, starts, lrs = None, [start], [args.lr]
        if args.invert == "vp":
            parameters = velocity_at_density(problem.start_density)
        elif args.invert == "vp+z":
            parameters, lrs = velocity_and_impedance(), [args.lr, args.lr_z]
            starts.append(start * problem.start_density)
            vel = constraints[0]
            constraints.append(VelocityConstraints(start.shape, DENSITY_BOUNDS[0] * vel.lower,
                                                   DENSITY_BOUNDS[1] * vel.upper, mask, quantity="impedance",
                                                   unit="kg/(m^2 s)"))
        batches = ShotBatches(args.shots, args.batch_size, redraw=args.redraw, per_iteration=args.batches_per_iteration,
                              seed=args.seed)
        inversion = Inversion(prop, problem.survey, starts, parameters=parameters, misfit=args.misfit, batches=batches,
                              encoding=args.encoding, constraints=constraints, bands=args.bands, lr=lrs,
                              seed=args.seed, group=group, state_path=state)
        constraints = inversion.constraints  # the velocity's, which the summary line names
        if group.is_main:
            args.out.mkdir(parents=True, exist_ok=True)
            first = inversion.calls(0, 0)[0]
            per_call = prop.estimate_memory(first.wavelet, first.sources, first.receivers,
                                            inversion.parameters.to_models([s.clone().requires_grad_() for s in starts]))
            print(f"sweep-fwi: {problem.survey.nshots} shots on {' x '.join(map(str, prop.shape))} cells at {prop.dh:g} m, "
                  f"{time_steps(prop)}, impl={prop.impl}, {group.world} process(es) x {group.threads} thread(s); bounds "
                  f"{constraints.lower:.0f}-{constraints.upper:.0f} m/s; state {state}\n"
                  f"memory per propagation call ({first.nshots} shot(s)): {per_call.strategy}, predicted peak "
                  f"{per_call.peak_memory_bytes / 2**20:.1f} MiB in memory (stored {per_call.stored_bytes / 2**20:.1f} MiB; "
                  "an upper bound for data-dependent codecs)", flush=True)
        # errors[0]: the start's; errors[i + 1]: after iteration i (NaN for those an earlier, resumed run made);
        # likewise density_errors for --invert vp+z.
        errors = [model_error(start, problem.true)]
        density_errors = [model_error(problem.start_density, problem.true_density)] if len(starts) > 1 else []

        def track(iteration: int, model, loss: float) -> None:
            if group.is_main:
                vp = model[0] if isinstance(model, list) else model
                _record(errors, iteration + 1, model_error(vp, problem.true))
                if density_errors:
                    _record(density_errors, iteration + 1, model_error(model[1] / vp, problem.true_density))

        began = time.perf_counter()
        result = inversion.run(progress=not args.no_progress, callback=track)
        seconds = time.perf_counter() - began
        _record(errors, len(result.losses), model_error(result.model, problem.true))
        summary = {"model": args.model, "iterations": len(result.losses), "resumed_from": result.resumed_from,
                   "seconds": seconds, "losses": result.losses, "start_error": errors[0], "final_error": errors[-1],
                   "errors": errors, "figure": str(args.out / "fwi.png"), "state": str(state)}
        inverted_density = None
        if density_errors:
            inverted_density = result.parameters[1] / result.model
            _record(density_errors, len(result.losses), model_error(inverted_density, problem.true_density))
            summary.update(density_start_error=density_errors[0], density_final_error=density_errors[-1],
                           density_errors=density_errors)
        if group.is_main:
            if problem.ndim == 3:
                plot_inversion_3d(problem.true, start, result.model, result.losses, prop.dh, summary["figure"],
                                  errors=errors, cuts=figure_cuts(prop.shape), band_edges=result.band_starts[1:],
                                  title=f"sweep-fwi --model {args.model}: {problem.survey.nshots} shots, "
                                        f"{len(result.losses)} iterations")
            else:
                density = None if inverted_density is None else (problem.true_density, problem.start_density,
                                                                   inverted_density)
                what = f" of {args.invert} ({args.equation})" if args.invert else ""
                plot_inversion(problem.true, start, result.model, result.losses, prop.dh, summary["figure"],
                               band_edges=result.band_starts[1:], density=density,
                               title=f"sweep-fwi: {len(result.losses)} iterations{what}")
            arrays = dict(inverted=result.model.cpu().numpy(), start=start.numpy(), true=problem.true.numpy(),
                          losses=np.array(result.losses), band_starts=np.array(result.band_starts),
                          errors=np.array(errors))
            if inverted_density is not None:
                arrays.update(inverted_density=inverted_density.cpu().numpy(),
                              start_density=problem.start_density.numpy(), true_density=problem.true_density.numpy(),
                              density_errors=np.array(density_errors))
            with replacing(args.out / "fwi.npz") as f:
                np.savez(f, **arrays)
            resumed = f" (resumed at iteration {result.resumed_from})" if result.resumed_from else ""
            density_line = (f"; density error start {density_errors[0]:.4f} -> inverted {density_errors[-1]:.4f}"
                            if density_errors else "")
            print(f"model error (relative L2 vs the true model): start {summary['start_error']:.4f} -> inverted "
                  f"{summary['final_error']:.4f}{density_line}; misfit {result.losses[0]:.4g} -> "
                  f"{result.losses[-1]:.4g}; this run {seconds:.1f} s{resumed}; wrote {summary['figure']} and "
                  f"{args.out / 'fwi.npz'}", flush=True)
        # The other ranks wait for rank 0's figure and files, so that every rank tears the process group down
        # together: a rank that destroyed it while rank 0 still held its connections was seen to abort.
        group.barrier()
        return summary
    finally:
        group.close()


def main(argv: list[str] | None = None) -> int:
    """The ``sweep-fwi`` command: exit status 0 when done, 2 on bad usage (one line), 1 when a propagation
    call would not fit in memory (the memory guard's message: what it needs, what is available, a strategy
    that fits), 130 after Ctrl-C (one line saying where the run stopped and that rerunning the command
    resumes it)."""
    args = parser().parse_args(argv)
    try:
        invert(args)
    except KeyboardInterrupt:
        if launch_rank() == 0:  # under torchrun every rank is interrupted; one line is enough
            print(stopped_message(state_path(args)), file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as exc:
        print(f"sweep-fwi: error: {exc}", file=sys.stderr)
        return 2
    except InsufficientMemoryError as exc:
        print(f"sweep-fwi: {exc}", file=sys.stderr)
        return 1
    return 0
