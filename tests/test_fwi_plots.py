"""Inversion summary figure and relative model error."""
import numpy as np
import pytest
import torch

from sweep.fwi.plots import model_error, plot_inversion

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _models(nz=20, nx=40):
    true = np.full((nz, nx), 2000.0)
    true[nz // 2:] = 3000.0
    start = np.full((nz, nx), 2500.0)
    inverted = torch.tensor(0.5 * (true + start))
    return true, start, inverted


def _check_png(path, folder):
    assert path.exists() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temporary left behind


def test_writes_png(tmp_path):
    true, start, inverted = _models()
    losses = [10.0 / (i + 1) for i in range(12)]
    out = plot_inversion(true, start, inverted, losses, 10.0, tmp_path / "fwi.png", band_edges=[4, 8],
                         title="test")
    assert out == tmp_path / "fwi.png"
    _check_png(out, tmp_path)


def test_writes_png_without_true_model(tmp_path):
    _, start, inverted = _models()
    out = plot_inversion(None, start, inverted, [3.0, 2.0, 1.0], 12.5, str(tmp_path / "fwi.png"))
    _check_png(out, tmp_path)


def test_failed_save_leaves_no_temporary(tmp_path):
    true, start, inverted = _models()
    with pytest.raises(ValueError):
        plot_inversion(true, start, inverted, [1.0], 10.0, tmp_path / "fwi.unknownformat")
    assert list(tmp_path.iterdir()) == []


def test_shape_mismatch():
    true, start, inverted = _models()
    with pytest.raises(ValueError, match="start"):
        plot_inversion(true, start[:, :10], inverted, [1.0], 10.0, "unused.png")


def test_model_error():
    true = np.array([[3.0, 4.0]])
    assert model_error(np.array([[3.0, 4.0]]), true) == 0.0
    assert model_error(torch.tensor([[0.0, 4.0]]), true) == pytest.approx(3.0 / 5.0)
    with pytest.raises(ValueError, match="same shape"):
        model_error(np.zeros((2, 2)), true)
