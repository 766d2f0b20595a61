"""Variable-density acoustic (AcousticVRZ) on a Marmousi-II section with its density: one shot's synthetics
and FWI gradients (w.r.t. vp and impedance z) under every memory strategy, on each back-end that has VRZ.

For each back-end (``impl='eager'``, and ``impl='c'`` where its VRZ kernels are registered) and each strategy
(full storage, boundary saving, chunk checkpointing, recursive Revolve checkpointing) the script runs the
forward of the starting models [smooth vp, smooth density x smooth vp] and the gradient of the L2 misfit
against the data of the true models, and prints a table: time of the forward and of the backward, bytes the
strategy tracked (``prop.memory_report()``: stored, and peak held in memory), and the relative L2 difference
``|a - b| / |b|`` of the synthetics and of both gradients against full storage on the same back-end; then the
same differences between the back-ends, strategy by strategy. Without VRZ c kernels it says so and compares
eager with itself across strategies. Checkpointing replays the same steps, so its rows are expected exactly
0; boundary saving rebuilds the wavefield backwards in time, so it differs at rounding level.

One figure (``--out``, default a new folder ``vrz_forward_compare`` here): the observed gather, the residual
of the starting models and the two full-storage gradients.

The defaults take about 30 s of CPU with eager (80 s wall on a busy 2-core machine): Marmousi-II decimated 4 times (71 x 341 at 50 m),
750 steps of 4 ms, a 1.7 Hz Ricker (5 grid points per shortest wavelength in the water). ``--decimate 2
--nt 1500 --dt 0.002 --freq 3.4`` is the seed notebook's grid (minutes with eager).
"""
from __future__ import annotations

import argparse
import os
import time

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from sweep.datasets import MARMOUSI_DH, load_marmousi  # noqa: E402
from sweep.equations import AcousticVRZ  # noqa: E402
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions  # noqa: E402
from sweep.propagator.registry import impls  # noqa: E402
from sweep.propagator.torch import PropTorch  # noqa: E402
from sweep.signal import ricker  # noqa: E402

MIB = 2**20


def marmousi_vrz(decimate: int) -> tuple[np.ndarray, ...]:
    """True and starting models, decimated: ``(vp, z, vp_start, z_start)`` (m/s and kg m^-2 s^-1, float32,
    (nz, nx)). The start is the shipped ``'smooth'`` vp and density (250 m Gaussians, the water kept), so its
    impedance has no sharp contrast either."""
    rho, vp = load_marmousi("true", model="rho"), load_marmousi("true")
    rho_start, vp_start = load_marmousi("smooth", model="rho"), load_marmousi("smooth")
    keep = (slice(None, None, decimate),) * 2
    return tuple(np.ascontiguousarray(a[keep], dtype=np.float32)
                 for a in (vp, rho * vp, vp_start, rho_start * vp_start))


def compiled_missing() -> str | None:
    """Why ``impl='c'`` cannot run AcousticVRZ here (None when it can)."""
    if "c" not in impls(AcousticVRZ.name, 2):
        return "impl='c' has no AcousticVRZ kernels registered here"
    try:
        from sweep.propagator.c import library_available
    except ImportError as exc:
        return f"the compiled back-end does not import ({exc})"
    return None if library_available() else "the compiled back-end is not built"


def strategies(chunks: int, count: int) -> dict[str, MemoryOptions]:
    """The four memory strategies compared, by label (full storage first: the reference)."""
    return {"full": MemoryOptions("full"),
            "boundary": MemoryOptions("boundary", boundary=BoundaryOptions("device")),
            f"chunk({chunks})": MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=chunks)),
            f"revolve({count})": MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=count))}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative L2 difference ``|a - b| / |b|``."""
    return float((a - b).norm() / b.norm())


def run_case(prop: PropTorch, shot: tuple, observed: torch.Tensor, start: list[torch.Tensor]) -> dict:
    """One forward + backward of the L2 misfit from the starting models: synthetics (nshots, nt, nrec, 1),
    gradients w.r.t. vp and z (nz, nx), seconds of each pass and the strategy's tracked bytes."""
    vp, z = (m.clone().requires_grad_(True) for m in start)
    t0 = time.perf_counter()
    data = prop(*shot, [vp, z])
    t1 = time.perf_counter()
    (0.5 * (data - observed).pow(2).sum()).backward()
    t2 = time.perf_counter()
    report = prop.memory_report()
    return dict(data=data.detach(), grad_vp=vp.grad, grad_z=z.grad, forward_s=t1 - t0, backward_s=t2 - t1,
                stored_bytes=report.stored_bytes, peak_bytes=report.peak_memory_bytes, strategy=report.strategy)


def warm_up(impl: str, shape: tuple[int, int], dh: float, dt: float, shot: tuple, start: list[torch.Tensor],
            freq: float) -> None:
    """One untimed gradient of a few steps on ``impl``, so that the first timed case does not also pay the
    process's one-time costs (thread pools, autograd's set-up)."""
    steps = min(8, shot[0].shape[-1])
    prop = PropTorch(AcousticVRZ(), shape, dh, dt, steps, impl=impl, memory=MemoryOptions("full"), pml_freq=freq)
    short = (shot[0][:steps], *shot[1:])
    with torch.no_grad():
        observed = prop(*short, start)
    run_case(prop, short, observed, start)


def compare(runs: dict[tuple[str, str], dict], backends: list[str], labels: list[str]) -> list[dict]:
    """Rows of differences: each (back-end, strategy) against full storage of that back-end, then each
    strategy between the back-ends (the first one the reference)."""
    keys = ("data", "grad_vp", "grad_z")
    rows = []
    for impl in backends:
        ref = runs[impl, "full"]
        for label in labels:
            run = runs[impl, label]
            rows.append(dict(kind="vs full", impl=impl, strategy=label, **{k: rel(run[k], ref[k]) for k in keys},
                             **{k: run[k] for k in ("forward_s", "backward_s", "stored_bytes", "peak_bytes")}))
    for other in backends[1:]:
        for label in labels:
            a, b = runs[other, label], runs[backends[0], label]
            rows.append(dict(kind=f"{other} vs {backends[0]}", impl=other, strategy=label,
                             **{k: rel(a[k], b[k]) for k in keys}))
    return rows


def table(rows: list[dict]) -> str:
    """The rows as text: timings and tracked MiB where measured, then the three relative differences."""
    lines = [f"{'compared':<14} {'impl':<6} {'strategy':<12} {'fwd s':>7} {'bwd s':>7} {'stored MiB':>10} "
             f"{'peak MiB':>9} {'data':>9} {'grad vp':>9} {'grad z':>9}"]
    for r in rows:
        timed = (f"{r['forward_s']:>7.2f} {r['backward_s']:>7.2f} {r['stored_bytes'] / MIB:>10.2f} "
                 f"{r['peak_bytes'] / MIB:>9.2f}") if "forward_s" in r else f"{'':>7} {'':>7} {'':>10} {'':>9}"
        lines.append(f"{r['kind']:<14} {r['impl']:<6} {r['strategy']:<12} {timed} {r['data']:>9.2e} "
                     f"{r['grad_vp']:>9.2e} {r['grad_z']:>9.2e}")
    return "\n".join(lines)


def plot(observed: torch.Tensor, reference: dict, dh: float, dt: float, title: str, path: str) -> None:
    """The observed gather, the starting models' residual and the two gradients, in one PNG at ``path``."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    obs, res = observed[0, :, :, 0].numpy(), (reference["data"] - observed)[0, :, :, 0].numpy()
    nt, nrec = obs.shape
    for ax, gather, name in ((axes[0, 0], obs, "observed (true models)"),
                             (axes[0, 1], res, "residual (start - observed)")):
        clip = np.percentile(np.abs(obs), 99)
        ax.imshow(gather, cmap="gray", aspect="auto", vmin=-clip, vmax=clip, extent=(0, nrec, nt * dt, 0))
        ax.set(title=name, xlabel="receiver", ylabel="time (s)")
    for ax, key, name in ((axes[1, 0], "grad_vp", "gradient w.r.t. vp"), (axes[1, 1], "grad_z", "gradient w.r.t. z")):
        g = reference[key].numpy()
        clip = np.percentile(np.abs(g), 99)
        nz, nx = g.shape
        image = ax.imshow(g, cmap="seismic", aspect="auto", vmin=-clip, vmax=clip, extent=(0, nx * dh, nz * dh, 0))
        ax.set(title=name, xlabel="x (m)", ylabel="z (m)")
        fig.colorbar(image, ax=ax)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decimate", type=int, default=4, help="keep every k-th Marmousi cell (default 4: 50 m)")
    parser.add_argument("--nt", type=int, default=750, help="time steps (default 750)")
    parser.add_argument("--dt", type=float, default=0.004, help="time step in s (default 0.004)")
    parser.add_argument("--freq", type=float, default=1.7, help="Ricker peak frequency in Hz (default 1.7)")
    parser.add_argument("--chunks", type=int, default=100, help="chunk length in steps (default 100)")
    parser.add_argument("--count", type=int, default=8, help="states kept by Revolve (default 8)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--out", default="vrz_forward_compare", help="folder for the figure (created)")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    vp, z, vp_start, z_start = (torch.from_numpy(a).to(dtype) for a in marmousi_vrz(args.decimate))
    nz, nx = vp.shape
    dh, nt = MARMOUSI_DH * args.decimate, args.nt
    nrec = min(100, nx)
    receivers = np.stack([np.linspace(0, nx - 1, nrec).round().astype(np.int64), np.full(nrec, 4)], -1)[None]
    wavelet = torch.from_numpy(ricker(np.arange(nt) * args.dt - 1 / args.freq, args.freq)).to(dtype)
    shot = (wavelet, np.array([[nx // 2, 2]]), receivers)
    missing = compiled_missing()
    backends = ["eager"] + ([] if missing else ["c"])
    print(f"grid {nz} x {nx} at {dh:g} m, nt={nt}, dt={args.dt:g} s, {args.freq:g} Hz, {args.dtype}; back-ends: "
          + ", ".join(backends))
    if missing:
        print(f"{missing}: eager is compared with itself across strategies")
    memories = strategies(args.chunks, args.count)
    runs: dict[tuple[str, str], dict] = {}
    observed: dict[str, torch.Tensor] = {}
    for impl in backends:
        warm_up(impl, (nz, nx), dh, args.dt, shot, [vp_start, z_start], args.freq)
        for label, memory in memories.items():
            prop = PropTorch(AcousticVRZ(), (nz, nx), dh, args.dt, nt, impl=impl, memory=memory, pml_freq=args.freq)
            if impl not in observed:
                with torch.no_grad():
                    observed[impl] = prop(*shot, [vp, z])
            runs[impl, label] = run_case(prop, shot, observed[impl], [vp_start, z_start])
    rows = compare(runs, backends, list(memories))
    print(table(rows))
    os.makedirs(args.out, exist_ok=True)
    figure = os.path.join(args.out, "vrz_forward_compare.png")
    plot(observed[backends[0]], runs[backends[0], "full"], dh, args.dt,
         f"AcousticVRZ, Marmousi-II {nz} x {nx} at {dh:g} m, impl={backends[0]}, full storage", figure)
    print(f"figure: {figure}")
    return dict(rows=rows, figure=figure, backends=backends)


if __name__ == "__main__":
    main()
