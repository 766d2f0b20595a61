"""``sweep-bench --equation vrz`` and ``vrz3d`` on tiny shots: both gradients (vp and z) against full storage
in results.json and results.md, the shots' density and stability, bad usage in one line with exit status 2."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sweep.bench.cli import main, run
from sweep.bench.shot import bench_shot, starting_model
from sweep.bench.vrz import WATER_DENSITY, gardner_density, with_marmousi_density

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")
# 36 x 171 at 100 m, 300 steps of a 5 Hz Ricker: the wave reaches the deeper rows in seconds per case.
TINY_2D = ["--equation", "vrz", "--quick", "--decimate", "8", "--freq", "5", "--nt", "300", "--threads", "1"]
TINY_3D = ["--equation", "vrz3d", "--grids", "small", "--size", "10", "--nt", "30", "--threads", "1"]
MODELS = ("", "_z")  # the keys' suffixes of the vp and the z gradient


def _errors(row: dict, key: str) -> list[float]:
    return [row[key + m] for m in MODELS]


def test_quick_vrz_reports_both_gradients(tmp_path):
    out = tmp_path / "out"
    result = run([*TINY_2D, "--strategies", "* · bdy gpu · fp32", "* · chunk-ckpt", "* · recursive-ckpt",
                  "--out", str(out)])
    setup = result["setup"]
    impl = setup["impl"]
    assert setup["equation"] == "vrz" and setup["models"] == ["vp", "z"] and setup["substep"] is None
    assert setup["dt"] < setup["max_stable_dt"]
    rows = {r["label"]: r for r in result["rows"]}
    assert list(rows) == [f"{impl} · {s}" for s in ("full", "bdy gpu · fp32", "chunk-ckpt", "recursive-ckpt")]
    for r in rows.values():
        assert r["status"] == "ok", r
        assert r["grad_rms"] > 0 and r["grad_rms_z"] > 0 and r["tracked_peak_mib"] > 0 and r["peak_rss_mib"] > 0
        assert r["predicted"]["tracked_peak_mib"] == r["tracked_peak_mib"]
    for label in ("full", "chunk-ckpt", "recursive-ckpt"):  # exact: bit-identical to full storage
        row = rows[f"{impl} · {label}"]
        for key in ("err_whole", "err_below10", "err_pointwise"):
            assert _errors(row, key) == [0.0, 0.0], (label, key)
    boundary = rows[f"{impl} · bdy gpu · fp32"]
    assert all(0.0 <= e < 5e-6 for e in _errors(boundary, "err_whole") + _errors(boundary, "err_pointwise"))
    saved = json.loads((out / "results.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    md = (out / "results.md").read_text()
    assert "vp err whole | vp err rows>=10 | vp pointwise | z err whole | z err rows>=10 | z pointwise" in md
    assert "Variable-density acoustic (AcousticVRZ" in md and "no sub-stepping" in md
    assert (out / "strategies.png").exists() and (out / "tradeoff.png").exists()


def test_vrz3d_tiny_reports_both_gradients(tmp_path):
    out = tmp_path / "out"
    result = run([*TINY_3D, "--strategies", "eager · bdy device · fp32", "eager · revolve*", "--out", str(out)])
    assert result["equation"] == "vrz3d"
    (grid,) = result["grids"]
    assert grid["setup"]["models"] == ["vp", "z"] and grid["setup"]["substep"] is None
    rows = {r["label"]: r for r in grid["rows"]}
    assert list(rows) == ["eager · full", "eager · bdy device · fp32", "eager · revolve(8)"]
    assert all(r["status"] == "ok" and r["grad_rms_z"] > 0 for r in rows.values())
    for label in ("eager · full", "eager · revolve(8)"):
        assert _errors(rows[label], "err_whole") == [0.0, 0.0], label
    assert all(0.0 <= e < 5e-6 for e in _errors(rows["eager · bdy device · fp32"], "err_whole"))
    md = (out / "results.md").read_text()
    assert md.startswith("# sweep-bench: 3-D variable-density acoustic (VRZ)") and "Gardner" in md
    assert "| z err whole |" in md and (out / "strategies-small.png").exists()


def test_densities():
    vp = np.array([[1500.0, 1500.0], [2000.0, 1500.0], [3000.0, 4500.0]], dtype=np.float32)
    rho = gardner_density(vp)
    assert rho[0, 0] == rho[0, 1] == rho[1, 1] == WATER_DENSITY  # the water column, per column from the top
    np.testing.assert_allclose(rho[1:, 0], 310.0 * vp[1:, 0] ** 0.25, rtol=1e-6)
    shot = with_marmousi_density(bench_shot(10, 4), starting_model(4), 4)
    density = (shot["z"] / shot["vp"]).numpy()
    assert shot["z"].shape == shot["vp"].shape == (71, 341) and shot["equation"] == "vrz"
    assert 1009.0 < density.min() and density.max() < 2627.0 and np.allclose(density[:9], 1010.0)
    assert shot["substep"] is None and 2.9e-3 < shot["max_stable_dt"]  # 2 ms is stable at 50 m
    fine = with_marmousi_density(bench_shot(10, 1), starting_model(1), 1)  # 12.5 m: 2 ms is not
    assert fine["max_stable_dt"] < 2e-3 and fine["substep"] == 2


@pytest.mark.parametrize("argv, match", [
    (["--equation", "vrz", "--peers"], "--peers"),
    (["--equation", "vrz", "sweep", "chunks=10"], "knob sweeps"),
    (["--equation", "vrz", "--grids", "small"], "vrz3d and acoustic3d only"),
    (["--impl", "eager"], "--impl applies to --equation vrz only"),
    (["--equation", "vrz3d", "--quick"], "--quick"),
    (["--equation", "vrz3d", "--impl", "eager"], "--impl"),
    (["--equation", "vrz3d", "--peers"], "Deepwave has no variable-density"),
    (["--equation", "vrz", "--impl", "fortran"], "invalid choice")])
def test_bad_vrz_usage_is_one_line_exit_2(argv, match, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert match in err and not (tmp_path / "out").exists()
    if match != "invalid choice":  # argparse's own says its usage first
        (line,) = err.splitlines()
        assert line.startswith("sweep-bench: ")
