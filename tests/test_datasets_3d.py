"""The generated 3-D model ``sweep.datasets.layered_3d`` and 3-D use of ``smooth_model``."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import sweep.datasets
from sweep.datasets import layered_3d, smooth_model, water_mask

model3d = importlib.import_module("sweep.datasets.model3d")

SHAPE, DH = (24, 20, 28), 64.0      # a 1.5 km x 1.3 km x 1.8 km box, coarse enough to be fast


@pytest.fixture(scope="module")
def true_vp() -> np.ndarray:
    return layered_3d(SHAPE, DH, "true")


@pytest.fixture(scope="module")
def smooth_vp() -> np.ndarray:
    return layered_3d(SHAPE, DH, "smooth")


def roughness(a: np.ndarray) -> float:
    """Sum of absolute second differences along every axis. (Total variation is a poor measure here:
    smoothing a monotone step, like velocity increasing with depth, leaves its variation unchanged.)"""
    a = a.astype(np.float64)
    return float(sum(np.abs(np.diff(a, 2, axis=k)).sum() for k in range(a.ndim)))


def largest_jump(a: np.ndarray) -> float:
    a = a.astype(np.float64)
    return float(max(np.abs(np.diff(a, axis=k)).max() for k in range(a.ndim)))


def relative_l2(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_exported():
    assert "layered_3d" in sweep.datasets.__all__
    assert sweep.datasets.layered_3d is model3d.layered_3d


def test_shape_and_dtype(true_vp, smooth_vp):
    for vp in (true_vp, smooth_vp):
        assert vp.shape == SHAPE and vp.dtype == np.float32
        assert vp.flags["C_CONTIGUOUS"] and np.all(np.isfinite(vp))
    default = layered_3d()
    assert default.shape == (64, 64, 64) and default.dtype == np.float32


def test_velocity_range(true_vp, smooth_vp):
    assert true_vp.min() == 1500.0 and true_vp.max() == 4500.0
    assert smooth_vp.min() >= 1500.0 and smooth_vp.max() <= 4500.0
    assert set(np.unique(true_vp)) <= {1500.0, *model3d.SEDIMENT_VELOCITIES, model3d.REFLECTOR_VELOCITY,
                                       model3d.SALT_VELOCITY}


def test_deterministic_and_new_arrays(true_vp, smooth_vp):
    again = layered_3d(SHAPE, DH, "true")
    np.testing.assert_array_equal(again, true_vp)
    np.testing.assert_array_equal(layered_3d(SHAPE, DH, "smooth"), smooth_vp)
    again[:] = 0.0
    np.testing.assert_array_equal(layered_3d(SHAPE, DH), true_vp)


def test_water_layer(true_vp, smooth_vp):
    nz = SHAPE[0]
    mask = water_mask(true_vp)
    assert mask.shape == SHAPE
    depth = mask.sum(axis=0) / nz                     # water depth per (y, x) column, fraction of the model
    assert depth.min() >= 0.04 and depth.max() <= 0.11
    assert np.all(true_vp[mask] == 1500.0) and np.all(true_vp[~mask] >= 1800.0)
    np.testing.assert_array_equal(smooth_vp[mask], 1500.0)  # the water is not smoothed


def test_layers_get_faster_with_depth(true_vp):
    # Along any column away from the salt, leaving out the thin dipping bed, velocity never decreases.
    for iy in range(SHAPE[1]):
        for ix in range(SHAPE[2]):
            column = true_vp[:, iy, ix]
            if (column == model3d.SALT_VELOCITY).any():
                continue
            sediments = column[column != model3d.REFLECTOR_VELOCITY]
            assert np.all(np.diff(sediments) >= 0), (iy, ix)
    # ... and every sediment layer occurs.
    assert set(model3d.SEDIMENT_VELOCITIES) <= set(np.unique(true_vp))
    assert (true_vp == model3d.REFLECTOR_VELOCITY).any()


def test_smooth_model(true_vp, smooth_vp):
    assert not np.array_equal(smooth_vp, true_vp)
    assert abs(smooth_vp.mean() - true_vp.mean()) < 0.05 * true_vp.mean()
    below = int(np.ceil(0.11 * SHAPE[0]))          # under the (unsmoothed) water
    assert roughness(smooth_vp[below:]) < 0.1 * roughness(true_vp[below:])
    assert largest_jump(smooth_vp[below:]) < 0.2 * largest_jump(true_vp[below:])
    # The same as calling the 2-D/3-D smoother on the true model.
    np.testing.assert_array_equal(smooth_model(true_vp, DH), smooth_vp)


def test_smooth_model_3d_agrees_with_2d():
    # A model invariant along y smooths, slice by slice, exactly as the 2-D model does.
    section = layered_3d((24, 8, 28), DH)[:, 3, :]
    cube = np.repeat(section[:, None, :], 6, axis=1)
    expected = smooth_model(section, DH)
    got = smooth_model(cube, DH)
    assert got.shape == cube.shape
    for iy in range(cube.shape[1]):
        np.testing.assert_allclose(got[:, iy, :], expected, rtol=1e-6)
    np.testing.assert_array_equal(water_mask(cube)[:, 2, :], water_mask(section))


@pytest.mark.parametrize("shape", [(16, 16, 16), (16, 12, 20)])
def test_same_geology_at_two_resolutions(shape):
    coarse_shape, dh = shape, 100.0
    fine_shape = tuple(2 * n for n in shape)        # the same box at half the spacing
    coarse, fine = layered_3d(coarse_shape, dh), layered_3d(fine_shape, dh / 2)
    # The coarse grid's points are every other fine point: the same velocities there ...
    assert relative_l2(fine[::2, ::2, ::2], coarse) < 1e-6
    # ... and the fine model averaged onto the coarse cells is close.
    nz, ny, nx = coarse_shape
    blocks = fine.reshape(nz, 2, ny, 2, nx, 2).mean(axis=(1, 3, 5))
    assert relative_l2(blocks, coarse) < 0.08
    smooth_coarse, smooth_fine = layered_3d(coarse_shape, dh, "smooth"), layered_3d(fine_shape, dh / 2, "smooth")
    assert relative_l2(smooth_fine[::2, ::2, ::2], smooth_coarse) < 0.02


def test_salt_body(true_vp):
    nz = SHAPE[0]
    salt = true_vp == model3d.SALT_VELOCITY
    assert salt[nz // 2:].any() and not salt[: nz // 2].any()   # in the lower half only
    assert true_vp[nz // 2:].max() == 4500.0
    assert 0.005 < salt.mean() < 0.1                               # a body, not a speck nor a layer
    iz, iy, ix = np.nonzero(salt)
    assert np.ptp(iz) >= 3 and np.ptp(iy) >= 3 and np.ptp(ix) >= 3   # extends along every axis


def interface_depth(vp: np.ndarray, velocity: float) -> np.ndarray:
    """Index of the first cell at or above ``velocity`` down each column, (ny, nx)."""
    return np.argmax(vp >= velocity, axis=0)


def test_fault_offsets_layers():
    nz, ny, nx = 40, 8, 40
    vp = layered_3d((nz, ny, nx), 40.0)
    throw_cells = model3d.FAULT_THROW * nz                 # 4 cells
    for velocity in model3d.SEDIMENT_VELOCITIES[1:3]:
        depth = interface_depth(vp, velocity)
        steps = np.diff(depth, axis=1)                      # along x, for every y
        for iy in range(ny):
            # The interface follows the dipping fault plane over a few columns: find the 4-column window
            # where it drops most.
            drops = np.convolve(steps[iy], np.ones(4), mode="valid")
            start = int(np.argmax(drops))
            # It drops down to +x (the hanging wall went down) by about the throw ...
            assert drops[start] >= throw_cells - 1, (velocity, iy, steps[iy])
            # ... and elsewhere only dips gently.
            others = np.delete(steps[iy], np.arange(start, start + 4))
            assert np.abs(others).max() <= 1, (velocity, iy, steps[iy])
            # The drop is where the fault plane meets the interface, in the middle of the model.
            assert 0.35 * nx < start + 2 < 0.7 * nx, (velocity, iy, steps[iy])


@pytest.mark.parametrize("shape", [(64, 64), (64, 64, 64, 64), (7, 64, 64), (8, 8, 0), (-8, 8, 8), (8.0, 8, 8),
                                   (True, 8, 8), "abc", 64, None])
def test_bad_shape(shape):
    with pytest.raises(ValueError, match="shape"):
        layered_3d(shape)


@pytest.mark.parametrize("dh", [0.0, -25.0, float("nan"), float("inf"), "25", None, True])
def test_bad_dh(dh):
    with pytest.raises(ValueError, match="dh"):
        layered_3d((8, 8, 8), dh)


@pytest.mark.parametrize("kind", ["rough", "True", "", None, 1])
def test_bad_kind(kind):
    with pytest.raises(ValueError, match="kind"):
        layered_3d((8, 8, 8), 25.0, kind)


def test_numpy_integer_shape():
    vp = layered_3d(tuple(np.int64(n) for n in (8, 9, 10)), np.float32(50.0))
    assert vp.shape == (8, 9, 10)


def test_plot(tmp_path):
    from sweep.datasets.model3d_plot import main

    out = main([str(tmp_path / "sub" / "m.png"), "--shape", "16", "20", "24", "--dh", "100"])
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 0 < len(data) < 200_000
