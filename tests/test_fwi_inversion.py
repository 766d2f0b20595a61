"""The inversion loop against independent references: batched and distributed gradients against the
full-batch one, encoding against the plain objective, mask and bounds after real updates, resume
against an uninterrupted run, and the errors that must leave a state file intact."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fwi_tiny import NSHOTS, NX, NZ, tiny_problem
from sweep.fwi import (Band, Inversion, ShotBatches, Survey, VelocityConstraints, encode, polarity_codes,
                       stable_velocity_limit)
from sweep.equations import Acoustic
from sweep.fwi.constraints import default_bounds
from sweep.propagator.options import CkptOptions, MemoryOptions
from sweep.propagator.torch import PropTorch

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")


def rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def problem():
    return tiny_problem()


@pytest.mark.parametrize("impl", ["c", "eager"])
def test_batched_gradient_equals_full_batch(impl):
    prop, survey, _, start = tiny_problem(impl)
    full_loss, full = Inversion(prop, survey, start).gradient(start, 0)
    assert float(full.abs().max()) > 0
    for batches in (ShotBatches(NSHOTS, 1), ShotBatches(NSHOTS, 3, redraw=True, seed=5)):
        loss, grad = Inversion(prop, survey, start, batches=batches).gradient(start, 0)
        assert rel(grad, full) < 1e-5
        assert loss == pytest.approx(full_loss, rel=1e-10)


def test_stochastic_batches_are_scaled_to_the_survey(problem):
    prop, survey, _, start = problem
    batches = ShotBatches(NSHOTS, 1, redraw=True, per_iteration=2, seed=1)
    shots = np.concatenate(batches(7))
    loss, grad = Inversion(prop, survey, start, batches=batches).gradient(start, 7)
    ref_loss, ref = Inversion(prop, survey.subset(shots), start).gradient(start, 7)
    assert rel(grad, ref * NSHOTS / 2) < 1e-12 and loss == pytest.approx(ref_loss * NSHOTS / 2, rel=1e-12)


def test_encoding_of_one_shot_equals_the_plain_objective(problem):
    prop, survey, _, start = problem
    one = survey.subset(np.array([2]))
    negative = next(i for i in range(64) if polarity_codes(1, 0, i, 0)[0] < 0)
    for iteration in (0, negative):  # codes +1 and -1
        plain_loss, plain = Inversion(prop, one, start).gradient(start, iteration)
        loss, grad = Inversion(prop, one, start, encoding=True).gradient(start, iteration)
        assert rel(grad, plain) < 1e-12 and loss == pytest.approx(plain_loss, rel=1e-12)


def test_encoded_shot_is_the_coded_sum_of_the_shots(problem):
    """Linearity: the encoded source's data equal the coded sum of each shot's data."""
    prop, survey, _, start = problem
    codes = np.array([1.0, -1.0, -1.0, 1.0])
    enc = encode(survey, codes)
    assert enc.sources.shape == (1, NSHOTS, 2) and enc.observed.shape == (1, survey.nt, NX, 1)
    with torch.no_grad():
        data = prop(enc.wavelet, enc.sources, enc.receivers, [start])
        each = prop(survey.wavelet, survey.sources, survey.receivers, [start])
    expected = torch.einsum("s,strc->trc", torch.tensor(codes), each)[None]
    assert rel(data, expected) < 1e-12
    assert rel(enc.observed, torch.einsum("s,strc->trc", torch.tensor(codes), survey.observed)[None]) < 1e-15


def test_encoding_reduces_calls_and_redraws_codes(problem):
    prop, survey, _, start = problem
    inv = Inversion(prop, survey, start, batches=ShotBatches(NSHOTS, 2), encoding=True)
    assert [c.nshots for c in inv.calls(0, 0)] == [1, 1]
    assert any(not torch.equal(inv.calls(0, 0)[0].wavelet, inv.calls(i, 0)[0].wavelet) for i in range(1, 6))


def test_two_gloo_processes_give_the_gradient_of_one(problem, tmp_path):
    out = tmp_path / "rank0.pt"
    here = Path(__file__).parent
    # TMPDIR: torchrun's agent leaves a torchelastic_* log directory in the temporary directory.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")]),
               TMPDIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(here / "fwi_tiny.py"), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(out, weights_only=True)
    prop, survey, _, start = problem
    loss, grad = Inversion(prop, survey, start, batches=ShotBatches(NSHOTS, 1, redraw=True, seed=3)).gradient(start, 2)
    assert got["world"] == 2 and got["threads"] == max(1, (os.cpu_count() or 1) // 2)
    assert rel(got["grad"], grad) < 1e-5 and got["loss"] == pytest.approx(loss, rel=1e-10)


def test_mask_leaves_masked_cells_unchanged_and_bounds_hold(problem):
    prop, survey, _, start = problem
    mask = np.ones((NZ, NX), dtype=bool)
    mask[:5] = False
    mask[:, :3] = False
    lower, upper = float(start[5:, 3:].min()) - 1.0, float(start[5:, 3:].max()) + 1.0  # tight: steps hit them
    cons = VelocityConstraints((NZ, NX), lower, upper, mask)
    result = Inversion(prop, survey, start, constraints=cons, bands=[Band(None, 3)], lr=200.0).run(progress=False)
    m = result.model
    assert torch.equal(m[~torch.from_numpy(mask)], start[~torch.from_numpy(mask)])
    free = m[torch.from_numpy(mask)]
    assert float((free - start[torch.from_numpy(mask)]).abs().max()) > 10.0
    assert float(free.min()) >= lower and float(free.max()) <= upper
    assert float(free.min()) == lower  # a step crossed the bound: the projection acted


def test_default_upper_bound_is_stable(problem):
    prop, survey, _, start = problem
    lower, upper = default_bounds(prop, survey.wavelet, start)
    assert lower <= float(start.min()) and upper < stable_velocity_limit(prop.max_stable_dt, prop.dt)
    with torch.no_grad():
        prop(survey.wavelet[:1], survey.sources[:1], survey.receivers[:1], [torch.full_like(start, upper)])
    with pytest.raises(ValueError, match="unstable"):
        prop(survey.wavelet[:1], survey.sources[:1], survey.receivers[:1],
             [torch.full_like(start, 1.01 * stable_velocity_limit(prop.max_stable_dt, prop.dt))])


def test_default_upper_bound_follows_the_internal_step_when_sub_stepping(problem):
    """Data at 4 ms on the tiny grid, stable to about 2.4 ms for its pml_vmax: r = 2, and the bound is that of
    the 2 ms internal step (twice the data dt's); 'auto' without pml_vmax has no bound before its first call."""
    prop, survey, _, start = problem
    sub = PropTorch(Acoustic(), prop.shape, prop.dh, 4 * prop.dt, prop.nt // 4, abcn=prop.abcn, pml_freq=prop.pml_freq,
                    pml_vmax=prop.pml_vmax, substep="auto")
    wavelet = survey.wavelet[:1, :, ::4]  # one shot, at 4 ms
    assert sub.step_ratio == 2
    upper = default_bounds(sub, wavelet, start)[1]
    assert upper == pytest.approx(0.98 * stable_velocity_limit(prop.max_stable_dt, 2 * prop.dt))
    with torch.no_grad():
        sub(wavelet, survey.sources[:1], survey.receivers[:1], [torch.full_like(start, upper)])
    with pytest.raises(ValueError, match="needs at least 3 internal steps"):
        sub(wavelet, survey.sources[:1], survey.receivers[:1],
            [torch.full_like(start, 1.01 * stable_velocity_limit(prop.max_stable_dt, 2 * prop.dt))])
    unfixed = PropTorch(Acoustic(), prop.shape, prop.dh, 4 * prop.dt, prop.nt // 4, abcn=prop.abcn, substep="auto")
    with pytest.raises(ValueError, match="has not fixed its step ratio"):
        default_bounds(unfixed, wavelet, start)


def make(problem, state, **kw):
    prop, survey, _, start = problem
    kw.setdefault("bands", [Band(40.0, 2), Band(None, 2)])
    return Inversion(prop, survey, start, batches=ShotBatches(NSHOTS, 2, redraw=True, seed=1), encoding=True,
                     lr=30.0, state_path=state, **kw)


def test_interrupted_then_resumed_run_equals_uninterrupted(problem, tmp_path):
    whole = make(problem, tmp_path / "whole.pt").run(progress=False)

    def interrupt(iteration, model, loss):
        if iteration == 1:
            raise KeyboardInterrupt

    state = tmp_path / "part.pt"
    with pytest.raises(KeyboardInterrupt):
        make(problem, state).run(progress=False, callback=interrupt)
    assert len(torch.load(state, weights_only=True)["progress"]["losses"]) == 2
    resumed = make(problem, state).run(progress=False)
    assert rel(resumed.model, whole.model) < 1e-6
    assert resumed.losses == pytest.approx(whole.losses, rel=1e-9)
    assert float((whole.model - problem[3]).abs().max()) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part.pt", "whole.pt"]  # no temporary files left


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_bad_options_give_clear_errors_and_leave_the_state_intact(problem, tmp_path):
    prop, survey, _, start = problem
    state = tmp_path / "state.pt"
    make(problem, state, bands=[Band(None, 1)]).run(progress=False)
    before = digest(state)
    with pytest.raises(ValueError, match="belongs to another problem.*lr"):
        Inversion(prop, survey, start, batches=ShotBatches(NSHOTS, 2, redraw=True, seed=1), encoding=True, lr=31.0,
                  bands=[Band(None, 1)], state_path=state).run(progress=False)
    moving = survey.receivers.copy()
    moving[2, :, 0] = np.roll(moving[2, :, 0], 3)
    with pytest.raises(ValueError, match="same receivers.*shot 2"):
        Inversion(prop, Survey(survey.sources, moving, survey.wavelet, survey.observed), start, encoding=True,
                  state_path=state)
    with pytest.raises(ValueError, match=r"batch_size=5 is larger than the number of shots \(4\)"):
        ShotBatches(NSHOTS, 5)
    with pytest.raises(ValueError, match=r"mask must have the model's shape \(16, 24\)"):
        VelocityConstraints((NZ, NX), 1000.0, 3000.0, np.ones((NZ, NX + 1), dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        VelocityConstraints((NZ, NX), 1000.0, 3000.0, np.ones((NZ, NX)))
    with pytest.raises(ValueError, match="outside the velocity bounds"):
        Inversion(prop, survey, start, constraints=VelocityConstraints((NZ, NX), 1600.0, 3000.0))
    with pytest.raises(ValueError, match="Nyquist"):
        Inversion(prop, survey, start, bands=[Band(600.0, 1)])
    state.with_name("junk.pt").write_bytes(b"not a state")
    with pytest.raises(ValueError, match="not a readable sweep-fwi state"):
        make(problem, state.with_name("junk.pt")).run(progress=False)
    assert digest(state) == before and state.with_name("junk.pt").read_bytes() == b"not a state"


@pytest.mark.parametrize("memory", [MemoryOptions("boundary"), MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=7))])
def test_gradient_is_the_same_under_another_memory_strategy(problem, memory):
    prop, survey, _, start = problem
    _, full = Inversion(prop, survey, start).gradient(start, 0)
    other, *_ = tiny_problem(memory=memory)
    _, grad = Inversion(other, survey, start).gradient(start, 0)
    assert rel(grad, full) < 1e-6
