"""The ``vrz`` section of the speed benchmark on a tiny configuration: its contenders, ratios, dt and output."""
from __future__ import annotations

import json

import pytest

from sweep.bench.speed import DT, deepwave_available, main
from sweep.bench.vrz_peers import common_dt, measure_vrz, vrz_shot, vrz_summary, vrz_table
from sweep.datasets import load_marmousi
from sweep.datasets.marmousi import MARMOUSI_SHAPE
from sweep.propagator.registry import impls

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength",
                                        "ignore:At least six grid cells per wavelength")


def test_density_is_shipped_and_decimated_like_vp():
    rho = load_marmousi("true", model="rho")
    assert rho.shape == MARMOUSI_SHAPE and 1000 < rho.min() < rho.max() < 3000  # water ~1010, rock ~2600
    shot = vrz_shot(10, decimate=8)
    assert shot["rho"].shape == shot["vp"].shape
    assert float(shot["rho"][0, 0]) == float(rho[0, 0]) and float(shot["rho"][1, 1]) == float(rho[8, 8])


def test_seed_dt_is_stable_for_every_contender():
    shot = vrz_shot(10)
    dt, limits = common_dt(shot)
    assert dt == DT and set(limits) == {"vrz", "acoustic", "deepwave"}
    assert limits["vrz"] < limits["acoustic"]  # density contrasts lower VRZ's limit (3.18 against 3.26 ms)
    assert dt <= min(limits.values())
    if deepwave_available():  # the limit is where Deepwave starts to sub-step
        from deepwave.discretisation import cfl_condition_n

        vmax = float(shot["vp"].max())
        ratios = [cfl_condition_n([shot["dh"]] * 2, limits["deepwave"] * f, vmax)[1] for f in (0.999, 1.001)]
        assert ratios == [1, 2]


@pytest.mark.parametrize("peers", [False, True])
def test_section_rows(peers):
    if peers and not deepwave_available():
        pytest.skip("Deepwave is the optional bench extra, not installed")
    rows = measure_vrz(nt=12, repeats=2, eager_repeats=0, use_deepwave=peers, decimate=8)
    impl = "c" if "c" in impls("acoustic_vrz", 2) else "eager"
    names = [row["contender"] for row in rows]
    expected = [f"sweep vrz {impl}", "sweep acoustic c"] + (["sweep acoustic eager"] if impl == "eager" else [])
    assert names == expected + (["deepwave acoustic", "deepwave scalar"] if peers else [])
    vrz = rows[0]
    assert vrz["vrz_impl"] == impl and vrz["repeats"] == (2 if impl == "c" else 1)  # eager: at least one
    same = rows[names.index(f"sweep acoustic {impl}")]
    assert vrz["ratio_to_acoustic"] == pytest.approx(vrz["seconds"] / same["seconds"])
    assert (vrz["ratio_to_deepwave_acoustic"] is None) == (not peers)
    assert all(row["seconds"] > 0 and row["vrz_over_this"] > 0 for row in rows)
    json.dumps(rows)
    table = vrz_table(rows).splitlines()
    assert len(table) == len(rows) + 1 and table[1].startswith(f"sweep vrz {impl}")
    assert f"impl={impl}" in vrz_summary(rows) and "dt 2 ms for all" in vrz_summary(rows)


def test_speed_cli_writes_the_section(tmp_path, capsys):
    path = tmp_path / "speed.json"
    main(["--sections", "vrz", "--nt", "4", "--repeats", "1", "--no-devito", "--no-deepwave", "--json", str(path)])
    out = capsys.readouterr().out
    assert "vrz: seed shot with the shipped density (141x681, nt=4)" in out and "VRZ / this" in out
    rows = json.loads(path.read_text())["rows"]
    assert {row["section"] for row in rows} == {"vrz"} and rows[0]["ratio_to_deepwave_acoustic"] is None
