"""A tiny inversion problem shared by the FWI tests; run under torchrun it writes rank 0's gradient.

    python -m torch.distributed.run --standalone --nproc-per-node=2 tests/fwi_tiny.py OUT.pt
"""
import sys

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from sweep.equations import Acoustic
from sweep.fwi import Inversion, ShotBatches, ShotGroup, Survey
from sweep.propagator.options import MemoryOptions
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker

NZ, NX, DH, DT, NT, NSHOTS = 16, 24, 10.0, 0.001, 100, 4


def tiny_problem(impl: str = "c", dtype=torch.float64, memory: MemoryOptions | None = None):
    """(propagator, survey, true, start): a layered model with a bump, 4 shots, one fixed spread."""
    z, x = np.meshgrid(np.arange(NZ), np.arange(NX), indexing="ij")
    true_np = np.where(z < 5, 1500.0, 1800.0 + 20.0 * z) + 150.0 * np.exp(-((z - 10) ** 2 + (x - 12) ** 2) / 8.0)
    true = torch.tensor(true_np, dtype=dtype)
    start = torch.tensor(np.where(z < 5, 1500.0, gaussian_filter(true_np, 3.0)), dtype=dtype)
    prop = PropTorch(Acoustic(), (NZ, NX), DH, DT, NT, abcn=6, impl=impl, memory=memory or MemoryOptions("full"),
                     pml_freq=25.0, pml_vmax=2500.0)
    sources = np.array([[[x, 1]] for x in (2, 9, 15, 21)])
    receivers = np.broadcast_to(np.array([[x, 2] for x in range(NX)]), (NSHOTS, NX, 2)).copy()
    wavelet = ricker(torch.arange(NT, dtype=dtype) * DT - 0.03, 30.0)
    with torch.no_grad():
        observed = prop(wavelet, sources, receivers, [true])
    return prop, Survey(sources, receivers, wavelet, observed), true, start


def main(out: str) -> None:
    group = ShotGroup()
    prop, survey, _, start = tiny_problem()
    inversion = Inversion(prop, survey, start, batches=ShotBatches(NSHOTS, 1, redraw=True, seed=3), group=group)
    loss, grad = inversion.gradient(start, iteration=2)
    if group.is_main:
        torch.save({"loss": loss, "grad": grad, "world": group.world, "threads": group.threads}, out)
    group.close()


if __name__ == "__main__":
    main(sys.argv[1])
