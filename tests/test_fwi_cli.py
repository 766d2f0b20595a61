"""sweep-fwi end to end on a coarse Marmousi: outputs, resume, errors that leave the state intact, and
Ctrl-C (alone and under torchrun) that says where the run stopped."""
import hashlib
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from sweep.equations import Acoustic
from sweep.fwi import cli
from sweep.fwi.cli import main, run
from sweep.fwi.constraints import STABILITY_MARGIN
from sweep.fwi.state import save_state

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


def test_bad_usage_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(TINY + ["--bands", "x"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err == ("sweep-fwi: error: argument --bands: 'x' is not CUTOFF_HZ:ITERATIONS or all:ITERATIONS (could "
                   "not convert string to float: 'x'); see sweep-fwi --help\n")


def test_a_data_dt_above_the_limit_is_sub_stepped_with_bounds_for_the_internal_step(tmp_path, capsys):
    """TINY's 200 m grid is stable to 26 ms for 4700 m/s: --dt 0.04 gives r = 2 (no --substep needed). No
    0.8 Hz band: on a 3 s record its low-passed wavelet is still ringing at the end, a cut that the
    upsampling's aliasing check refuses at 40 ms."""
    coarse = TINY + ["--dt", "0.04", "--bands", "all:2", "--out", str(tmp_path)]  # the later ones win
    summary = run(coarse + ["--gradient-interval", "2"])
    out = capsys.readouterr().out
    assert "nt=75 samples at dt=0.04 s, r=2 internal steps of 0.02 s, gradient interval k=2" in out
    upper = float(re.search(r"bounds \d+-(\d+) m/s", out).group(1))
    limit = Acoustic().max_stable_dt(1000.0, 200.0, 4) * 1000.0 / 0.02  # m/s stable at the internal step
    assert upper == pytest.approx(STABILITY_MARGIN * limit, abs=0.5) and upper > 4700
    assert len(summary["losses"]) == 2 and np.isfinite(summary["losses"]).all() and np.isfinite(summary["final_error"])
    # Another gradient interval is another problem: its state is not resumed.
    assert main(coarse + ["--gradient-interval", "1"]) == 2
    assert "(it differs in: time_sampling)" in capsys.readouterr().err
    assert main(coarse + ["--gradient-interval", "1", "--substep", "off", "--state", str(tmp_path / "s.pt")]) == 2
    assert "unstable" in (err := capsys.readouterr().err) and "substep='auto'" in err


@pytest.mark.parametrize("option, value, why", [("--substep", "0", "is not 'auto', 'off' or an integer >= 1"),
                                                ("--substep", "two", "is not 'auto', 'off' or an integer >= 1"),
                                                ("--gradient-interval", "0", "is not an integer >= 1")])
def test_bad_time_sampling_options_are_one_line_and_exit_2(option, value, why, capsys):
    with pytest.raises(SystemExit) as info:
        main(TINY + [option, value])
    assert info.value.code == 2
    assert capsys.readouterr().err == f"sweep-fwi: error: argument {option}: {value!r} {why}; see sweep-fwi --help\n"


def test_an_interrupted_save_leaves_the_previous_state_and_no_temporary_file(tmp_path, monkeypatch):
    state = tmp_path / "fwi-state.pt"
    save_state(state, {"key": 1}, {"losses": [1.0]})
    before = state.read_bytes()

    def half_then_interrupt(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_state(state, {"key": 1}, {"losses": [1.0, 0.5]})
    assert state.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["fwi-state.pt"]


# Ctrl-C: the command runs in a subprocess that is sent SIGINT as soon as the first iteration's state is
# written; 15 more iterations are left, so the signal arrives mid-run however fast the machine.
LONG = [a if a != "0.8:1,all:1" else "0.8:1,all:15" for a in TINY]
STOPPED = re.compile(r"^sweep-fwi: stopped at iteration (\d+); state saved in (.+); rerun the same command to "
                     r"resume$", re.MULTILINE)


def interrupt_when_saved(command: list[str], state, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``command``, send it SIGINT once ``state`` exists, and wait for it to end."""
    # SIGINT at its default in the child even when this test runs where it is ignored (a background job).
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        while not state.exists():
            if proc.poll() is not None:
                pytest.fail(f"ended before writing a state: {proc.communicate()[1][-3000:]}")
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def test_ctrl_c_says_where_it_stopped_and_the_rerun_resumes_there(tmp_path, capsys):
    state = tmp_path / "fwi-state.pt"
    stopped = interrupt_when_saved([sys.executable, "-m", "sweep.fwi", *LONG, "--out", str(tmp_path)], state)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    lines = STOPPED.findall(stopped.stderr)
    saved = torch.load(state, weights_only=True)["progress"]["losses"]
    assert lines == [(str(len(saved)), str(state))] and 1 <= len(saved) < 16
    assert [p.name for p in tmp_path.iterdir()] == ["fwi-state.pt"]  # no temporary file, no outputs yet
    capsys.readouterr()
    again = run(LONG + ["--out", str(tmp_path)])
    assert again["resumed_from"] == len(saved) and again["iterations"] == 16
    assert again["losses"][:len(saved)] == saved
    assert f"(resumed at iteration {len(saved)})" in capsys.readouterr().out


def test_ctrl_c_before_any_state_says_nothing_was_saved(tmp_path, monkeypatch, capsys):
    """Interrupted while the observed data are made (in-process: a signal's timing cannot pick that moment)."""
    def interrupted(**kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "marmousi_problem", interrupted)
    try:
        code = main(LONG + ["--out", str(tmp_path)])
    except KeyboardInterrupt:  # escaping, it would stop the whole test session
        pytest.fail("main let KeyboardInterrupt escape")
    assert code == 130
    assert capsys.readouterr().err == ("sweep-fwi: stopped before the first iteration finished; no state saved yet "
                                       "(rerunning the same command starts afresh)\n")


def test_ctrl_c_under_torchrun_prints_the_line_once(tmp_path):
    state = tmp_path / "out" / "fwi-state.pt"
    # TMPDIR: torchrun's agent leaves a torchelastic_* log directory in the temporary directory.
    stopped = interrupt_when_saved([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                                    "-m", "sweep.fwi", *LONG, "--out", str(state.parent)], state,
                                   env=dict(os.environ, TMPDIR=str(tmp_path)))
    output = stopped.stdout + stopped.stderr
    assert len(STOPPED.findall(output)) == 1, output[-3000:]
    # torchrun reports the signal with a traceback of its own; no rank shows one.
    assert not re.search(r'File ".*[/\\]sweep[/\\]', output), output[-3000:]


def test_a_call_that_cannot_fit_exits_1_with_the_guards_message(tmp_path, capsys, monkeypatch):
    """The memory guard's refusal is the command's error (exit 1, no traceback), not a crash."""
    from sweep.memory import available
    from sweep.memory.available import Available

    monkeypatch.setattr(available, "host_memory", lambda root="/": Available(1 << 20, "fake MemAvailable"))
    assert main(TINY + ["--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sweep-fwi: this call needs more memory than is available") and "Traceback" not in err
    assert "fake MemAvailable" in err
