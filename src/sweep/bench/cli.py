"""``sweep-bench``: the seed notebook's memory-strategy comparison in one command, and knob sweeps.

    sweep-bench                                  # the notebook shot: its 21 strategies and 6 beyond, one repeat
    sweep-bench --quick --strategies 'c *'       # a small grid, seconds per case
    sweep-bench --peers                          # add Deepwave's storage options (when installed)
    sweep-bench sweep chunks=25,50,100,200 transfer_interval=1,8,64

Each case runs in a fresh process (one forward + MSE backward from the smooth Marmousi model against
data of the true one); the results go to a new folder: results.json (every number and the machine),
results.md (tables and figures), strategies.png and one sweep-KNOB.png per knob sweep.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import tempfile
import time

import torch
from tqdm import tqdm

from .cases import full_storage_case, inert_reason, knob_cases, notebook_cases, parse_knob, beyond_notebook_cases
from .runner import machine_info, reference_label, run_cases, write_setup
from .speed import NT

QUICK_NT, QUICK_DECIMATE = 400, 8


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
                   help=f"keep every k-th Marmousi cell (default 2: the notebook's 25 m grid; {QUICK_DECIMATE} with --quick)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="threads per case")
    p.add_argument("--out", default=None, help="output folder (default: a new sweep-bench-DATE-TIME folder)")
    p.add_argument("--force", action="store_true", help="write into --out even if it is not empty")
    p.add_argument("--quick", action="store_true", help="a small grid and short record: seconds per case")
    p.add_argument("--peers", action="store_true", help="add Deepwave's rows (when it is installed)")
    p.add_argument("--disk-dir", default=None, help="where disk strategies write (default: a private temp folder)")
    return p


def _output_dir(out: str | None, force: bool) -> str:
    out = out or time.strftime("sweep-bench-%Y%m%d-%H%M%S")
    if os.path.exists(out) and (not os.path.isdir(out) or (os.listdir(out) and not force)):
        raise SystemExit(f"sweep-bench: --out {out!r} exists and is not an empty folder; use --force to write into it")
    os.makedirs(out, exist_ok=True)
    return out


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


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else ("0" if x == 0 else format(x, spec))


def table(rows: list[dict], markdown: bool = False) -> str:
    """The rows as a fixed-width (or Markdown) table; a failed row says why."""
    head = ["strategy", "fwd+bwd s", "peak MiB", "tracked MiB", "predicted MiB", "device", "host", "disk", "RMS g",
            "err whole", "err z>=10", "pointwise"]
    lines = []
    for r in rows:
        label = r["label"] if r.get("value") is None else f"{r['label']} [{r['value']}]"
        if r["status"] == "failed":
            lines.append([label, "failed: " + r["error"][:90]])
            continue
        s = r.get("stored_mib")
        peak = r.get("cuda_peak_mib") if r.get("cuda_peak_mib") is not None else r.get("peak_rss_mib")
        stored = [_fmt(s.get(k, 0.0), ".2f") if s is not None else "-" for k in ("device", "host", "disk")]
        predicted = (r.get("predicted") or {}).get("tracked_peak_mib")
        lines.append([label, _fmt(r["seconds"], ".2f"), _fmt(peak, ".1f"), _fmt(r.get("tracked_peak_mib"), ".2f"),
                      _fmt(predicted, ".2f"), *stored, _fmt(r.get("grad_rms"), ".2e"), _fmt(r["err_whole"], ".1e"),
                      _fmt(r["err_below10"], ".1e"), _fmt(r["err_pointwise"], ".1e")])
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                         ["| " + " | ".join(c + [""] * (len(head) - len(c))) + " |" for c in lines])
    full = [c for c in lines if len(c) == len(head)]
    widths = [max(len(x) for x in col) for col in zip(head, *full)] if full else [len(h) for h in head]
    widths[0] = max(widths[0], *(len(c[0]) for c in lines)) if lines else widths[0]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([fmt(head)] + [fmt(c) if len(c) == len(head) else f"{c[0].ljust(widths[0])}  {c[1]}" for c in lines])


def main(argv: list[str] | None = None) -> None:
    """The ``sweep-bench`` command."""
    run(argv)


def run(argv: list[str] | None = None) -> dict:
    """Run ``sweep-bench`` with command-line arguments ``argv``; returns what results.json holds."""
    args = _parser().parse_args(argv)
    nt = args.nt or (QUICK_NT if args.quick else NT)
    decimate = args.decimate or (QUICK_DECIMATE if args.quick else 2)
    knobs = []
    if args.command:
        if args.command[0] != "sweep" or len(args.command) < 2:
            raise SystemExit("sweep-bench: the only command is 'sweep KNOB=V1,V2,...'")
        try:
            knobs = [parse_knob(k) for k in args.command[1:]]
        except ValueError as exc:
            raise SystemExit(f"sweep-bench: {exc}") from exc
    if args.repeat < 1 or args.threads < 1 or nt < 1 or decimate < 1:
        raise SystemExit("sweep-bench: --repeat, --threads, --nt and --decimate must be positive")
    work = tempfile.mkdtemp(prefix="sweep-bench-work-")
    disk_dir = args.disk_dir or tempfile.mkdtemp(prefix="sweep-bench-disk-")
    try:
        if knobs:
            groups = [(name, values, _with_references(knob_cases(name, values, disk_dir))) for name, values in knobs]
        else:
            cases = [c for c in notebook_cases(disk_dir) + beyond_notebook_cases(disk_dir) if any(fnmatch.fnmatch(c["label"], p) for p in args.strategies)]
            if not cases:
                raise SystemExit(f"sweep-bench: no strategy matches {args.strategies}")
            groups = [(None, None, _with_references(cases + (_peer_cases(disk_dir) if args.peers else [])))]
        out = _output_dir(args.out, args.force)
        setup = os.path.join(work, "setup.pt")
        nz, nx = write_setup(setup, nt, decimate, args.device, args.threads)
        result = dict(machine=machine_info(args.device, args.threads),
                      setup=dict(shape=[nz, nx], nt=nt, decimate=decimate, device=args.device, threads=args.threads,
                                 repeat=args.repeat, peak_kind="cuda" if args.device.startswith("cuda") else "rss"),
                      rows=[], sweeps=[])
        total = sum(len(cases) for _, _, cases in groups) * args.repeat
        with tqdm(total=total, desc="sweep-bench", unit="run") as bar:
            def progress(case: dict, outcome: dict) -> None:
                bar.set_postfix_str(case["label"])
                if outcome["status"] == "failed":
                    tqdm.write(f"{case['label']}: failed: {outcome['error']}")
                bar.update()

            for name, values, cases in groups:
                rows = run_cases(cases, setup, work, args.repeat, args.threads, progress)
                if name is None:
                    result["rows"] = rows
                else:
                    result["sweeps"].append(dict(knob=name, values=values, rows=rows,
                                                 inert=inert_reason(name, args.device)))
        _write_outputs(out, result)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.disk_dir is None:
            shutil.rmtree(disk_dir, ignore_errors=True)


def _write_outputs(out: str, result: dict) -> None:
    from .plots import plot_strategies, plot_sweep

    setup, machine = result["setup"], result["machine"]
    title = (f"Marmousi shot {setup['shape'][0]}x{setup['shape'][1]}, nt={setup['nt']}, device {setup['device']}, "
             f"{setup['threads']} threads, {machine['cpu']}, torch {machine['torch']}, sweep {machine['sweep']} "
             f"({machine['git'] or 'no git'}), load {machine['load'][0]:.2f}")
    md = [f"# sweep-bench\n\n{title}\n",
          "Peak: process memory above the case's baseline (VmHWM) on a CPU, torch.cuda.max_memory_allocated on "
          "a GPU; tracked: the most bytes the strategy held at once (memory_report); device/host/disk: stored "
          "MiB; errors: relative to full storage of the same back-end.\n"]
    if result["rows"]:
        print(table(result["rows"]))
        plot_strategies(result, os.path.join(out, "strategies.png"))
        md += [table(result["rows"], markdown=True), "\n![strategies](strategies.png)\n"]
    for sweep in result["sweeps"]:
        print(f"\nsweep {sweep['knob']} = {sweep['values']}" + (f"  ({sweep['inert']})" if sweep["inert"] else ""))
        print(table(sweep["rows"]))
        md += [f"## {sweep['knob']} = {', '.join(map(str, sweep['values']))}\n", table(sweep["rows"], markdown=True)]
        if sweep["inert"]:
            md.append(f"\nNot plotted: {sweep['inert']}.\n")
        elif plot_sweep(dict(sweep, rows=[r for r in sweep["rows"] if r.get("value") is not None]),  # not the references
                        os.path.join(out, f"sweep-{sweep['knob']}.png")):
            md.append(f"\n![{sweep['knob']}](sweep-{sweep['knob']}.png)\n")
    with open(os.path.join(out, "results.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write("\n".join(md) + "\n")
    print(f"\nresults in {out}/ (results.json, results.md, figures)")
