"""examples/vrz_forward_compare.py on a tiny setting: its table's numbers and its one figure.

Measured (Marmousi-II decimated 8 times, 36 x 171 at 100 m, 120 steps, float32, eager): synthetics identical
under every strategy; chunk and Revolve gradients bit-identical to full storage; boundary saving's
5e-7 (vp) and 2e-7 (z) relative L2 (float32 rebuild rounding; 2e-6 and 3e-6 at the example's default size).
"""
from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vrz_forward_compare.py"
TINY = ["--decimate", "8", "--nt", "120", "--dt", "0.01", "--freq", "2", "--chunks", "30", "--count", "4"]


@pytest.fixture(scope="module")
def example() -> dict:
    return runpy.run_path(str(EXAMPLE))


@pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")
def test_tiny_run(example, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    result = example["main"]([*TINY, "--out", str(tmp_path / "figures")])
    out = capsys.readouterr().out
    assert out.startswith("grid 36 x 171 at 100 m, nt=120")
    backends = ["eager"] + ([] if example["compiled_missing"]() else ["c"])
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
    for row in (r for r in result["rows"] if r["kind"] != "vs full"):  # c against eager, where c has VRZ
        assert max(row["data"], row["grad_vp"], row["grad_z"]) < 1e-4, row
    assert Path(result["figure"]).stat().st_size > 10_000
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "figures", "figures/vrz_forward_compare.png"]


def test_rows_between_back_ends(example):
    """With c kernels for VRZ (not merged yet), each strategy is also compared between the back-ends."""
    import torch

    timing = dict(forward_s=1.0, backward_s=2.0, stored_bytes=2**20, peak_bytes=2**21)
    ones = torch.ones(4)

    def run(scale: float) -> dict:
        return dict(data=ones * scale, grad_vp=ones * scale, grad_z=ones, **timing)

    runs = {("eager", "full"): run(1.0), ("eager", "chunk"): run(1.0),
            ("c", "full"): run(1.5), ("c", "chunk"): run(1.5)}
    rows = example["compare"](runs, ["eager", "c"], ["full", "chunk"])
    assert [(r["kind"], r["impl"], r["strategy"]) for r in rows] == [
        ("vs full", "eager", "full"), ("vs full", "eager", "chunk"), ("vs full", "c", "full"),
        ("vs full", "c", "chunk"), ("c vs eager", "c", "full"), ("c vs eager", "c", "chunk")]
    assert rows[4]["data"] == rows[4]["grad_vp"] == 0.5 and rows[4]["grad_z"] == 0.0
    lines = example["table"](rows).splitlines()
    assert len(lines) == 7 and "c vs eager" in lines[5] and "1.00" in lines[1]
