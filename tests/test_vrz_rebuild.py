"""AcousticVRZ's boundary-saving rebuild: its fields are (u_n, u_{n-1}) whatever the snapshot holds, so the
gradients of both models match full storage's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sweep.equations import AcousticVRZ
from sweep.propagator.options import MemoryOptions
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker


def _gradients(memory: MemoryOptions) -> list[torch.Tensor]:
    nz, nx, nt = 16, 24, 50
    vp = torch.linspace(1800.0, 2600.0, nz)[:, None].expand(nz, nx).contiguous()
    z = vp * torch.linspace(1500.0, 2300.0, nz)[:, None]
    wavelet = torch.from_numpy(ricker(np.arange(nt) * 0.004 - 0.1, 10.0).astype(np.float32))
    receivers = np.stack([np.arange(nx), np.full(nx, 4)], axis=-1)[None]
    prop = PropTorch(AcousticVRZ(), (nz, nx), 20.0, 0.004, nt, abcn=8, space_order=4, impl="eager", memory=memory)
    models = [torch.nn.Parameter(vp.clone()), torch.nn.Parameter(z.clone())]
    prop(wavelet, np.array([[nx // 2, 2]]), receivers, models).pow(2).sum().backward()
    return [m.grad for m in models]


@pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")
def test_boundary_saving_matches_full_storage_for_both_models():
    full = _gradients(MemoryOptions("full"))
    for g, ref in zip(_gradients(MemoryOptions("boundary")), full):
        assert float((g - ref).norm() / ref.norm()) < 1e-5
