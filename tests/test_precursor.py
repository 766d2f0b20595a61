"""Lossless precursor skipping (BoundaryOptions(skip_zero_strips=True)) and the strip segments it
works on: bit-identical gradients on both back-ends for lossless, block-scaled and ZFP strips, fewer
stored bytes and a lower tracked peak where an edge is far from the source."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sweep.propagator.grid import PaddedGrid
from test_boundary import IMPLS, boundary, model, solver, wavelet

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")

# One shot in the top-left corner: the bottom and right edges are reached last.
SOURCES = np.array([[[2, 2]]])
RECEIVERS = np.array([[[x, 3] for x in range(0, 30, 3)]])


@pytest.mark.parametrize("free_surface", [False, True])
@pytest.mark.parametrize("radius", [1, 2, 3, 4])
def test_segments_partition_the_strip(free_surface, radius):
    g = PaddedGrid((13, 17), 5, free_surface)
    segments, cells = g.strip_segments(radius), g.strip_cells(radius)
    assert list(segments) == [e for e, on in g.absorbing_faces.items() if on]
    flat = np.concatenate([s.ravel() for s in segments.values()])
    assert np.array_equal(np.sort(flat), np.arange(cells.size))  # each strip position exactly once
    nz, nx = g.shape
    z, x = np.divmod(cells, nx)
    assert (z[segments["bottom"][0]] == nz - 1).all() and (x[segments["right"][0]] == nx - 1).all()
    assert (x[segments["left"][radius - 1]] == radius - 1).all()
    assert np.all(np.diff(z[segments["left"][0]]) == 1)  # positions along the edge in order
    assert ("top" in segments) != free_surface


def run(impl, memory, nt=140):
    prop = solver(impl, memory, nt=nt)
    vp = model().requires_grad_()
    prop(wavelet(nt), SOURCES, RECEIVERS, [vp]).pow(2).sum().backward()
    return vp.grad, prop.memory_report()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("codec", [dict(storage_dtype=None), dict(storage_dtype="int8"), dict(storage_dtype="fp16"),
                                   dict(storage_dtype="zfp", zfp_tolerance=1e-3),
                                   dict(storage_dtype="zfp", zfp_rate=8, storage="cpu")],
                         ids=["lossless", "int8", "fp16", "zfp-tol", "zfp-rate"])
def test_skipping_is_bit_identical_and_smaller(impl, codec):
    storage = codec.pop("storage", "device")
    g0, rep0 = run(impl, boundary(storage, **codec))
    g1, rep1 = run(impl, boundary(storage, skip_zero_strips=True, **codec))
    assert torch.equal(g0, g1)
    assert rep1.stored_bytes < rep0.stored_bytes
    assert rep1.peak_memory_bytes < rep0.peak_memory_bytes
    notes = [n for n in rep1.notes if n.startswith("skip_zero_strips")]
    assert len(notes) == 4 and any("bottom edge" in n and "not stored" in n for n in notes)
    assert all(v == 0 for v in rep1.held_bytes.values())


def test_skipping_on_disk_and_dry_run_upper_bound(tmp_path):
    g0, rep0 = run("eager", boundary("device", "int8"))
    memory = boundary("disk", "int8", skip_zero_strips=True, disk_dir=tmp_path)
    g1, rep1 = run("eager", memory)
    assert torch.equal(g0, g1)
    assert rep1.bytes_by_location("stored")["disk"] < rep0.stored_bytes
    prop = solver("eager", memory)
    predicted = prop.estimate_memory(wavelet(), SOURCES, RECEIVERS, [model().requires_grad_()])
    assert predicted.stored_bytes >= rep1.stored_bytes  # the dry run assumes nothing is skipped
    assert any("dry run" in n for n in predicted.notes)


def test_default_keeps_exact_bytes():
    _, rep = run("eager", boundary("device", "int8"))
    assert [b.name for b in rep.buffers if b.role == "stored"] == ["strips.codes", "strips.scales", "fields"]
    assert not rep.notes or not any(n.startswith("skip_zero_strips") for n in rep.notes)
