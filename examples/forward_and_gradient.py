"""One Marmousi shot: forward modelling, an FWI misfit gradient, and what it cost.

Run ``python examples/forward_and_gradient.py --help`` for options; the defaults are small enough
for a laptop (under a second with impl="c"): the seed notebook's grid and record (141 x 681 at 25 m,
2000 steps) with a 3 Hz Ricker, 5.9 grid points per shortest wavelength in the 1028 m/s water. (The
notebook's 5 Hz gives 3.5, below the 5 under which sweep warns of numerical dispersion.)
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from sweep.datasets import MARMOUSI_DH, load_marmousi
from sweep.equations import Acoustic
from sweep.propagator.options import BoundaryOptions, CkptOptions, MemoryOptions
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nt", type=int, default=2000, help="time steps (default 2000, as the notebook)")
    parser.add_argument("--decimate", type=int, default=2, help="keep every k-th Marmousi cell (default 2, as the notebook)")
    parser.add_argument("--freq", type=float, default=3.0,
                        help="Ricker peak frequency in Hz (default 3: 5.9 grid points per wavelength at 25 m)")
    parser.add_argument("--impl", choices=["eager", "c"], default=None, help="back-end (default: best available)")
    parser.add_argument("--strategy", choices=["full", "chunk", "recursive", "boundary"], default="boundary",
                        help="memory strategy (default boundary saving)")
    parser.add_argument("--chunks", type=int, default=100, help="chunk length in steps for --strategy chunk")
    parser.add_argument("--count", type=int, default=8, help="states kept by --strategy recursive (Revolve)")
    parser.add_argument("--storage", choices=["device", "cpu", "disk"], default="device",
                        help="where boundary strips live for --strategy boundary")
    parser.add_argument("--storage-dtype", choices=["fp32", "fp16", "bf16", "int8"], default=None,
                        help="encoding of boundary strips (default: the model's dtype, lossless)")
    parser.add_argument("--no-backward", action="store_true", help="time the storing forward pass only")
    args = parser.parse_args()

    k = args.decimate
    dh, dt, nt = MARMOUSI_DH * k, 0.002, args.nt
    vp_true = torch.from_numpy(load_marmousi("true")[::k, ::k].copy())
    vp_init = torch.from_numpy(load_marmousi("smooth")[::k, ::k].copy())
    nz, nx = vp_true.shape
    sources = np.array([[nx // 2, 2]])
    receivers = np.stack([np.linspace(0, nx - 1, 100).astype(np.int64), np.full(100, 4)], axis=1)[None]
    wavelet = ricker(np.arange(nt, dtype=np.float32) * dt - 1 / args.freq, f=args.freq)  # delayed one period
    memory = {
        "full": lambda: MemoryOptions("full"),
        "chunk": lambda: MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=args.chunks)),
        "recursive": lambda: MemoryOptions("ckpt", ckpt=CkptOptions("recursive", count=args.count)),
        "boundary": lambda: MemoryOptions("boundary", boundary=BoundaryOptions(args.storage, args.storage_dtype)),
    }[args.strategy]()
    solver = PropTorch(Acoustic(), (nz, nx), dh, dt, nt, impl=args.impl, memory=memory)
    print(f"grid {nz} x {nx} at {dh} m, nt={nt}, impl={solver.impl}, strategy={solver.memory.strategy}")

    with torch.no_grad():
        observed = solver(wavelet, sources, receivers, [vp_true])
    vp = vp_init.clone().requires_grad_(True)
    t0 = time.perf_counter()
    predicted = solver(wavelet, sources, receivers, [vp])
    t_forward = time.perf_counter() - t0
    print(f"forward (storing for the gradient): {t_forward:.2f} s, data {tuple(predicted.shape)}")
    if not args.no_backward:
        loss = (predicted - observed).pow(2).mean()
        t0 = time.perf_counter()
        loss.backward()
        t_backward = time.perf_counter() - t0
        print(f"backward: {t_backward:.2f} s, misfit {loss.item():.3e}, ||grad||_2 {vp.grad.norm().item():.3e}")
    print(solver.memory_report())
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")


if __name__ == "__main__":
    main()
