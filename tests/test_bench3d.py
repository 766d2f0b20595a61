"""``sweep-bench --equation acoustic3d`` on tiny grids: the CLI, a run's JSON rows and figures, a full-storage
row the memory guard refuses ("does not fit" with its prediction), Deepwave's rows skipped without Deepwave
and refused where its estimate does not fit, bad usage in one line with exit status 2."""
from __future__ import annotations

import json
import os
import shutil
from types import SimpleNamespace

import pytest
import torch

from sweep.bench import child, runner
from sweep.bench.bench3d import grid_cases, impl_missing, write_setup3d
from sweep.bench.cases import full_storage_case
from sweep.bench.cli import _parser, main, run
from sweep.bench.plots import plot_strategies
from sweep.bench.report import table
from sweep.bench.shot3d import shot3d
from sweep.bench.tradeoff import plot_tradeoff
from sweep.memory import available
from sweep.memory.available import Available

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")
TINY = ["--equation", "acoustic3d", "--grids", "small", "--size", "10", "--nt", "30", "--threads", "1"]


def _png(path) -> bool:
    with open(path, "rb") as fh:
        return os.path.getsize(path) > 1000 and fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_cli_parses_equation():
    args = _parser().parse_args(["--equation", "acoustic3d", "--grids", "small", "--size", "12"])
    assert (args.equation, args.grids, args.size) == ("acoustic3d", "small", 12)
    assert _parser().parse_args([]).equation == "acoustic"  # the 2-D comparison by default


def test_tiny_run_writes_rows_json_and_figures(tmp_path):
    out = tmp_path / "out"
    result = run([*TINY, "--strategies", "eager · bdy device · int8", "c · bdy device · fp16", "--out", str(out)])
    (grid,) = result["grids"]
    assert grid["name"] == "small" and grid["setup"]["shape"] == [10, 10, 10] and grid["setup"]["nt"] == 30
    rows = {r["label"]: r for r in grid["rows"]}
    # each back-end's full storage in front: the reference of its other rows
    assert list(rows) == ["c · full", "c · bdy device · fp16", "eager · full", "eager · bdy device · int8"]
    c_ok = impl_missing("c") is None
    for label in ("c · full", "c · bdy device · fp16"):
        assert rows[label]["status"] == ("ok" if c_ok else "skipped"), rows[label]
    for label in ("eager · full", "eager · bdy device · int8") + (("c · bdy device · fp16",) if c_ok else ()):
        r = rows[label]
        assert r["status"] == "ok" and r["seconds"] > 0 and r["peak_rss_mib"] is not None
        assert r["predicted"]["tracked_peak_mib"] == r["tracked_peak_mib"] and r["stored_mib"]["device"] > 0
    assert rows["eager · full"]["err_whole"] == 0.0
    assert 0.0 < rows["eager · bdy device · int8"]["err_whole"] < 0.1
    assert result["wall_seconds"] > 0 and grid["wall_seconds"] > 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["equation"] == "acoustic3d" and saved["grids"][0]["rows"] == json.loads(json.dumps(grid["rows"]))
    assert _png(out / "strategies-small.png") and _png(out / "tradeoff-small.png")
    md = (out / "results.md").read_text()
    assert "## small" in md and "Wall time of the whole bench" in md and "tradeoff-small.png" in md


def _tiny_setup(tmp_path, threads: int = 1) -> str:
    shot, vp_start = shot3d(10, 30, 4)
    path = str(tmp_path / "setup.pt")
    write_setup3d(path, shot, vp_start, dict(device="cpu", nt=30, threads=threads), peers=False)
    return path


def _child(tmp_path, setup: str, case: dict) -> dict:
    case_path, out, grad = (str(tmp_path / name) for name in ("case.json", "out.json", "grad.pt"))
    with open(case_path, "w") as fh:
        json.dump(case, fh)
    threads = torch.get_num_threads()
    try:
        child.main([setup, case_path, out, grad])  # in this process, so that the monkeypatch reaches it
    finally:
        torch.set_num_threads(threads)
    with open(out) as fh:
        return json.load(fh)


def test_full_row_does_not_fit_when_the_guard_refuses_it(tmp_path, monkeypatch):
    setup = _tiny_setup(tmp_path)
    case = full_storage_case("eager")
    fits = _child(tmp_path, setup, case)
    assert fits.get("status", "ok") == "ok"
    need = int(fits["predicted"]["process_mib"] * 2**20)
    # less than the full-storage call needs, more than the child's 2-step warm-up without gradient
    monkeypatch.setattr(available, "host_memory", lambda root="/": Available(need - 1, "fake MemAvailable"))
    refused = _child(tmp_path, setup, case)
    assert refused["status"] == "does not fit" and refused["seconds"] is None
    assert refused["needed_mib"]["host"] * 2**20 == pytest.approx(need, abs=2)
    assert "memory_guard=False" in refused["guard"]
    assert refused["available_mib"]["host"] * 2**20 == need - 1
    assert refused["predicted"]["tracked_peak_mib"] == fits["predicted"]["tracked_peak_mib"]
    assert refused["error"].startswith("does not fit: predicted host")
    row = dict(status="ok", error=None)
    row.update(refused)
    rows = runner._rows([case], [[row]], {})
    assert rows[0]["status"] == "does not fit" and rows[0]["label"] == "eager · full"
    line = table(rows).splitlines()[1]
    assert line.startswith("eager · full") and "does not fit: predicted host" in line
    ok = dict(fits, label="eager · bdy device · fp32", contender="sweep", status="ok", err_whole=1e-6,
              err_below10=None, err_pointwise=None, value=None)
    part = dict(setup=dict(shape=[10, 10, 10], nt=30, device="cpu", peak_kind="rss"), rows=rows + [ok])
    assert _png(plot_strategies(part, str(tmp_path / "s.png"))) and _png(plot_tradeoff(part, str(tmp_path / "t.png")))


def test_peers_skipped_with_a_reason_without_deepwave(tmp_path, monkeypatch):
    monkeypatch.setattr("sweep.bench.speed.deepwave_available", lambda: False)
    (case,) = grid_cases("small", ["deepwave*"], True, str(tmp_path), "cpu")
    assert case["contender"] == "deepwave" and "not installed" in case["skip"]
    result = run([*TINY, "--peers", "--strategies", "deepwave*", "--out", str(tmp_path / "out")])
    (row,) = result["grids"][0]["rows"]
    assert row["status"] == "skipped" and "Deepwave is not installed" in row["error"]
    assert "skipped: Deepwave is not installed" in (tmp_path / "out" / "results.md").read_text()


def test_deepwave_refused_where_its_estimate_does_not_fit(tmp_path, monkeypatch):
    pytest.importorskip("deepwave", reason="Deepwave is the optional bench extra")
    from sweep.bench.peers import deepwave_cases
    from sweep.bench.peers3d import check_peer3d

    shot, vp_start = shot3d(10, 30, 4)
    setup = dict(shot=shot, vp_start=vp_start, nt=30)
    cases = {label: dict(label=label, contender="deepwave", peer=spec, disk_dir=str(tmp_path))
             for label, spec in deepwave_cases()}
    cpu = torch.device("cpu")
    assert check_peer3d(cases["deepwave · device"], setup, cpu) is None
    monkeypatch.setattr(available, "host_memory", lambda root="/": Available(1000, "fake MemAvailable"))
    refused = check_peer3d(cases["deepwave · device"], setup, cpu)
    assert refused["status"] == "does not fit" and refused["needed_mib"]["host"] > 1000 / 2**20
    assert refused["predicted"]["stored_mib"]["device"] > 0 and "headroom" in refused["error"]
    monkeypatch.setattr(available, "host_memory", lambda root="/": Available(2**40, "fake MemAvailable"))
    history = refused["predicted"]["stored_mib"]["device"] * 2**20
    free = SimpleNamespace(total=2**40, used=0, free=int(1.5 * history))  # the disk mode may use half of it
    monkeypatch.setattr(shutil, "disk_usage", lambda path: free)
    disk = check_peer3d(cases["deepwave · disk"], setup, cpu)
    assert disk["status"] == "does not fit" and "half the free space" in disk["error"]
    assert disk["needed_mib"]["disk"] == pytest.approx(history / 2**20)


@pytest.mark.parametrize("argv, match", [
    (["--equation", "elastic9"], "--equation must be one of acoustic, acoustic3d"),
    (["--equation", "acoustic3d", "--grids", "huge"], "--grids"),
    (["--equation", "acoustic3d", "--quick"], "--quick"),
    (["--grids", "small"], "acoustic3d only")])
def test_bad_equation_usage_is_one_line_exit_2(argv, match, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("sweep-bench: ") and match in line
    assert not (tmp_path / "out").exists()


def test_showcase_predicts_and_runs_a_shrunk_shot(capsys):
    from sweep.bench.showcase3d import main as showcase

    result = showcase(["--scale", "0.03", "--nt", "20", "--run", "--impl", "eager", "--no-observed", "--threads", "1"])
    names = [r["name"] for r in result["predictions"]]
    assert names[:2] == ["auto", "full"] and "bdy-zfp" in names and "bdy-disk-fp32" in names
    assert all(r["fits"] for r in result["predictions"])  # a 12 x 11 x 11 shot fits anywhere
    run = result["run"]
    assert run["status"] == "ok" and run["strategy"] == "full" and run["seconds"] > 0 and run["stored"]["device"] > 0
    out = capsys.readouterr().out
    assert "strategy='auto' chose full storage" in out and "ran full: gradient" in out


def test_speed_3d_table_flags_targets():
    from sweep.bench.speed3d import flops_per_cell_3d, table_3d

    assert flops_per_cell_3d(4) == 30 and flops_per_cell_3d(8) == 48  # 3 (3r + 1) + 3 + 2 + 4
    fast = dict(mode="c 3-D forward", seconds=1.0, ns_per_cell_step=0.5, ratio_to_deepwave=0.15, target=0.2,
                gflops=10.0, fraction_of_peak=0.1)
    slow = dict(fast, mode="c 3-D forward+backward (boundary fp32)", ratio_to_deepwave=0.3)
    skipped = dict(mode="devito 3-D forward", seconds=None, skipped="not installed")
    loaded = dict(loaded=True, case="c 3-D fwd+bwd", quiet=1.0, seconds=2.0, threads=2, loaded_1=1.5,
                  ratio_to_1=1.33, ratio_to_quiet=2.0)
    lines = table_3d([fast, slow, skipped, loaded], 1e11).splitlines()
    assert "!" not in lines[1] and "0.300!" in lines[2] and "skipped: not installed" in lines[3]
    assert "1.33x one thread ! (target 1.1)" in lines[-1] and "2.00x quiet (target 3)" in lines[-1]


def test_deepwave_checkpointing_gets_its_measured_headroom():
    pytest.importorskip("deepwave", reason="Deepwave is the optional bench extra")
    from sweep.bench.peers import deepwave_cases
    from sweep.bench.peers3d import HEADROOM_EXACT, HEADROOM_SEGMENTS, peer_needs

    shot, vp_start = shot3d(10, 30, 4)
    setup, cpu = dict(shot=shot, vp_start=vp_start, nt=30), torch.device("cpu")
    specs = dict(deepwave_cases())
    # checkpoint segments measured 2.17 times Deepwave's estimate on the 64^3 shot; device storage 1.03 times
    assert peer_needs(specs["deepwave · checkpoint(100)"], setup, cpu)[1]["headroom"] == HEADROOM_SEGMENTS >= 2.17
    assert peer_needs(specs["deepwave · device"], setup, cpu)[1]["headroom"] == HEADROOM_EXACT
