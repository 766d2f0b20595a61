"""The seed notebook's memory-strategy comparison on its Marmousi shot, through the public API only.

Run ``python -m sweep.bench.strategies`` (``--help`` for options). For each of the notebook's 21
strategies (cell 3): one forward + MSE backward from the smooth model against data of the true model
(cell 4), timed (median of ``--repeat``), with what ``memory_report()`` says it stored (MiB by
location), its staging rings, the peak of bytes it held at once, the step counts, and the velocity
gradient's difference from full storage of the same back-end: relative L2 over the whole grid and
over rows >= 10 (below the source and receivers, where a few large cells do not dominate the norm),
and max|dg| / max|g|.
"""
from __future__ import annotations

import argparse
import fnmatch
import shutil
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch

from ..datasets import load_marmousi
from ..equations import Acoustic
from ..propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from ..propagator.torch import PropTorch
from .speed import ABCN, DT, NT, ORDER, save_result, seed_shot

MIB = 2**20


def notebook_strategies(disk_dir: str) -> list[tuple[str, dict]]:
    """Cell 3's 21 (label, PropTorch keyword arguments) pairs; disk files go inside ``disk_dir``."""
    def bdy(storage: str, dtype: str) -> MemoryOptions:
        kw: dict = dict(storage=storage, storage_dtype=dtype)
        if storage in ("cpu", "disk"):
            kw["transfer_interval"] = 8
        if storage == "cpu":
            kw["pinned_memory"] = True
        if storage == "disk":
            kw["disk_dir"] = disk_dir
        return MemoryOptions(strategy="boundary", boundary=BoundaryOptions(**kw))

    out = [("eager · full", dict(impl="eager", use_ckpt=False)),
           ("eager · chunk-ckpt", dict(impl="eager", use_ckpt=True, ckpt_chunks=100)),
           ("c · full", dict(impl="c", use_ckpt=False))]
    out += [(f"eager · bdy gpu · {d}", dict(impl="eager", memory=bdy("gpu", d))) for d in ("fp32", "fp16", "bf16", "int8")]
    out += [(f"c · bdy {s} · {d}", dict(impl="c", memory=bdy(s, d)))
            for s in ("gpu", "cpu", "disk") for d in ("fp32", "fp16", "bf16", "int8")]
    out += [("c · chunk-ckpt", dict(impl="c", memory=MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=100)))),
            ("c · recursive-ckpt", dict(impl="c", memory=MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=8))))]
    return out


def _errors(g: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    d = g - ref
    return dict(err_whole=float(d.norm() / ref.norm()), err_below10=float(d[10:].norm() / ref[10:].norm()),
                err_pointwise=float(d.abs().max() / ref.abs().max()))


def run_case(kwargs: dict, shot: dict, vp_start: torch.Tensor, observed: torch.Tensor, nt: int,
             repeat: int) -> tuple[torch.Tensor, dict]:
    """(gradient, measurements) of one strategy: median time of ``repeat`` forward+backward passes."""
    nz, nx = vp_start.shape
    prop = PropTorch(Acoustic(), (nz, nx), shot["dh"], DT, nt, abcn=ABCN, space_order=ORDER, **kwargs)
    times = []
    for _ in range(repeat):
        vp = torch.nn.Parameter(vp_start.clone())
        t0 = time.perf_counter()
        loss = (prop(shot["wavelet"], shot["sources"], shot["receivers"], [vp]) - observed).pow(2).mean()
        loss.backward()
        times.append(time.perf_counter() - t0)
    rep = prop.memory_report()
    stored = rep.bytes_by_location("stored")
    return vp.grad, dict(
        seconds=statistics.median(times), all_seconds=times, strategy=rep.strategy,
        stored_mib={k: v / MIB for k, v in stored.items()}, staging_mib=rep.staging_bytes / MIB,
        peak_mib=rep.peak_memory_bytes / MIB, peak_by_location_mib={k: v / MIB for k, v in rep.peak_bytes.items()},
        steps=dict(forward=rep.forward_steps, replayed=rep.replayed_steps, rebuilt=rep.rebuilt_steps,
                   adjoint=rep.adjoint_steps), files=rep.n_files)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m sweep.bench.strategies", description=__doc__.splitlines()[0])
    parser.add_argument("--nt", type=int, default=NT, help=f"time steps (default {NT})")
    parser.add_argument("--strategies", nargs="*", default=["*"], help="labels or globs (default all 21)")
    parser.add_argument("--repeat", type=int, default=1, help="timed repeats per strategy (median)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="only .* grid points per shortest wavelength")
    warnings.filterwarnings("ignore", message="pinned_memory=True has no effect")

    shot = seed_shot(args.nt)
    vp_start = torch.from_numpy(np.ascontiguousarray(load_marmousi("smooth")[::2, ::2]))
    nz, nx = vp_start.shape
    with torch.no_grad():
        observed = PropTorch(Acoustic(), (nz, nx), shot["dh"], DT, args.nt, abcn=ABCN, space_order=ORDER)(
            shot["wavelet"], shot["sources"], shot["receivers"], [shot["vp"]])
    disk_dir = tempfile.mkdtemp(prefix="sweep-bench-")
    rows, reference = [], {}
    try:
        cases = notebook_strategies(disk_dir)
        chosen = [(label, kw) for label, kw in cases if any(fnmatch.fnmatch(label, p) for p in args.strategies)]
        for impl in ("eager", "c"):  # each back-end's full storage is its reference
            if any(kw["impl"] == impl for _, kw in chosen):
                reference[impl], _ = run_case(dict(impl=impl, use_ckpt=False), shot, vp_start, observed, args.nt, 1)
        print(f"seed shot {nz}x{nx}, nt={args.nt}, order {ORDER}, abcn={ABCN}, {torch.get_num_threads()} threads; "
              f"errors against full storage of the same back-end")
        print(f"{'strategy':<24} {'fwd+bwd s':>9} {'device':>8} {'host':>8} {'disk':>8} {'staging':>8} {'peak':>8} "
              f"{'err whole':>9} {'err z>=10':>9} {'pointwise':>9}   (MiB)")
        for label, kw in chosen:
            grad, row = run_case(kw, shot, vp_start, observed, args.nt, args.repeat)
            row.update(label=label, **_errors(grad, reference[kw["impl"]]))
            rows.append(row)
            s = row["stored_mib"]
            print(f"{label:<24} {row['seconds']:>9.2f} {s.get('device', 0):>8.2f} {s.get('host', 0):>8.2f} "
                  f"{s.get('disk', 0):>8.2f} {row['staging_mib']:>8.2f} {row['peak_mib']:>8.2f} "
                  f"{row['err_whole']:>9.1e} {row['err_below10']:>9.1e} {row['err_pointwise']:>9.1e}", flush=True)
    finally:
        shutil.rmtree(disk_dir, ignore_errors=True)
    return save_result(rows, (nz, nx), args.nt, args.json)


if __name__ == "__main__":
    main()
