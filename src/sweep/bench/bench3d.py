"""``sweep-bench --equation acoustic3d`` and ``vrz3d``: the memory strategies on 3-D shots
(:mod:`sweep.bench.shot3d`; ``vrz3d``: AcousticVRZ3D with Gardner's density, :mod:`sweep.bench.vrz`, both
the vp and the z gradient compared with full storage).

Two grids (``--grids``, default both): ``large`` (160^3, nt=2000) runs impl='c' only: full storage where
the memory guard says it fits ("does not fit" with its prediction where not, so that the table means the
same on a larger machine), boundary saving (device fp32, fp16, int8, ZFP; disk fp32), Revolve,
multistage Revolve and strategy='auto' (:mod:`sweep.bench.cases3d`); ``small`` (64^3, nt=600) runs the
same rows with impl='c' and impl='eager', each compared with its back-end's full storage. ``--peers``
adds Deepwave's storage options (:mod:`sweep.bench.peers3d`). Each case runs in a fresh process as in
2-D (:mod:`sweep.bench.runner`); the outputs are results.json, results.md, and per grid
strategies-GRID.png and tradeoff-GRID.png (peak memory against time, refused rows at their predicted
need); the whole bench's wall time is printed and stored.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import tempfile
import time
import warnings

import torch
from tqdm import tqdm

from .cases import display_label, full_storage_case
from .models import impl_missing, true_models
from .cases3d import GRID_KNOBS, grid_cases3d, skipped_case
from .report3d import write_outputs3d
from .runner import CasesInterrupted, machine_info, run_cases
from .shot import DISPERSION_WARNING
from .shot3d import ABCN3, FREQ3, GRIDS, ORDER3, propagator3d, sampling3d, shot3d
from .vrz import with_gardner_density

#: Back-ends per grid: eager is about 100 times slower than impl='c' in 3-D, so the small grid only.
GRID_IMPLS = {"large": ("c",), "small": ("c", "eager")}


def _peer_cases3d(disk_dir: str) -> list[dict]:
    from .peers import deepwave_cases
    from .speed import deepwave_available

    if not deepwave_available():
        return [skipped_case("deepwave", "Deepwave is not installed (pip install -e '.[bench]')", "deepwave")]
    return [dict(label=label, contender="deepwave", impl=None, peer=spec, disk_dir=disk_dir)
            for label, spec in deepwave_cases()]


def _matches(case: dict, patterns: list[str], device: str) -> bool:
    return any(fnmatch.fnmatch(case["label"], p) or fnmatch.fnmatch(display_label(case["label"], device), p)
               for p in patterns)


def grid_cases(grid: str, patterns: list[str], peers: bool, disk_dir: str, device: str,
               equation: str = "acoustic3d") -> list[dict]:
    """The cases of ``grid`` that ``patterns`` select, each back-end's full storage in front (the reference),
    rows of a back-end that cannot run ``equation`` here marked skipped with why; Deepwave's with ``peers``."""
    cases = []
    for impl in GRID_IMPLS.get(grid, ("c", "eager")):
        mine = [c for c in grid_cases3d(grid, [impl], disk_dir) if _matches(c, patterns, device)]
        if mine and mine[0]["label"] != f"{impl} · full":
            mine.insert(0, dict(full_storage_case(impl), grid=grid))
        why = impl_missing(impl, equation)
        cases += [dict(skipped_case(c["label"], why, impl=impl), grid=grid) for c in mine] if why else mine
    if peers:
        found = _peer_cases3d(disk_dir)
        chosen = [c for c in found if c.get("skip") or _matches(c, patterns, device)]
        if chosen and not chosen[0].get("skip") and chosen[0]["label"] != "deepwave · device":
            chosen.insert(0, found[0])  # Deepwave's own full storage: its rows' reference
        cases += chosen
    return cases


def grid_setup(grid: str, args: argparse.Namespace) -> tuple[dict, torch.Tensor, dict]:
    """(shot, starting model, the grid's setup entry for results.json)."""
    spec = dict(GRIDS.get(grid, GRIDS["small"]))
    if args.size:
        spec["n"] = args.size
        spec["rec_step"] = max(1, min(spec["rec_step"], args.size // 4))
    if args.nt:
        spec["nt"] = args.nt
    shot, vp_start = shot3d(spec["n"], spec["nt"], spec["rec_step"], freq=args.freq or FREQ3)
    more = {}
    if args.equation == "vrz3d":
        shot = with_gardner_density(shot, vp_start)
        more = dict(models=["vp", "z"], max_stable_dt=shot["max_stable_dt"], substep=shot["substep"])
    setup = dict(grid=grid, equation=args.equation, shape=list(vp_start.shape),
                 padded_shape=[n + 2 * ABCN3 for n in vp_start.shape], nt=spec["nt"], dt=shot["dt"],
                 freq=shot["freq"], space_order=ORDER3, abcn=ABCN3, nshots=1, nrec=int(shot["receivers"].shape[1]),
                 source=shot["sources"][0].tolist(), device=args.device, threads=args.threads, repeat=args.repeat,
                 peak_kind="cuda" if args.device.startswith("cuda") else "rss", knobs=GRID_KNOBS.get(grid),
                 **sampling3d(shot, vp_start), **more)
    return shot, vp_start, setup


def write_setup3d(path: str, shot: dict, vp_start: torch.Tensor, setup: dict, peers: bool) -> None:
    """The set-up file every case's process loads: the shot, the starting model, sweep's observed data of
    the true models (impl='c' where it runs, else eager) and, with ``peers``, Deepwave's."""
    dev = torch.device(setup["device"])
    impl = "c" if dev.type == "cpu" and impl_missing("c", shot["equation"]) is None else "eager"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DISPERSION_WARNING)
        observed = propagator3d(shot, setup["nt"], dev, impl=impl)(
            shot["wavelet"], shot["sources"], shot["receivers"], [m.to(dev) for m in true_models(shot)]).cpu()
    saved = dict(shot=shot, vp_start=vp_start, observed=observed, nt=setup["nt"], device=setup["device"],
                 threads=setup["threads"], equation=shot["equation"])
    if peers:
        from .peers3d import deepwave_observed3d

        saved["dw_observed"] = deepwave_observed3d(shot, setup["nt"], dev)
    torch.save(saved, path)


def run3d(args: argparse.Namespace) -> dict:
    """Run the 3-D bench of parsed ``sweep-bench`` arguments; returns what results.json holds (see
    :func:`sweep.bench.cli.run` for the exceptions)."""
    from .cli import Interrupted, UsageError, _output_dir

    grids = [g.strip() for g in args.grids.split(",") if g.strip()]
    unknown = [g for g in grids if g not in GRIDS]
    if unknown or not grids:
        raise UsageError(f"--grids takes a comma-separated list of {sorted(GRIDS)}, got {args.grids!r}")
    if args.size is not None and args.size < 8:
        raise UsageError(f"--size must be at least 8 (cells per axis of the layered 3-D model), got {args.size}")
    work = tempfile.mkdtemp(prefix="sweep-bench-work-")
    disk_dir = args.disk_dir or tempfile.mkdtemp(prefix="sweep-bench-disk-")
    started = time.perf_counter()
    try:
        groups = [(g, grid_cases(g, args.strategies, args.peers, disk_dir, args.device, args.equation)) for g in grids]
        if not any(cases for _, cases in groups):
            raise UsageError(f"no strategy matches {args.strategies}")
        out, create = _output_dir(args.out, args.force)
        result = dict(machine=machine_info(args.device, args.threads), equation=args.equation, grids=[],
                      wall_seconds=None)
        runs = dict(done=0, of=sum(len(c) for _, c in groups) * args.repeat)
        if create:
            os.makedirs(out)
        try:
            with tqdm(total=runs["of"], desc="sweep-bench 3-D", unit="run") as bar:
                for grid, cases in groups:
                    _measure_grid(grid, cases, args, work, result, runs, bar)
        except KeyboardInterrupt:
            result["wall_seconds"] = time.perf_counter() - started
            result["interrupted"] = dict(runs=runs["done"], of=runs["of"])
            if any(g["rows"] for g in result["grids"]):
                write_outputs3d(out, result, echo=False)
                raise Interrupted(f"interrupted after {runs['done']} of {runs['of']} runs; the finished cases' "
                                  f"results are in {out}/") from None
            if create and not os.listdir(out):
                os.rmdir(out)
            raise Interrupted("interrupted before any case finished") from None
        result["wall_seconds"] = time.perf_counter() - started
        write_outputs3d(out, result)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.disk_dir is None:
            shutil.rmtree(disk_dir, ignore_errors=True)


def _measure_grid(grid: str, cases: list[dict], args: argparse.Namespace, work: str, result: dict, runs: dict,
                  bar: tqdm) -> None:
    """Run one grid's cases and append its entry (setup, rows, wall time) to ``result['grids']``."""
    t0 = time.perf_counter()
    shot, vp_start, setup = grid_setup(grid, args)
    entry = dict(name=grid, setup=setup, rows=[], wall_seconds=None)
    result["grids"].append(entry)
    path = os.path.join(work, f"setup-{grid}.pt")
    if any(not c.get("skip") for c in cases):
        bar.set_postfix_str(f"{grid}: observed data")
        peers = any(c["contender"] == "deepwave" and not c.get("skip") for c in cases)
        write_setup3d(path, shot, vp_start, setup, peers)

    def progress(case: dict, outcome: dict) -> None:
        runs["done"] += 1
        label = display_label(case["label"], args.device)
        bar.set_postfix_str(f"{grid}: {label}")
        if outcome["status"] == "failed":
            tqdm.write(f"{grid}: {label}: failed: {outcome['error']}")
        bar.update()

    folder = os.path.join(work, grid)
    os.makedirs(folder, exist_ok=True)
    try:
        entry["rows"] = run_cases(cases, path, folder, args.repeat, args.threads, progress)
    except CasesInterrupted as exc:
        entry["rows"] = exc.rows
        raise
    finally:
        entry["wall_seconds"] = time.perf_counter() - t0
