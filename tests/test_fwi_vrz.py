"""Variable-density inversion: the velocity alone at a fixed density, or velocity and impedance together, each
with its own step size, bounds and mask; resume with two parameters; sweep-fwi --equation vrz end to end."""
import numpy as np
import pytest
import torch

from fwi_tiny import DH, DT, NSHOTS, NT, NX, NZ
from sweep.equations import AcousticVRZ
from sweep.fwi import Inversion, ShotBatches, Survey, VelocityConstraints
from sweep.fwi.cli import main, run
from sweep.fwi.parameters import velocity_and_impedance, velocity_at_density
from sweep.fwi.problem import unit_peak
from sweep.propagator.options import MemoryOptions
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker

pytestmark = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength")


def vrz_problem(dtype=torch.float64):
    """(propagator, survey, true [vp, rho], start [vp, rho]): a layered velocity and density with bumps; data of
    unit peak (so that gradients are far above Adam's eps and its first step is lr)."""
    z, x = np.meshgrid(np.arange(NZ), np.arange(NX), indexing="ij")
    vp = np.where(z < 5, 1500.0, 1800.0 + 20.0 * z)
    rho = np.where(z < 5, 1020.0, 1900.0 + 15.0 * z)
    bump = np.exp(-((z - 10) ** 2 + (x - 12) ** 2) / 8.0)
    true = [torch.tensor(vp + 120.0 * bump, dtype=dtype), torch.tensor(rho + 300.0 * bump, dtype=dtype)]
    start = [torch.tensor(vp, dtype=dtype), torch.tensor(rho, dtype=dtype)]
    prop = PropTorch(AcousticVRZ(), (NZ, NX), DH, DT, NT, abcn=6, impl="eager", memory=MemoryOptions("full"),
                     pml_freq=25.0, pml_vmax=2500.0)
    sources = np.array([[[x, 1]] for x in (2, 9, 15, 21)])
    receivers = np.broadcast_to(np.array([[x, 2] for x in range(NX)]), (NSHOTS, NX, 2)).copy()
    wavelet = ricker(torch.arange(NT, dtype=dtype) * DT - 0.03, 30.0)
    with torch.no_grad():
        observed = prop(wavelet, sources, receivers, [true[0], true[0] * true[1]])
    return prop, unit_peak(Survey(sources, receivers, wavelet, observed)), true, start


@pytest.fixture(scope="module")
def problem():
    return vrz_problem()


def _constraints(start_vp, start_z):
    mask = np.ones((NZ, NX), dtype=bool)
    mask[:5] = False  # the water
    return [VelocityConstraints((NZ, NX), 1400.0, 2600.0, mask),
            VelocityConstraints((NZ, NX), 1.0e6, 8.0e6, mask, quantity="impedance", unit="kg/(m^2 s)")]


def test_velocity_at_fixed_density_is_the_chain_rule_of_vp_and_z(problem):
    """The vp-only gradient at a fixed density equals g_vp + density g_z of the (vp, z) gradient."""
    prop, survey, _, (vp, rho) = problem
    loss, (g_vp, g_z) = Inversion(prop, survey, [vp, vp * rho], parameters=velocity_and_impedance(),
                                  constraints=_constraints(vp, vp * rho)).gradient([vp, vp * rho], 0)
    loss_vp, g = Inversion(prop, survey, vp, parameters=velocity_at_density(rho)).gradient(vp, 0)
    assert loss_vp == pytest.approx(loss, rel=1e-12)
    assert float((g - (g_vp + rho * g_z)).norm() / g.norm()) < 1e-12
    assert float(g_z.abs().max()) > 0


def test_batched_two_parameter_gradient_equals_full_batch(problem):
    prop, survey, _, (vp, rho) = problem
    start = [vp, vp * rho]
    kw = dict(parameters=velocity_and_impedance(), constraints=_constraints(*start))
    loss, full = Inversion(prop, survey, start, **kw).gradient(start, 0)
    loss_b, batched = Inversion(prop, survey, start, batches=ShotBatches(NSHOTS, 1), **kw).gradient(start, 0)
    assert loss_b == pytest.approx(loss, rel=1e-12)
    for g, ref in zip(batched, full):
        assert float((g - ref).norm() / ref.norm()) < 1e-12


def test_velocity_and_impedance_inversion_steps_each_in_its_unit_and_resumes(problem, tmp_path):
    """Three iterations: the misfit falls; the first step moves each parameter by about its own lr (Adam's first
    step is lr g / (|g| + eps), lr where the gradient is far above eps = 1e-8); water cells and bounds hold; a run stopped
    after one iteration and resumed gives the same models bit for bit."""
    prop, survey, true, (vp, rho) = problem
    start = [vp, vp * rho]
    kw = dict(parameters=velocity_and_impedance(), constraints=_constraints(*start), lr=[3.0, 6.0e3],
              bands=[(None, 3)])
    steps = []
    result = Inversion(prop, survey, start, **kw).run(progress=False, callback=lambda i, m, loss: steps.append([t.clone() for t in m]))
    assert result.losses[-1] < result.losses[0]
    moved_vp, moved_z = (steps[0][i] - start[i] for i in range(2))
    for moved, lr in ((moved_vp, 3.0), (moved_z, 6.0e3)):  # Adam's eps shortens the step a little
        assert 0.9 * lr <= float(moved.abs().max()) <= lr * (1 + 1e-9)
    for p, s in zip(result.parameters, start):
        assert torch.equal(p[:5], s[:5])
    assert float(result.parameters[1].min()) >= 1.0e6
    # Resume: one iteration then the rest, against the uninterrupted run.
    state = tmp_path / "state.pt"
    Inversion(prop, survey, start, state_path=state, **{**kw, "bands": [(None, 1)]}).run(progress=False)
    with pytest.raises(ValueError, match="belongs to another problem"):  # the bands differ: another problem
        Inversion(prop, survey, start, state_path=state, **kw).run(progress=False)
    state.unlink()
    first = Inversion(prop, survey, start, state_path=state, **kw)
    first.run(progress=False)
    resumed = Inversion(prop, survey, start, state_path=state, **kw).run(progress=False)
    assert resumed.resumed_from == 3
    for p, q in zip(resumed.parameters, result.parameters):
        assert torch.equal(p, q)


def test_two_parameters_need_their_constraints_and_steps(problem):
    prop, survey, _, (vp, rho) = problem
    start = [vp, vp * rho]
    with pytest.raises(ValueError, match="constraints must be given for every parameter"):
        Inversion(prop, survey, start, parameters=velocity_and_impedance())
    with pytest.raises(ValueError, match=r"lr must give one value per inverted parameter \(2\)"):
        Inversion(prop, survey, start, parameters=velocity_and_impedance(), constraints=_constraints(*start),
                  lr=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"start must hold one tensor per inverted parameter \['vp', 'z'\]"):
        Inversion(prop, survey, vp, parameters=velocity_and_impedance(), constraints=_constraints(*start))
    with pytest.raises(ValueError, match="lr of z must be a positive step in kg/"):
        Inversion(prop, survey, start, parameters=velocity_and_impedance(), constraints=_constraints(*start),
                  lr=[1.0, -2.0])


TINY = ["--decimate", "16", "--shots", "2", "--batch-size", "1", "--frequency", "1.0", "--dt", "0.01",
        "--duration", "3", "--bands", "all:2", "--no-progress", "--lr", "60", "--equation", "vrz"]


def test_sweep_fwi_inverts_velocity_and_impedance_of_marmousi(tmp_path, capsys):
    """--equation vrz (default --invert vp+z): Marmousi's shipped density is the truth; the figure, the npz and
    the printed summary carry both parameters' errors."""
    summary = run(TINY + ["--out", str(tmp_path)])
    saved = np.load(tmp_path / "fwi.npz")
    assert {"inverted_density", "start_density", "true_density", "density_errors"} <= set(saved.files)
    assert not np.array_equal(saved["inverted_density"], saved["start_density"])
    np.testing.assert_array_equal(saved["inverted_density"][:2], saved["start_density"][:2])  # water masked
    assert 1000 <= saved["true_density"].min() and saved["true_density"].max() <= 2700
    out = capsys.readouterr().out
    assert f"density error start {summary['density_start_error']:.4f} -> inverted" in out
    assert summary["density_start_error"] > 0 and np.isfinite(summary["density_final_error"])
    assert (tmp_path / "fwi.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_fwi_inverts_velocity_alone_at_the_starting_density(tmp_path, capsys):
    summary = run(TINY + ["--invert", "vp", "--out", str(tmp_path)])
    assert "density_final_error" not in summary and summary["final_error"] != summary["start_error"]
    assert "density error" not in capsys.readouterr().out


@pytest.mark.parametrize("extra, why", [
    (["--equation", "acoustic", "--invert", "vp"], "--invert and --lr-z apply to --equation vrz"),
    (["--invert", "vp", "--lr-z", "100"], "--lr-z applies to --invert vp+z"),
    (["--model", "layered3d"], "--equation applies to --model marmousi"),
])
def test_bad_vrz_options_are_one_line_and_exit_2(extra, why, capsys, tmp_path):
    argv = [a for a in TINY if a not in ("--equation", "vrz")] if "--equation" in extra else list(TINY)
    if "--model" in extra:
        argv = ["--equation", "vrz", "--model", "layered3d", "--no-progress"]
    assert main(argv + extra + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert why in err and err.count("\n") == 1
