"""Deepwave 0.1.0's rows for the 3-D comparison: ``deepwave.scalar`` with a 3-D model and each of its storage
options (:func:`sweep.bench.peers.deepwave_cases`: device, cpu, disk, each with and without 8-bit
compression, and ``checkpoint_segments`` of 100 steps), on the same grid, space order, absorbing width,
time step and shot as sweep's rows (:func:`sweep.bench.shot3d.deepwave_call3d`).

Deepwave has no memory guard, so each case's process first asks ``deepwave.estimate_memory`` (propagator
'scalar', the model gradient only, ``n_segments`` for checkpointing) and runs only where that fits:

- memory (host RAM on a CPU, where 'device' and 'cpu' are the same RAM; the device's and the host's
  apart on CUDA): the estimate times a headroom, :data:`HEADROOM_EXACT` for uncompressed storage in
  memory, :data:`HEADROOM_SEGMENTS` with ``checkpoint_segments`` and :data:`HEADROOM_OTHER` otherwise,
  since Deepwave documents its estimate as a lower bound, 4-20 % under the measured peak for uncompressed
  device storage and up to about 70 % under with compression, cpu or disk storage; with checkpointing
  the measured peak was 2.17 times the estimate (1307 against 603 MiB on the 64^3 bench shot, whose
  device storage measured 1.03 times and 8-bit storage 1.13 times theirs); against what
  :mod:`sweep.memory.available` finds (what sweep's guard reads);
- disk (``storage_mode='disk'``): the stored history (Deepwave costs disk storage as its device storage)
  against **half** the free space of the disk directory (``shutil.disk_usage``), so that it never
  writes more than half the free disk.

Where it does not fit the row says "does not fit" with the predicted bytes. Deepwave's source scaling
differs from sweep's: its rows' misfit is against Deepwave's own data of the true model (computed once
by the parent, ``setup['dw_observed']``), and their gradient differences are from 'deepwave · device'.
"""
from __future__ import annotations

import shutil
import tempfile

import torch

from ..memory import available
from .child import MIB, does_not_fit
from .peers import deepwave_options
from .shot3d import ABCN3, ORDER3, deepwave_call3d

HEADROOM_EXACT, HEADROOM_OTHER, HEADROOM_SEGMENTS = 1.25, 1.75, 2.5
DISK_SHARE = 0.5


def _estimate(spec: dict, setup: dict, device: torch.device) -> dict:
    import deepwave

    nt = setup["nt"]
    options = deepwave_options(spec, nt, "")
    return deepwave.estimate_memory("scalar", tuple(setup["shot"]["vp"].shape), nt, 1, torch.float32,
                                    accuracy=ORDER3, pml_width=ABCN3, storage_mode=options["storage_mode"],
                                    storage_compression=options["storage_compression"], models_requiring_grad=["v"],
                                    device=str(device), n_segments=options.get("checkpoint_segments"))


def peer_needs(spec: dict, setup: dict, device: torch.device) -> tuple[dict[str, int], dict]:
    """(bytes needed by place with the headroom applied, the prediction for the row) of Deepwave case ``spec``."""
    est = _estimate(spec, setup, device)
    mode = spec.get("storage_mode", "device")
    history = est["backward_storage_bytes"]
    working = est["forward_wavefields_bytes"] + est["gradient_scratch_bytes"] + est["auxiliary_state_bytes"]
    exact = mode in ("device", "cpu") and not spec.get("storage_compression")
    headroom = HEADROOM_SEGMENTS if spec.get("checkpoint_steps") else HEADROOM_EXACT if exact else HEADROOM_OTHER
    where = {"device": "device", "cpu": "host", "disk": "disk"}[mode]
    stored = {where: history}
    if device.type == "cuda":
        needed = {"device": working + stored.get("device", 0), "host": stored.get("host", 0)}
    else:  # one RAM: the stored history in 'device' or 'cpu' storage and the working set together
        needed = {"host": working + stored.get("device", 0) + stored.get("host", 0)}
    needed = {p: int(n * headroom) for p, n in needed.items() if n}
    if "disk" in stored:
        needed["disk"] = history
    predicted = dict(stored_mib={k: v / MIB for k, v in stored.items()},
                     tracked_peak_mib=(history + est["auxiliary_state_bytes"]) / MIB,
                     process_mib=est["total_bytes_lower_bound"] / MIB, headroom=headroom,
                     source="deepwave.estimate_memory (a lower bound, by Deepwave's documentation)")
    return needed, predicted


def peer_prediction(case: dict, setup: dict, device: torch.device) -> dict:
    """The row's prediction (Deepwave's estimate, as :func:`peer_needs` gives it)."""
    return peer_needs(case["peer"], setup, device)[1]


def check_peer3d(case: dict, setup: dict, device: torch.device) -> dict | None:
    """None when the case fits; else its row's "does not fit" measurements (nothing was run)."""
    needed, predicted = peer_needs(case["peer"], setup, device)
    have: dict[str, int] = {}
    host = available.host_memory()
    if host is not None:
        have["host"] = host.nbytes
    if device.type == "cuda":
        have["device"] = available.device_memory(device).nbytes
    if "disk" in needed:
        have["disk"] = int(shutil.disk_usage(case["disk_dir"] or tempfile.gettempdir()).free * DISK_SHARE)
    short = [p for p, n in needed.items() if p in have and n > have[p]]
    if not short:
        return None
    why = (f"Deepwave's estimate x {predicted['headroom']:g} headroom against what is available"
           + ("; disk: at most half the free space" if "disk" in needed else ""))
    return does_not_fit(predicted, needed, have, why)


def run_deepwave3d(spec: dict, setup: dict, device: torch.device, disk_dir: str) -> torch.Tensor:
    """Velocity gradient of one Deepwave forward + MSE backward from ``setup['vp_start']`` against Deepwave's
    own data of the true model (``setup['dw_observed']``), with the storage options of ``spec``."""
    nt = setup["nt"]
    vp = setup["vp_start"].to(device).clone().requires_grad_(True)
    pred = deepwave_call3d(setup["shot"], nt, vp, **deepwave_options(spec, nt, disk_dir))
    (pred - setup["dw_observed"].to(device)).pow(2).mean().backward()
    return vp.grad


def deepwave_observed3d(shot: dict, nt: int, device: torch.device) -> torch.Tensor:
    """Deepwave's data (1, nrec, nt) of the true model, without gradient (nothing stored)."""
    with torch.no_grad():
        return deepwave_call3d(shot, nt, shot["vp"].to(device)).detach().cpu()
