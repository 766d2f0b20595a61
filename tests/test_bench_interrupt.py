"""``sweep-bench`` as a command when cut short: Ctrl-C (SIGINT) ends with exit status 130 and one line
saying what finished and where it is, keeps the finished cases' results, stops the running case's process
and leaves no temporary folder; an unusable --device is one line and exit status 2 before anything is
created."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sweep.propagator.c import library_available

pytestmark = pytest.mark.skipif(not library_available(), reason="the benchmark's quick cases use impl='c'")


def _start(tmp_path: Path, *args: str) -> subprocess.Popen:
    """``python -m sweep.bench --quick ARGS`` in ``tmp_path``, its temporary folders in ``tmp_path/tmp``."""
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"), OMP_NUM_THREADS="1")
    # SIGINT back to its default in the command: a shell without job control starts background jobs with
    # it ignored (`pytest &`), which Python keeps, and the command would then never see the Ctrl-C.
    return subprocess.Popen([sys.executable, "-m", "sweep.bench", "--quick", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > end:
            proc.kill()
            pytest.fail(f"sweep-bench ended or took too long before {what}: {proc.communicate()}")
        time.sleep(0.05)


def _interrupt(proc: subprocess.Popen) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _messages(stderr: str) -> list[str]:
    """stderr's lines but the progress bar's."""
    return [ln for ln in re.split(r"[\r\n]+", stderr) if ln.strip() and "run/s" not in ln and "%|" not in ln]


def _leftovers(tmp_path: Path) -> tuple[list[Path], list[str]]:
    """(what is left in the run's TMPDIR, command lines of sweep.bench processes still running inside
    tmp_path)."""
    running = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(tmp_path) in cmdline and "sweep.bench" in cmdline:
            running.append(cmdline)
    return list((tmp_path / "tmp").iterdir()), running


def test_ctrl_c_after_a_case_keeps_its_results(tmp_path):
    out = tmp_path / "out"
    proc = _start(tmp_path, "--strategies", "c · full", "c · bdy disk · fp32", "c · chunk-ckpt", "--out", str(out))
    # the parent writes case1.json only once case 0 is recorded, then starts case 1's process
    _wait_for(lambda: list((tmp_path / "tmp").glob("sweep-bench-work-*/case1.json")), proc, "the first case finished")
    rc, stdout, stderr = _interrupt(proc)
    assert rc == 130 and "Traceback" not in stderr, stderr
    (line,) = _messages(stderr)
    m = re.fullmatch(r"sweep-bench: interrupted after (\d) of 3 runs; the results of the \1 cases? that finished "
                     r"are in (.+)/ \(results.json, results.md, figures\)", line)
    assert m and m.group(2) == str(out), line
    done = int(m.group(1))
    saved = json.loads((out / "results.json").read_text())
    assert [r["label"] for r in saved["rows"]] == ["c · full", "c · bdy disk · fp32", "c · chunk-ckpt"][:done]
    assert saved["interrupted"] == dict(runs=done, of=3)
    assert f"Interrupted after {done} of 3 runs" in (out / "results.md").read_text()
    assert (out / "strategies.png").exists() and (out / "tradeoff.png").exists()
    assert "c · full" not in stdout  # the table is in the files; the terminal gets the one line
    assert _leftovers(tmp_path) == ([], [])  # the case's process is stopped, its disk files gone


def test_ctrl_c_before_any_case_removes_the_empty_folder(tmp_path):
    out = tmp_path / "out"
    proc = _start(tmp_path, "--strategies", "eager · full", "--out", str(out))
    _wait_for(out.exists, proc, "the output folder was made")
    rc, _, stderr = _interrupt(proc)
    assert rc == 130 and "Traceback" not in stderr, stderr
    assert _messages(stderr) == [f"sweep-bench: interrupted before any case finished; removed the empty folder {out}/"]
    assert not out.exists()
    assert _leftovers(tmp_path) == ([], [])


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is usable here")
def test_unusable_device_is_one_line_before_anything_is_created(tmp_path):
    proc = _start(tmp_path, "--device", "cuda", "--out", str(tmp_path / "out"))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    (line,) = stderr.splitlines()
    assert line.startswith("sweep-bench: --device='cuda': CUDA is not") and "use device='cpu'" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"] and _leftovers(tmp_path) == ([], [])


def test_ctrl_c_while_a_case_process_starts_stops_that_process(tmp_path, monkeypatch):
    """Ctrl-C landing inside ``subprocess.Popen`` (the child forked, its handle not yet returned) still stops
    the child: the interrupt is held until the handle exists."""
    from sweep.bench import runner

    started, real_popen = [], subprocess.Popen

    def popen_then_ctrl_c(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        os.kill(os.getpid(), signal.SIGINT)  # delivered before Popen would have returned
        return started[-1]

    monkeypatch.setattr(runner.subprocess, "Popen", popen_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        runner._run_child(str(tmp_path / "setup.pt"), dict(label="x"), str(tmp_path), 0, 1)
    assert started and started[0].poll() is not None  # stopped and reaped, not left to run
