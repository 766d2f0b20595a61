"""The parent side of ``sweep-bench``: shared set-up, one fresh subprocess per case and repeat, rows.

The observed data are computed once and handed to every case through a set-up file; repeats are
interleaved (round r runs every case once before round r + 1); each row keeps the median time, the
largest peak, the load average before and after, and each model gradient's difference from the
full-storage gradient of the same contender (sweep back-end, or Deepwave's own device storage).
"""
from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from .models import suffixed, true_models, unpack_gradients
from .shot import DISPERSION_WARNING
from .speed import seed_propagator

# How long a case's process may take to clean up (its disk files) after an interrupt before it is killed.
STOP_GRACE_S = 10.0


def write_setup(path: str, shot: dict, vp_start: torch.Tensor, nt: int, device: str, threads: int) -> None:
    """Save the shot, the starting model and the observed data (of the true models, computed once here)."""
    dev = torch.device(device)
    # Where the grid is under 5 points per wavelength the caller has said so once (shot.sampling_note).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DISPERSION_WARNING)
        impl = "eager" if dev.type != "cpu" else None  # the compiled back-end runs on the CPU
        observed = seed_propagator(shot, nt, dev, impl=impl)(
            shot["wavelet"], shot["sources"], shot["receivers"], [m.to(dev) for m in true_models(shot)]).cpu()
    torch.save(dict(shot=shot, vp_start=vp_start, observed=observed, nt=nt, device=device, threads=threads), path)


class CasesInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_cases`, raised once the running case's process has ended.

    Attributes
    ----------
    rows : list of dict
        The rows (as :func:`run_cases` returns them) of the cases that finished at least one run.
    runs : int
        How many runs finished.
    """

    def __init__(self, rows: list[dict], runs: int) -> None:
        super().__init__()
        self.rows, self.runs = rows, runs


def _stop(proc: subprocess.Popen) -> None:
    """End a case's process after an interrupt: SIGINT, so that it removes what it wrote (a disk store's
    files), then SIGKILL if it has not ended within STOP_GRACE_S. It runs in its own session (see
    :func:`_run_child`), so a terminal's Ctrl-C reaches only the parent, which decides here."""
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    finally:  # also on a second Ctrl-C while waiting
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextmanager
def _sigint_held() -> Iterator[list[int]]:
    """Hold Ctrl-C (SIGINT) back while a case's process is being started, yielding the list the signals
    received meanwhile go to. A KeyboardInterrupt raised inside ``subprocess.Popen`` after the fork leaves
    a child the parent has no handle on, which then runs its case to the end; held, the interrupt is acted
    on once the handle exists. Off the main thread (where Python delivers signals) nothing is held."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_child(setup: str, case: dict, workdir: str, index: int, threads: int) -> tuple[dict, str | None]:
    """(measurements or error, path of the saved gradient) of one subprocess run."""
    case_path = os.path.join(workdir, f"case{index}.json")
    out_path, grad_path = case_path.replace(".json", ".out.json"), case_path.replace(".json", ".grad.pt")
    with open(case_path, "w") as fh:
        json.dump(case, fh)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    load_before = os.getloadavg()
    with _sigint_held() as interrupted:
        proc = subprocess.Popen([sys.executable, "-m", "sweep.bench.child", setup, case_path, out_path, grad_path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
    with proc:
        try:
            if interrupted:
                raise KeyboardInterrupt
            _, stderr = proc.communicate()
        except BaseException:
            _stop(proc)
            raise
    row: dict = dict(load_before=list(load_before), load_after=list(os.getloadavg()))
    if proc.returncode != 0 or not os.path.exists(out_path):
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        row.update(status="failed", error=lines[-1] if lines else f"exit status {proc.returncode}")
        return row, None
    with open(out_path) as fh:
        row.update(dict(status="ok", error=None), **json.load(fh))  # or the child's "does not fit"
    return row, grad_path if row["status"] == "ok" else None


def _relative(d: torch.Tensor, ref: torch.Tensor) -> float | None:
    """|d| / |ref|, or None where the reference is zero (e.g. rows the wave never reached)."""
    scale = float(ref.norm())
    return float(d.norm()) / scale if scale > 0 else None


def gradient_errors(g: torch.Tensor, ref: torch.Tensor) -> dict[str, float | None]:
    """How far gradient ``g`` (nz, nx) is from ``ref``: relative L2 over the grid (``err_whole``) and below
    depth index 10 (``err_below10``, away from the source and receiver rows), and max|g - ref| / max|ref|
    (``err_pointwise``); None where the reference is zero."""
    d = g - ref
    peak = float(ref.abs().max())
    return dict(err_whole=_relative(d, ref), err_below10=_relative(d[10:], ref[10:]),
                err_pointwise=float(d.abs().max()) / peak if peak > 0 else None)


def model_errors(saved: torch.Tensor | dict, ref: torch.Tensor | dict) -> dict[str, float | None]:
    """:func:`gradient_errors` of every model's gradient in ``saved`` against ``ref`` (both as
    :func:`~sweep.bench.models.pack_gradients` saved them): the first model's under the plain keys, each
    further one's with its name appended (``err_whole_z``, ...); a lone vp gradient's as the acoustic
    bench always computed them, several models' in float64."""
    grads, refs = unpack_gradients(saved), unpack_gradients(ref)
    if len(grads) == 1:
        return gradient_errors(grads["vp"], refs["vp"])
    out: dict[str, float | None] = {}
    for i, (name, g) in enumerate(grads.items()):
        # In float64: a z gradient is ~1e-4 of vp's (z ~ 1e6-1e7 kg m^-2 s^-1), and float32 squares of its
        # differences underflow to a norm of 0 on small shots.
        out.update({suffixed(k, name, i): v for k, v in gradient_errors(g.double(), refs[name].double()).items()})
    return out


def reference_label(case: dict) -> str:
    return "deepwave · device" if case["contender"] == "deepwave" else f"{case['impl']} · full"


def run_cases(cases: list[dict], setup: str, workdir: str, repeat: int, threads: int,
              progress: Callable[[dict, dict], None]) -> list[dict]:
    """One row per case (in order), each case run ``repeat`` times in fresh processes, rounds interleaved.

    Every case's reference (see :func:`reference_label`) must be among ``cases``; ``progress(case, run)``
    is called after each run. A case with a ``skip`` reason is not run (its row says why); one that did not
    fit (its child's status ``'does not fit'``: the memory guard or a peer's own estimate refused it) is not
    tried again in later rounds. On Ctrl-C the running case's process is stopped and
    :class:`CasesInterrupted` carries the rows of the cases that finished a run."""
    runs: list[list[dict]] = [[] for _ in cases]
    grads: dict[int, str] = {}
    try:
        for r in range(repeat):
            for i, case in enumerate(cases):
                if case.get("skip") or (r and runs[i] and runs[i][-1]["status"] == "does not fit"):
                    if not runs[i]:  # not run at all (said once), or not again where it did not fit
                        runs[i].append(dict(status="skipped", error=case["skip"]))
                    progress(case, runs[i][-1])
                    continue
                run, grad = _run_child(setup, case, workdir, i, threads)
                runs[i].append(run)
                if grad is not None:
                    grads[i] = grad
                progress(case, run)
    except KeyboardInterrupt:
        raise CasesInterrupted(_rows(cases, runs, grads), sum(map(len, runs))) from None
    return _rows(cases, runs, grads)


def _rows(cases: list[dict], runs: list[list[dict]], grads: dict[int, str]) -> list[dict]:
    """The rows of the cases with at least one run: median time, largest peak, errors against the reference."""
    index = {c["label"]: i for i, c in enumerate(cases)}
    references: dict[int, torch.Tensor] = {}  # loaded once, however many cases compare with it
    rows = []
    for i, case in enumerate(cases):
        if not runs[i]:
            continue
        ok = [r for r in runs[i] if r["status"] == "ok"]
        failed = [r for r in runs[i] if r["status"] == "failed"]
        # A row that was not run ("skipped": no back-end, no peer) or did not fit ("does not fit": the
        # memory guard, or a peer's own estimate, refused it) says why.
        row = dict(ok[-1] if ok else failed[-1] if failed else runs[i][-1], label=case["label"],
                   contender=case["contender"], impl=case.get("impl"), value=case.get("value"))
        row.update(err_whole=None, err_below10=None, err_pointwise=None)
        if failed:
            row.update(status="failed", error=failed[-1]["error"])
        if ok:
            row["all_seconds"] = [r["seconds"] for r in ok]
            row["seconds"] = statistics.median(row["all_seconds"])
            row["peak_rss_mib"] = max(r["peak_rss_mib"] for r in ok)
            ref = index.get(reference_label(case))
            if ref is not None and ref in grads and i in grads:
                if ref not in references:
                    references[ref] = torch.load(grads[ref])
                row.update(model_errors(torch.load(grads[i]), references[ref]))
        rows.append(row)
    return rows


def machine_info(device: str, threads: int) -> dict:
    """What the numbers were measured on."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        sweep_version = version("sweep-fwi")
    except PackageNotFoundError:
        sweep_version = None
    here = os.path.dirname(os.path.abspath(__file__))
    git = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    info = dict(cpu=cpu, cores=os.cpu_count(), threads=threads, device=device, torch=torch.__version__,
                sweep=sweep_version, git=git.stdout.strip() if git.returncode == 0 else None,
                python=platform.python_version(), platform=platform.platform(), load=list(os.getloadavg()),
                omp={k: v for k, v in os.environ.items() if k.startswith(("OMP_", "GOMP_", "KMP_"))})
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info
