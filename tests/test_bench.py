"""``sweep-bench`` end to end in quick mode (a small grid and record): each case in a fresh process,
results.json with every requested strategy, failed cases reported while the rest run, knob sweeps
with their plots, the output folder never overwritten, bad usage said in one line with exit status 2."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from sweep.bench.cli import UsageError, main, run
from sweep.propagator.c import library_available

pytestmark = pytest.mark.skipif(not library_available(), reason="the benchmark's quick cases use impl='c'")
QUICK = ["--quick"]


def _png(path) -> bool:
    with open(path, "rb") as fh:
        return os.path.getsize(path) > 1000 and fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_quick_comparison_with_a_failing_case(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    out = tmp_path / "out"
    result = run([*QUICK, "--strategies", "c · bdy gpu · int8", "c · bdy disk · fp32", "c · chunk-ckpt",
                  "c · auto 64 MiB", "--out", str(out), "--disk-dir", str(blocked / "sub")])
    rows = {r["label"]: r for r in result["rows"]}
    # the requested strategies plus their reference (full storage of the same back-end), in that order
    assert list(rows) == ["c · full", "c · bdy gpu · int8", "c · bdy disk · fp32", "c · chunk-ckpt", "c · auto 64 MiB"]
    for label in ("c · full", "c · bdy gpu · int8", "c · chunk-ckpt", "c · auto 64 MiB"):
        r = rows[label]  # the prediction made in the case's process equals what it then measured
        assert r["predicted"]["tracked_peak_mib"] == r["tracked_peak_mib"] and r["predicted"]["stored_mib"] == r["stored_mib"]
    assert rows["c · auto 64 MiB"]["strategy"] == "full" and "chose full storage" in rows["c · auto 64 MiB"]["notes"][0]
    failed = rows["c · bdy disk · fp32"]
    assert failed["status"] == "failed" and "disk_dir" in failed["error"]
    for label in ("c · full", "c · bdy gpu · int8", "c · chunk-ckpt"):
        r = rows[label]
        assert r["status"] == "ok", r
        numbers = [r["seconds"], r["peak_rss_mib"], r["tracked_peak_mib"], r["grad_rms"], r["err_whole"],
                   r["err_pointwise"], *r["stored_mib"].values()]
        numbers.append(r["err_below10"])  # the quick record reaches below row 10 (500 m)
        assert all(isinstance(x, float) and math.isfinite(x) for x in numbers), r
        assert r["load_before"] and r["load_after"]
    assert rows["c · full"]["err_whole"] == 0.0 and rows["c · chunk-ckpt"]["err_whole"] == 0.0
    assert 0.0 < rows["c · bdy gpu · int8"]["err_whole"] < 1e-2
    saved = json.loads((out / "results.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    assert saved["machine"]["cores"] == os.cpu_count() and saved["machine"]["torch"]
    assert _png(out / "strategies.png") and _png(out / "tradeoff.png")
    md = (out / "results.md").read_text()
    assert "c · bdy device · int8" in md and "![trade-off" in md  # the CPU's memory, not a GPU's
    assert "Quick run: a fast smoke check" in md and "7.4 points per wavelength" in md
    assert saved["setup"]["quick"] and saved["setup"]["points_per_wavelength"] > 5


def test_knob_sweeps_and_inert_knob(tmp_path):
    out = tmp_path / "out"
    result = run([*QUICK, "sweep", "chunks=30,60", "pinned=on,off", "--out", str(out)])
    chunks, pinned = result["sweeps"]
    assert chunks["knob"] == "chunks" and chunks["inert"] is None
    assert [r["value"] for r in chunks["rows"]] == [None, 30, 60]  # the reference first
    assert all(r["status"] == "ok" and r["err_whole"] == 0.0 for r in chunks["rows"])
    assert _png(out / "sweep-chunks.png")
    assert pinned["inert"] and "CUDA" in pinned["inert"]
    assert not (out / "sweep-pinned.png").exists()
    assert "Not plotted" in (out / "results.md").read_text()


def test_output_folder_never_overwritten(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="--force"):
        run([*QUICK, "--strategies", "c · full", "--out", str(tmp_path)])
    assert os.listdir(tmp_path) == ["keep.txt"]


@pytest.mark.parametrize("argv, match", [
    (["sweep", "chunkz=1,2"], "KNOB"), (["sweep", "chunks=a"], "chunks"), (["frobnicate"], "only command"),
    (["--strategies", "nothing-like-this"], "no strategy matches"), (["--freq", "-1"], "positive")])
def test_bad_arguments(argv, match, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*QUICK, *argv, "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("sweep-bench: ") and match in line
    assert not (tmp_path / "out").exists()


def test_module_entry_point_help():
    proc = subprocess.run([sys.executable, "-m", "sweep.bench", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--strategies" in proc.stdout and "sweep KNOB" in proc.stdout
