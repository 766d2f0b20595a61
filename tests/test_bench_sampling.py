"""The shipped small runs sample their wavelet as finely as the library asks (5 grid points per shortest
wavelength: no dispersion warning), and the bench says once why the notebook's own shot warns."""
from __future__ import annotations

import runpy
import sys
import warnings
from pathlib import Path

import pytest
import torch

from sweep.bench.shot import (DISPERSION_WARNING, QUICK_DECIMATE, QUICK_FREQ, QUICK_NT, bench_shot, sampling,
                              sampling_note, starting_model)
from sweep.bench.speed import FREQ, NT, seed_propagator
from sweep.propagator.c import library_available
from sweep.propagator.setup import MIN_POINTS_PER_WAVELENGTH

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "forward_and_gradient.py"


def _setup(nt: int, decimate: int, freq: float, quick: bool) -> dict:
    shot, vp_start = bench_shot(nt, decimate, freq), starting_model(decimate)
    return dict(shape=list(vp_start.shape), nt=nt, decimate=decimate, freq=freq, quick=quick,
                **sampling(shot, vp_start))


def test_quick_shot_propagates_without_the_dispersion_warning():
    shot, vp_start = bench_shot(QUICK_NT, QUICK_DECIMATE, QUICK_FREQ), starting_model(QUICK_DECIMATE)
    assert sampling(shot, vp_start)["points_per_wavelength"] >= MIN_POINTS_PER_WAVELENGTH
    prop = seed_propagator(shot, QUICK_NT, impl="c" if library_available() else "eager")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("error", message=DISPERSION_WARNING)
        for vp in (shot["vp"], vp_start):  # the observed data's model and the cases' starting model
            prop(shot["wavelet"], shot["sources"], shot["receivers"], [vp])


@pytest.mark.skipif(not library_available(), reason="the example's defaults are sized for impl='c'")
def test_example_defaults_do_not_warn(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "--no-backward"])  # the defaults' shot; the forward warns
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=DISPERSION_WARNING)
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert "grid 141 x 681 at 25.0 m, nt=2000" in capsys.readouterr().out


def test_notes_say_what_the_run_is_for():
    notebook = _setup(NT, 2, FREQ, quick=False)
    assert 3.4 < notebook["points_per_wavelength"] < 3.6 and notebook["vmin"] == 1028.0
    note = sampling_note(notebook)
    assert "3.5 grid points per shortest wavelength" in note and "as the reference defines it" in note
    quick = _setup(QUICK_NT, QUICK_DECIMATE, QUICK_FREQ, quick=True)
    assert sampling_note(quick).startswith("quick run: a fast smoke check")
    coarse = _setup(QUICK_NT, 8, FREQ, quick=True)  # the old quick grid: 100 m at 5 Hz
    assert coarse["points_per_wavelength"] < 2 and "--freq" in sampling_note(coarse)
    fine = _setup(NT, 2, 3.0, quick=False)
    assert sampling_note(fine) is None
