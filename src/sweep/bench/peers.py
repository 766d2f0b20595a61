"""Peer rows for the strategy comparison: Deepwave's own memory options on the seed shot's grid.

Deepwave 0.1.0 (``pip install -e ".[bench]"``) keeps the forward wavefield history that its velocity
gradient needs according to ``deepwave.scalar``'s

- ``storage_mode``: ``'device'`` (the default; memory of the model's device), ``'cpu'`` (host memory) or
  ``'disk'`` (files in ``storage_path``); ``'none'`` keeps nothing and gives no model gradient, so it
  has no row here;
- ``storage_compression``: ``True`` stores that history as 8-bit block max-abs quantisation (one scale
  per 8x8 block): lossy, it changes the gradient;
- ``checkpoint_segments``: splits the time axis into that many segments, each run under
  ``torch.utils.checkpoint`` (``deepwave.checkpointing.run_segments``), so only one segment's history is
  held and each segment's forward pass runs twice.

The rows use the same grid, space order (4), absorbing width (20 cells) and shot as sweep's rows
(:func:`sweep.bench.speed.deepwave_call` is the one copy of the Deepwave set-up). 'checkpoint(100)'
means segments of 100 time steps, as sweep's chunk checkpointing with ``chunks=100`` (nt=2000: 20
segments).

Deepwave's source amplitude scaling differs from sweep's, so its data cannot be compared with sweep's
observed data: :func:`run_deepwave` computes Deepwave's own observed data from the true model and its
gradients are to be compared with Deepwave's own full-storage ('deepwave · device') gradient, not sweep's.
"""
from __future__ import annotations

import math

import torch

from .speed import deepwave_available, deepwave_call

__all__ = ["deepwave_available", "deepwave_cases", "run_deepwave"]

CHECKPOINT_STEPS = 100

_observed_cache: dict[tuple, torch.Tensor] = {}


def deepwave_cases() -> list[tuple[str, dict]]:
    """(label, spec) pairs of Deepwave's memory options; each spec is a JSON-serialisable dict with
    ``storage_mode``, ``storage_compression`` and ``checkpoint_steps`` (time steps per checkpointed
    segment, or None). 'deepwave · device' is the reference the others are compared with."""
    cases = []
    for compression in (False, True):
        for mode in ("device", "cpu", "disk"):
            label = f"deepwave · {mode}" + (" · 8-bit" if compression else "")
            cases.append((label, dict(storage_mode=mode, storage_compression=compression, checkpoint_steps=None)))
    cases.append((f"deepwave · checkpoint({CHECKPOINT_STEPS})",
                  dict(storage_mode="device", storage_compression=False, checkpoint_steps=CHECKPOINT_STEPS)))
    return cases


def deepwave_options(spec: dict, nt: int, disk_dir: str) -> dict:
    """The ``deepwave.scalar`` keyword arguments of ``spec`` for ``nt`` time steps; disk files in ``disk_dir``."""
    options = dict(storage_mode=spec.get("storage_mode", "device"),
                   storage_compression=bool(spec.get("storage_compression", False)))
    if options["storage_mode"] == "disk":
        options["storage_path"] = disk_dir
    steps = spec.get("checkpoint_steps")
    if steps:
        options["checkpoint_segments"] = max(1, math.ceil(nt / steps))
    return options


def deepwave_observed(shot: dict, nt: int, device: torch.device) -> torch.Tensor:
    """Deepwave's data (1, NREC, nt) of the true model ``shot['vp']``, with full storage; cached per process."""
    vp = shot["vp"]
    key = (nt, float(shot["dh"]), tuple(vp.shape), float(vp.double().sum()), shot["sources"].tobytes(),
           shot["receivers"].tobytes(), shot["wavelet"].cpu().numpy().tobytes(), str(device))
    if key not in _observed_cache:
        with torch.no_grad():
            _observed_cache[key] = deepwave_call(shot, nt, vp.to(device)).detach()
    return _observed_cache[key]


def run_deepwave(spec: dict, shot: dict, vp_start: torch.Tensor, observed: torch.Tensor,
                 disk_dir: str) -> torch.Tensor:
    """Velocity gradient of one Deepwave forward + MSE backward ``(pred - observed).pow(2).mean()`` from
    ``vp_start`` (copied to a fresh leaf on its device) with the memory options of ``spec``.

    ``observed`` is sweep's observed data (nshots, nt, nrec, 1); only its ``nt`` is used: the misfit is
    against Deepwave's own data of ``shot['vp']`` (:func:`deepwave_observed`), since the two codes scale
    the source differently. Compare the result with the 'deepwave · device' gradient, not sweep's.
    Disk files go inside ``disk_dir``, which the caller creates and removes.
    """
    nt = observed.shape[1]
    if shot["wavelet"].shape[-1] != nt:
        raise ValueError(f"observed has {nt} time steps, the shot's wavelet {shot['wavelet'].shape[-1]}")
    target = deepwave_observed(shot, nt, vp_start.device)
    vp = vp_start.detach().clone().requires_grad_(True)
    pred = deepwave_call(shot, nt, vp, **deepwave_options(spec, nt, disk_dir))
    (pred - target).pow(2).mean().backward()
    return vp.grad
