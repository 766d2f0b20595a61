"""``sweep-bench``: the seed notebook's memory-strategy comparison in one command, and knob sweeps.

    sweep-bench                                  # the notebook shot: its 21 strategies and 6 beyond, one repeat
    sweep-bench --quick --strategies 'c *'       # a fast smoke check on a small grid, seconds per case
    sweep-bench --peers                          # add Deepwave's storage options (when installed)
    sweep-bench sweep chunks=25,50,100,200 transfer_interval=1,8,64
    sweep-bench --equation acoustic3d --peers    # 3-D: 160^3 and 64^3 shots (sweep.bench.bench3d)
    sweep-bench --equation vrz                   # the notebook shot, variable density: gradients of vp and z
    sweep-bench --equation vrz3d --grids small   # 3-D variable density (Gardner's density), vp and z

Each case runs in a fresh process (one forward + MSE backward from the smooth Marmousi model against
data of the true one); the results go to a new folder: results.json (every number and the machine),
results.md (tables and figures), strategies.png, tradeoff.png (peak memory against time) and one
sweep-KNOB.png per knob sweep. --equation vrz and vrz3d propagate the variable-density AcousticVRZ
(models vp and z = density x vp, sweep.bench.vrz) and report both gradients' differences from full
storage; vrz's rows are every strategy of the notebook and beyond (and multistage Revolve) on one
back-end (--impl). Ctrl-C stops the running case, keeps the finished ones' results and removes the
folder if nothing finished. Exit status: 0, 2 for bad usage (arguments, --out, a --device
this torch cannot use), 130 when interrupted.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import sys
import tempfile
import time

import torch
from tqdm import tqdm

from ..datasets import MARMOUSI_DH
from ..devices import DeviceUnavailableError, require_device
from .cases import (beyond_notebook_cases, display_label, full_storage_case, inert_reason, knob_cases, notebook_cases,
                    parse_knob, vrz_cases)
from .models import impl_missing
from .report import write_outputs
from .runner import CasesInterrupted, machine_info, reference_label, run_cases, write_setup
from .shot import NOTEBOOK_DECIMATE, QUICK_DECIMATE, QUICK_FREQ, QUICK_NT, bench_shot, sampling, starting_model
from .speed import DT, FREQ, NT
from .vrz import with_marmousi_density


#: --equation values and what each compares.
EQUATIONS = {"acoustic": "the 2-D seed notebook shot (Marmousi)",
             "acoustic3d": "3-D shots of the layered 3-D model (sweep.bench.bench3d)",
             "vrz": "the notebook shot with Marmousi-II's density, AcousticVRZ, gradients of vp and z",
             "vrz3d": "acoustic3d's shots with Gardner's density, AcousticVRZ3D, gradients of vp and z"}

#: The 3-D comparisons (sweep.bench.bench3d).
EQUATIONS_3D = ("acoustic3d", "vrz3d")


class UsageError(Exception):
    """Bad usage (arguments, --out, an unusable --device): :func:`main` prints it as one line, exit status 2."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, raised once the running case is stopped and the temporary folders are gone; ``str()`` is the
    one line that says what finished and where it is."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweep-bench", description=__doc__.split("\n\n")[0].replace("``", ""),
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="*", metavar="sweep KNOB=V1,V2",
                   help="nothing: the strategy comparison; 'sweep' and KNOB=values: knob sweeps "
                        "(chunks, count, transfer_interval, storage, storage_dtype, pinned)")
    p.add_argument("--strategies", nargs="+", default=["*"], metavar="NAME",
                   help="labels or globs (default: all: the notebook's 21 and the 6 beyond it)")
    p.add_argument("--repeat", type=int, default=1, help="runs per case, interleaved; the median time is reported")
    p.add_argument("--nt", type=int, default=None, help=f"time steps (default {NT}; {QUICK_NT} with --quick)")
    p.add_argument("--decimate", type=int, default=None,
                   help=f"keep every k-th Marmousi cell (default {NOTEBOOK_DECIMATE}: the notebook's 25 m grid; "
                        f"{QUICK_DECIMATE} with --quick)")
    p.add_argument("--freq", type=float, default=None,
                   help=f"Ricker peak frequency in Hz (default {FREQ:g}: the notebook's; {QUICK_FREQ:g} with --quick)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="threads per case")
    p.add_argument("--out", default=None, help="output folder (default: a new sweep-bench-DATE-TIME folder)")
    p.add_argument("--force", action="store_true", help="write into --out even if it is not empty")
    p.add_argument("--quick", action="store_true",
                   help=f"a fast smoke check of every strategy, not the notebook's numbers: {QUICK_NT} steps on "
                        f"Marmousi at {MARMOUSI_DH * QUICK_DECIMATE:g} m with a {QUICK_FREQ:g} Hz Ricker, seconds per case")
    p.add_argument("--peers", action="store_true", help="add Deepwave's rows (when it is installed)")
    p.add_argument("--disk-dir", default=None, help="where disk strategies write (default: a private temp folder)")
    g = p.add_argument_group("equations", "the comparison of another equation (sweep.bench.bench3d for 3-D)")
    g.add_argument("--equation", default="acoustic", metavar="NAME",
                   help=f"one of {', '.join(EQUATIONS)}: {'; '.join(f'{k}: {v}' for k, v in EQUATIONS.items())} "
                        "(default acoustic)")
    g.add_argument("--impl", default=None, choices=("c", "eager"),
                   help="vrz: the back-end of every row (default 'c' where a compiled 2-D VRZ stepper is registered "
                        "and runs, on the CPU, else 'eager')")
    g.add_argument("--grids", default="large,small",
                   help="acoustic3d, vrz3d: comma-separated grids, large (160^3, nt=2000, impl='c') and small (64^3, "
                        "nt=600, impl='c' and 'eager'); default both")
    g.add_argument("--size", type=int, default=None,
                   help="acoustic3d, vrz3d: cells per axis of every grid instead of its own (a quick check)")
    return p


def _output_dir(out: str | None, force: bool) -> tuple[str, bool]:
    """(the output folder, whether it is to be created); UsageError if it is a file, or a folder with
    something in it and no ``force``."""
    out = out or time.strftime("sweep-bench-%Y%m%d-%H%M%S")
    if os.path.exists(out) and (not os.path.isdir(out) or (os.listdir(out) and not force)):
        raise UsageError(f"--out {out!r} exists and is not an empty folder; use --force to write into it")
    return out, not os.path.exists(out)


def _with_references(cases: list[dict]) -> list[dict]:
    """``cases`` with every reference they need in front (full storage of each back-end used)."""
    labels = {c["label"] for c in cases}
    refs = []
    for case in cases:
        ref = reference_label(case)
        if ref not in labels and case["contender"] == "sweep":
            refs.append(full_storage_case(case["impl"]))
            labels.add(ref)
    return refs + cases


def _peer_cases(disk_dir: str) -> list[dict]:
    from .peers import deepwave_cases
    from .speed import deepwave_available

    if not deepwave_available():
        print("sweep-bench: --peers: Deepwave is not installed (pip install -e '.[bench]'); no peer rows")
        return []
    return [dict(label=label, contender="deepwave", impl=None, peer=spec, disk_dir=disk_dir)
            for label, spec in deepwave_cases()]


def main(argv: list[str] | None = None) -> None:
    """The ``sweep-bench`` command: :func:`run`, with bad usage and Ctrl-C each said in one line on stderr."""
    try:
        run(argv)
    except UsageError as exc:
        print(f"sweep-bench: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as exc:
        print(f"sweep-bench: {str(exc) or 'interrupted'}", file=sys.stderr)
        raise SystemExit(130) from None


def _settings(args: argparse.Namespace) -> tuple[int, int, float, list[tuple[str, list]]]:
    """(nt, decimate, freq, knob sweeps) of the arguments; UsageError when they make no sense."""
    nt = args.nt or (QUICK_NT if args.quick else NT)
    decimate = args.decimate or (QUICK_DECIMATE if args.quick else NOTEBOOK_DECIMATE)
    freq = args.freq or (QUICK_FREQ if args.quick else FREQ)
    knobs = []
    if args.command:
        if args.command[0] != "sweep" or len(args.command) < 2:
            raise UsageError("the only command is 'sweep KNOB=V1,V2,...'")
        try:
            knobs = [parse_knob(k) for k in args.command[1:]]
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.repeat < 1 or args.threads < 1 or nt < 1 or decimate < 1 or not freq > 0:
        raise UsageError("--repeat, --threads, --nt, --decimate and --freq must be positive")
    try:
        require_device(args.device, "--device")
    except (ValueError, DeviceUnavailableError) as exc:
        raise UsageError(str(exc)) from None
    return nt, decimate, freq, knobs


def run(argv: list[str] | None = None) -> dict:
    """Run ``sweep-bench`` with command-line arguments ``argv``; returns what results.json holds.

    Raises
    ------
    UsageError
        Bad arguments, an --out that is not an empty folder, or a --device this torch cannot use; raised
        before anything is created.
    Interrupted
        Ctrl-C; the finished cases' results are written first, a folder created here with nothing in it is
        removed.
    """
    args = _parser().parse_args(argv)
    if args.equation not in EQUATIONS:
        raise UsageError(f"--equation must be one of {', '.join(EQUATIONS)}, got {args.equation!r}")
    if args.equation in EQUATIONS_3D:
        return _run3d(args)
    if args.grids != "large,small" or args.size is not None:
        raise UsageError("--grids and --size apply to --equation vrz3d and acoustic3d only")
    nt, decimate, freq, knobs = _settings(args)
    if args.impl is not None and args.equation != "vrz":
        raise UsageError("--impl applies to --equation vrz only (acoustic's strategy labels name their back-end)")
    impl = _vrz_impl(args) if args.equation == "vrz" else None
    work = tempfile.mkdtemp(prefix="sweep-bench-work-")
    disk_dir = args.disk_dir or tempfile.mkdtemp(prefix="sweep-bench-disk-")
    try:
        if knobs:
            groups = [(name, values, _with_references(knob_cases(name, values, disk_dir))) for name, values in knobs]
        else:
            listed = vrz_cases(impl, disk_dir) if impl else notebook_cases(disk_dir) + beyond_notebook_cases(disk_dir)
            cases = [c for c in listed
                     if any(fnmatch.fnmatch(c["label"], p) or fnmatch.fnmatch(display_label(c["label"], args.device), p)
                            for p in args.strategies)]
            if not cases:
                raise UsageError(f"no strategy matches {args.strategies}")
            groups = [(None, None, _with_references(cases + (_peer_cases(disk_dir) if args.peers else [])))]
        out, create = _output_dir(args.out, args.force)
        shot, vp_start = bench_shot(nt, decimate, freq), starting_model(decimate)
        setup = dict(shape=list(vp_start.shape), nt=nt, decimate=decimate, freq=freq, device=args.device,
                     threads=args.threads, repeat=args.repeat, quick=args.quick,
                     peak_kind="cuda" if args.device.startswith("cuda") else "rss", **sampling(shot, vp_start))
        if impl:
            shot = with_marmousi_density(shot, vp_start, decimate)
            setup.update(equation="vrz", models=["vp", "z"], impl=impl, dt=DT, max_stable_dt=shot["max_stable_dt"],
                         substep=shot["substep"])
        result = dict(machine=machine_info(args.device, args.threads), setup=setup, rows=[], sweeps=[])
        runs = dict(done=0, of=sum(len(cases) for _, _, cases in groups) * args.repeat)
        if create:
            os.makedirs(out)
        try:
            _measure(groups, result, shot, vp_start, work, args, runs)
            write_outputs(out, result)
        except KeyboardInterrupt:
            raise Interrupted(_wrap_up(out, create, result, runs)) from None
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.disk_dir is None:
            shutil.rmtree(disk_dir, ignore_errors=True)


def _vrz_impl(args: argparse.Namespace) -> str:
    """``--equation vrz``'s back-end: ``--impl``, else 'c' where a compiled 2-D VRZ stepper is registered and
    runs (the library built, the device the CPU), else 'eager'; UsageError for the options it does not take
    or an ``--impl`` that cannot run."""
    if args.command or args.peers:
        raise UsageError("knob sweeps and --peers apply to --equation acoustic only (vrz: --strategies, --impl, "
                         "--quick, --nt, --decimate, --freq)")
    if args.impl is None:
        return "c" if torch.device(args.device).type == "cpu" and impl_missing("c", "vrz") is None else "eager"
    why = impl_missing(args.impl, "vrz")
    if why:
        raise UsageError(f"--impl {args.impl}: {why}")
    return args.impl


def _run3d(args: argparse.Namespace) -> dict:
    """``--equation acoustic3d`` or ``vrz3d``: the 2-D-only options refused, then
    :func:`sweep.bench.bench3d.run3d`."""
    from .bench3d import run3d

    if args.command or args.quick or args.decimate is not None or args.impl is not None:
        raise UsageError(f"knob sweeps, --quick, --decimate and --impl apply to the 2-D equations only "
                         f"({args.equation}: --grids, --size, --nt, --freq)")
    if args.peers and args.equation != "acoustic3d":
        raise UsageError(f"--peers: Deepwave has no variable-density counterpart of --equation {args.equation}")
    if args.repeat < 1 or args.threads < 1 or (args.nt is not None and args.nt < 1) or \
            (args.freq is not None and not args.freq > 0):
        raise UsageError("--repeat, --threads, --nt and --freq must be positive")
    try:
        require_device(args.device, "--device")
    except (ValueError, DeviceUnavailableError) as exc:
        raise UsageError(str(exc)) from None
    return run3d(args)


def _measure(groups: list[tuple], result: dict, shot: dict, vp_start: torch.Tensor, work: str,
             args: argparse.Namespace, runs: dict) -> None:
    """Run every group's cases, filling ``result``'s rows and sweeps and counting ``runs['done']``; on
    Ctrl-C the finished cases' rows are in ``result`` when :class:`CasesInterrupted` leaves."""
    setup = result["setup"]
    path = os.path.join(work, "setup.pt")
    write_setup(path, shot, vp_start, setup["nt"], args.device, args.threads)
    with tqdm(total=runs["of"], desc="sweep-bench", unit="run") as bar:
        def progress(case: dict, outcome: dict) -> None:
            runs["done"] += 1
            bar.set_postfix_str(display_label(case["label"], args.device))
            if outcome["status"] == "failed":
                tqdm.write(f"{display_label(case['label'], args.device)}: failed: {outcome['error']}")
            bar.update()

        def keep(name: str | None, values: list | None, rows: list[dict]) -> None:
            if name is None:
                result["rows"] = rows
            elif rows:
                result["sweeps"].append(dict(knob=name, values=values, rows=rows,
                                             inert=inert_reason(name, args.device)))

        for name, values, cases in groups:
            try:
                rows = run_cases(cases, path, work, args.repeat, args.threads, progress)
            except CasesInterrupted as exc:
                keep(name, values, exc.rows)
                raise
            keep(name, values, rows)


def _wrap_up(out: str, created: bool, result: dict, runs: dict) -> str:
    """After Ctrl-C: write the finished cases' results, or remove ``out`` if it was created here and is
    empty; returns the line that says which."""
    finished = len(result["rows"]) + sum(len(s["rows"]) for s in result["sweeps"])
    if finished:
        result["interrupted"] = dict(runs=runs["done"], of=runs["of"])
        write_outputs(out, result, echo=False)
        return (f"interrupted after {runs['done']} of {runs['of']} runs; the results of the {finished} "
                f"case{'s' if finished > 1 else ''} that finished are in {out}/ (results.json, results.md, figures)")
    if created and not os.listdir(out):
        os.rmdir(out)
        return f"interrupted before any case finished; removed the empty folder {out}/"
    return f"interrupted before any case finished; nothing written to {out}/"
