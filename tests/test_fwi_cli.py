"""sweep-fwi end to end on a coarse Marmousi: outputs, resume, and errors that leave the state intact."""
import hashlib

import numpy as np
import pytest
import torch

from sweep.fwi.cli import main, run

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")
TINY = ["--decimate", "16", "--shots", "2", "--batch-size", "1", "--frequency", "1.0", "--dt", "0.01",
        "--duration", "3", "--bands", "0.8:1,all:1", "--no-progress", "--lr", "60"]


def test_run_writes_figure_model_and_state_then_resumes(tmp_path, capsys):
    summary = run(TINY + ["--out", str(tmp_path)])
    assert summary["iterations"] == 2 and len(summary["losses"]) == 2
    assert (tmp_path / "fwi.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = np.load(tmp_path / "fwi.npz")
    assert saved["inverted"].shape == (18, 86) and not np.array_equal(saved["inverted"], saved["start"])
    np.testing.assert_array_equal(saved["inverted"][:2], saved["start"][:2])  # the water layer is masked
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fwi-state.pt", "fwi.npz", "fwi.png"]
    assert "model error" in capsys.readouterr().out
    state = torch.load(tmp_path / "fwi-state.pt", weights_only=True)
    assert len(state["progress"]["losses"]) == 2
    again = run(TINY + ["--out", str(tmp_path)])  # finished: the rerun resumes at the end, no new iteration
    assert again["losses"] == summary["losses"]
    np.testing.assert_array_equal(np.load(tmp_path / "fwi.npz")["inverted"], saved["inverted"])


def test_errors_exit_2_and_leave_the_state_intact(tmp_path, capsys):
    run(TINY + ["--out", str(tmp_path)])
    state = tmp_path / "fwi-state.pt"
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    assert main(TINY + ["--out", str(tmp_path), "--seed", "1"]) == 2
    assert "belongs to another problem (it differs in: batches, seed)" in capsys.readouterr().err
    assert main(TINY + ["--out", str(tmp_path), "--compile"]) == 2
    assert "--compile" in capsys.readouterr().err
    assert main(TINY + ["--out", str(tmp_path), "--strategy", "full", "--storage-dtype", "zfp"]) == 2
    assert "--storage-dtype applies to --strategy boundary" in capsys.readouterr().err
    assert main(TINY + ["--out", str(tmp_path), "--batch-size", "3"]) == 2
    assert "batch_size=3 is larger than the number of shots (2)" in capsys.readouterr().err
    np.save(tmp_path / "mask.npy", np.ones((5, 5), dtype=bool))
    assert main(TINY + ["--out", str(tmp_path), "--mask", str(tmp_path / "mask.npy")]) == 2
    assert "mask must have the model's shape (18, 86)" in capsys.readouterr().err
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before
