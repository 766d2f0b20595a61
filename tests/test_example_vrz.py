"""examples/vrz_forward_compare.py on a tiny setting: its table's numbers and its one figure.

Measured (Marmousi-II decimated 8 times, 36 x 171 at 100 m, 120 steps, float32, eager): synthetics identical
under every strategy; chunk and Revolve gradients bit-identical to full storage; boundary saving's
5e-7 (vp) and 2e-7 (z) relative L2 (float32 rebuild rounding; 2e-6 and 3e-6 at the example's default size).
"""
from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from sweep.propagator.registry import impls

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vrz_forward_compare.py"
TINY = ["--decimate", "8", "--nt", "120", "--dt", "0.01", "--freq", "2", "--chunks", "30", "--count", "4"]


@pytest.fixture(scope="module")
def example_main():
    return runpy.run_path(str(EXAMPLE))["main"]


@pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")
def test_tiny_run(example_main, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    result = example_main([*TINY, "--out", str(tmp_path / "figures")])
    out = capsys.readouterr().out
    assert out.startswith("grid 36 x 171 at 100 m, nt=120")
    backends = ["eager"] + (["c"] if "c" in impls("acoustic_vrz", 2) else [])
    assert result["backends"] == backends
    assert ("eager is compared with itself" in out) == (backends == ["eager"])
    rows = [r for r in result["rows"] if r["kind"] == "vs full"]
    assert [(r["impl"], r["strategy"]) for r in rows] == [
        (impl, label) for impl in backends for label in ("full", "boundary", "chunk(30)", "revolve(4)")]
    for row in rows:
        assert row["data"] == 0.0, row  # the forward is the same whatever is kept for the backward
        if row["strategy"] == "boundary":
            assert 0.0 <= row["grad_vp"] < 1e-4 and 0.0 <= row["grad_z"] < 1e-4, row
        else:  # checkpointing replays the same steps: bit-identical
            assert row["grad_vp"] == 0.0 and row["grad_z"] == 0.0, row
        assert row["forward_s"] > 0 and row["backward_s"] > 0 and row["peak_bytes"] > 0
    full, boundary = rows[0], rows[1]
    assert boundary["stored_bytes"] < full["stored_bytes"] / 4  # strips, not every snapshot
    for row in (r for r in result["rows"] if r["kind"] != "vs full"):  # c against eager, once c has VRZ
        assert max(row["data"], row["grad_vp"], row["grad_z"]) < 1e-4, row
    assert Path(result["figure"]).stat().st_size > 10_000
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "figures", "figures/vrz_forward_compare.png"]
