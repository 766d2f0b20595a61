"""sweep-fwi --model layered3d: a tiny 3-D inversion end to end (figure, summary, the model error falls),
the same result under torchrun with 2 processes, usage errors; the 3-D pieces it is built from."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from sweep.fwi import Band, Survey, encode, water_mask
from sweep.fwi.cli import main, parser, resolve, run
from sweep.fwi.layered3d import figure_cuts, shot_grid
from sweep.fwi.plots import model_error
from sweep.fwi.plots3d import plot_inversion_3d

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")
# The default problem's 1.6 km cube at 100 m: 16^3 cells, 1.25 Hz (5.3 points per wavelength), 2 shots.
TINY3D = ["--model", "layered3d", "--shape", "16", "16", "16", "--dh", "100", "--frequency", "1.25", "--dt", "0.01",
          "--duration", "2.6", "--shots", "2", "--batch-size", "1", "--bands", "all:3", "--lr", "10", "--no-progress"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    return run(TINY3D + ["--out", str(out)]), out


def test_cli_inverts_the_3d_model_writes_figure_and_summary_and_the_error_falls(one_process, capsys):
    summary, out = one_process
    assert summary["model"] == "layered3d" and summary["iterations"] == 3
    assert summary["final_error"] < summary["start_error"]
    assert (out / "fwi.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == ["fwi-state.pt", "fwi.npz", "fwi.png"]
    saved = np.load(out / "fwi.npz")
    assert saved["inverted"].shape == saved["true"].shape == (16, 16, 16)
    np.testing.assert_array_equal(saved["inverted"][:1], saved["start"][:1])  # the water layer is masked
    errors = saved["errors"]
    assert errors.shape == (4,) and np.all(np.diff(errors) < 0)  # falls at every iteration
    assert errors[0] == pytest.approx(model_error(saved["start"], saved["true"]))
    assert errors[-1] == pytest.approx(model_error(saved["inverted"], saved["true"]))
    assert summary["errors"] == pytest.approx(errors.tolist())


def test_summary_line_names_the_3d_grid_and_the_errors(tmp_path, capsys):
    run(TINY3D + ["--out", str(tmp_path), "--bands", "all:1"])
    out = capsys.readouterr().out
    assert "sweep-fwi: 2 shots on 16 x 16 x 16 cells at 100 m, nt=260" in out
    assert "model error (relative L2 vs the true model): start 0.0995 -> inverted " in out


def test_two_processes_under_torchrun_give_the_result_of_one(one_process, tmp_path):
    summary, out = one_process
    env = dict(os.environ, TMPDIR=str(tmp_path))  # torchrun's agent leaves a torchelastic_* directory there
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "sweep.fwi", *TINY3D, "--out", str(tmp_path / "two")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 process(es)" not in proc.stdout and "2 process(es)" in proc.stdout
    one, two = np.load(out / "fwi.npz"), np.load(tmp_path / "two" / "fwi.npz")
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-6)
    assert np.linalg.norm(two["inverted"] - one["inverted"]) / np.linalg.norm(one["inverted"]) < 1e-6
    np.testing.assert_allclose(two["errors"], one["errors"], rtol=1e-5)


def test_unknown_model_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--model", "marmousi3d"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    # argparse quotes the choices or not depending on the Python version
    assert re.fullmatch(r"sweep-fwi: error: argument --model: invalid choice: 'marmousi3d' \(choose from "
                        r"'?marmousi'?, '?layered3d'?\); see sweep-fwi --help\n", err), err


def test_an_option_of_the_other_model_exits_2(tmp_path, capsys):
    assert main(["--model", "layered3d", "--decimate", "8", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "sweep-fwi: error: --decimate applies to --model marmousi, not --model layered3d\n"
    assert main(["--shape", "16", "16", "16", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "sweep-fwi: error: --shape applies to --model layered3d, not --model marmousi\n"
    assert list(tmp_path.iterdir()) == []


def test_the_2d_defaults_are_unchanged():
    args = resolve(parser().parse_args([]))
    assert args.model == "marmousi" and args.decimate is None  # marmousi_problem's default, 4
    assert (args.shots, args.frequency, args.duration, args.dt, args.lr, args.batch_size) == (12, 1.5, 5.0, 0.005, 40.0, 4)
    assert args.bands == [Band(2.0, 20), Band(None, 40)]
    args = resolve(parser().parse_args(["--model", "layered3d", "--lr", "7"]))
    assert (args.shots, args.lr, args.bands) == (4, 7.0, [Band(None, 20)])


def test_shot_grid_is_as_square_as_the_count_allows():
    assert [shot_grid(n) for n in (1, 2, 4, 6, 9, 7)] == [(1, 1), (1, 2), (2, 2), (2, 3), (3, 3), (1, 7)]
    assert figure_cuts((32, 32, 32)) == (22, 16, 10)


def test_survey_and_encoding_take_xyz_locations():
    sources = np.array([[[4, 4, 1]], [[12, 4, 1]]])
    receivers = np.broadcast_to(np.array([[x, y, 1] for x in range(3) for y in range(2)]), (2, 6, 3)).copy()
    observed = torch.randn(2, 5, 6, 1)
    survey = Survey(sources, receivers, torch.ones(5), observed)
    assert survey.space == 3 and survey.sources.shape == (2, 1, 3)
    encoded = encode(survey, np.array([1.0, -1.0]))
    assert encoded.sources.shape == (1, 2, 3) and torch.allclose(encoded.observed[0], observed[0] - observed[1])
    with pytest.raises(ValueError, match=r"receivers must have shape \(nshots, n, 3\)"):
        Survey(sources, receivers[..., :2], torch.ones(5), observed)


def test_water_mask_holds_the_top_depth_slices_of_a_3d_model():
    model = np.full((6, 3, 4), 2000.0)
    model[:2] = 1500.0
    model[2, 0, 0] = 1500.0  # a water cell in a slice that is not all water
    mask = water_mask(model)
    assert not mask[:2].any() and mask[2:].all()


def test_3d_figure_checks_its_inputs(tmp_path):
    m = np.full((8, 9, 10), 2000.0)
    path = plot_inversion_3d(m, m + 1, m + 2, [3.0, 2.0], 50.0, tmp_path / "f.png", errors=[0.3, 0.2, 0.1])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plot_inversion_3d(None, m, m, [1.0], 50.0, tmp_path / "g.png")  # no true model: two rows, no error panel
    with pytest.raises(ValueError, match="errors must have one value more than losses"):
        plot_inversion_3d(m, m, m, [3.0, 2.0], 50.0, tmp_path / "h.png", errors=[0.3, 0.2])
    with pytest.raises(ValueError, match=r"start must have shape \(nz, ny, nx\)"):
        plot_inversion_3d(m, m[0], m, [1.0], 50.0, tmp_path / "h.png")
    with pytest.raises(ValueError, match="cuts: ix"):
        plot_inversion_3d(m, m, m, [1.0], 50.0, tmp_path / "h.png", cuts=(0, 0, 10))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "g.png"]
