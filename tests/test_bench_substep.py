"""``python -m sweep.bench.substep --quick``: the outputs' structure, zero errors for the k = 1 rows (each is
its strategy's reference) and non-zero ones for k = r, the strategies agreeing at each k, stored bytes
shrinking k-fold for full storage, and Deepwave's defaults (or the reason it was skipped)."""
import json

import pytest

from sweep.bench import substep
from sweep.bench.speed import deepwave_available

ERRORS = ("err_whole", "err_below10", "err_pointwise")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("substep")
    result = substep.run(["--quick", "--out", str(out), "--threads", "1"])
    return out, result


def test_writes_results_json_and_markdown(quick):
    out, result = quick
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md"]
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(result))
    md = (out / "results.md").read_text()
    assert md.count("| strategy | k |") == 2 and "Deepwave 0.1.0's default" in md
    assert [run["dt"] for run in result["runs"]] == list(substep.QUICK.dts)
    assert [run["r"] for run in result["runs"]] == [2, 3]  # the notebook shot's r at 4 and 8 ms


def test_k1_rows_are_exact_and_k_r_rows_are_not(quick):
    for run in quick[1]["runs"]:
        rows = {(row["strategy"], row["k"]): row for row in run["rows"]}
        assert sorted(rows) == sorted((s, k) for s in substep.STRATEGIES for k in (1, run["r"]))
        for (strategy, k), row in rows.items():
            if k == 1:
                assert all(row[e] == 0 for e in ERRORS), row
            else:
                assert all(0 < row[e] < 1e-3 for e in ERRORS), row
                assert row["time_ratio"] > 0
        sampling = run["float64"]["sampling"]
        assert 0 < sampling["err_whole"] < 1e-4 and sampling["err_below10"] < sampling["err_whole"]


def test_strategies_agree_at_each_k_and_full_storage_shrinks_k_fold(quick):
    for run in quick[1]["runs"]:
        for row in run["rows"]:
            if row["strategy"].startswith("boundary"):
                assert not row["identical_to_full"] and row["vs_full"]["err_whole"] < 1e-5, row
            else:
                assert row["identical_to_full"], row
        full = {row["k"]: row for row in run["rows"] if row["strategy"] == "full"}
        assert full[run["r"]]["stored_ratio"] == pytest.approx(1 / run["r"])
        assert full[run["r"]]["stored_bytes"] * run["r"] == full[1]["stored_bytes"]


def test_deepwave_defaults_or_why_not(quick):
    for run, ratio in zip(quick[1]["runs"], (2, 4)):
        d = run["deepwave"]
        if not deepwave_available():
            assert "not installed" in d["skipped"]
            continue
        # Courant number 0.6 and a stride of step ratio x sampling interval (1).
        assert (d["step_ratio"], d["model_gradient_sampling_interval"], d["model_gradient_stride"]) == (ratio, 1, ratio)
        assert d["data_difference"] == 0  # the stride-1 reference is the same call
        assert all(0 < d[e] < 1e-3 for e in ERRORS), d
