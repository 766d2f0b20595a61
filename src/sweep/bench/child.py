"""One ``sweep-bench`` case in a fresh process: ``python -m sweep.bench.child SETUP CASE OUT GRAD``.

Loads the shared set-up (shot, starting model, observed data) written once by the parent, resets the
process's memory high-water mark, runs one forward + MSE backward, and writes its measurements (JSON)
and its model gradients (``torch.save``: vp's alone, or ``{name: gradient}`` for an equation of several
models, :func:`~sweep.bench.models.pack_gradients`). Peak memory: on CUDA ``torch.cuda.max_memory_allocated``;
on Linux the peak resident set (VmHWM) above the case's own baseline, after ``5 > /proc/self/clear_refs``
resets it once imports and data are loaded; elsewhere ``ru_maxrss`` above the baseline RSS (which
includes what loading used: said in ``peak_kind``).
"""
from __future__ import annotations

import json
import resource
import sys
import time
import warnings

import torch

from .models import bench_equation, gradient_rms, pack_gradients, start_models
from .shot import DISPERSION_WARNING

MIB = 2**20


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> tuple[str, int]:
    """(what is measured, baseline in bytes) with the high-water mark reset where the OS allows."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        hwm = _status_kib("VmHWM")
        if hwm is not None:
            return "rss", hwm * 1024
    except OSError:
        pass
    return "ru_maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_since(kind: str, baseline: int) -> int:
    now = _status_kib("VmHWM") * 1024 if kind == "rss" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return now - baseline


def make_propagator(setup: dict, nt: int, device: torch.device, **options):
    """The set-up's propagator: the seed shot's 2-D one (:func:`~sweep.bench.speed.seed_propagator`), or
    :func:`~sweep.bench.shot3d.propagator3d` for a 3-D shot; of the shot's equation either way."""
    if bench_equation(setup["shot"]).ndim == 3:
        from .shot3d import propagator3d

        return propagator3d(setup["shot"], nt, device, **options)
    from .speed import seed_propagator

    return seed_propagator(setup["shot"], nt, device, **options)


def run_sweep(case: dict, setup: dict, device: torch.device) -> tuple[list[torch.Tensor], dict]:
    """(the gradient of every model, in the equation's order; the memory report's numbers) of one forward
    and MSE backward."""
    from .cases import memory_from_dict

    shot = setup["shot"]
    prop = make_propagator(setup, setup["nt"], device, impl=case["impl"], memory=memory_from_dict(case["memory"]))
    models = [torch.nn.Parameter(m) for m in start_models(setup, device)]
    data = prop(shot["wavelet"], shot["sources"], shot["receivers"], models)
    loss = (data - setup["observed"].to(device)).pow(2).mean()
    loss.backward()
    rep = prop.memory_report()
    return [m.grad for m in models], dict(strategy=rep.strategy,
                         stored_mib={k: v / MIB for k, v in rep.bytes_by_location("stored").items()},
                         staging_mib=rep.staging_bytes / MIB, tracked_peak_mib=rep.peak_memory_bytes / MIB,
                         steps=dict(forward=rep.forward_steps, replayed=rep.replayed_steps,
                                    rebuilt=rep.rebuilt_steps, adjoint=rep.adjoint_steps),
                         files=rep.n_files, notes=rep.notes)


def predict_sweep(case: dict, setup: dict, device: torch.device) -> dict:
    """``estimate_memory`` of the case's call (made before the measurement, outside its time and peak)."""
    from .cases import memory_from_dict

    shot = setup["shot"]
    prop = make_propagator(setup, setup["nt"], device, impl=case["impl"], memory=memory_from_dict(case["memory"]))
    models = [m.requires_grad_(True) for m in start_models(setup, device)]
    predicted = prop.estimate_memory(shot["wavelet"], shot["sources"], shot["receivers"], models)
    return dict(stored_mib={k: v / MIB for k, v in predicted.bytes_by_location("stored").items()},
                tracked_peak_mib=predicted.peak_memory_bytes / MIB, process_mib=predicted.process_bytes_estimate / MIB)


def run_peer(case: dict, setup: dict, device: torch.device) -> tuple[torch.Tensor, dict]:
    if setup.get("equation") == "acoustic3d":
        from .peers3d import run_deepwave3d

        grad = run_deepwave3d(case["peer"], setup, device, case["disk_dir"])
        return [grad], dict(strategy=case["label"], stored_mib=None, staging_mib=None, tracked_peak_mib=None,
                          steps=None, files=None)
    from .peers import run_deepwave

    grad = run_deepwave(case["peer"], setup["shot"], setup["vp_start"].to(device), setup["observed"].to(device),
                        case["disk_dir"])
    return [grad], dict(strategy=case["label"], stored_mib=None, staging_mib=None, tracked_peak_mib=None, steps=None,
                      files=None)


def warm_up(case: dict, setup: dict, device: torch.device) -> None:
    """Pay one-off costs (library loading, thread pools, Deepwave's own observed data) before timing."""
    shot = setup["shot"]
    if case["contender"] == "deepwave" and setup.get("equation") == "acoustic3d":
        from .shot3d import deepwave_call3d

        with torch.no_grad():
            deepwave_call3d(shot, 2, setup["vp_start"].to(device))
        return
    if case["contender"] == "deepwave":
        from .peers import deepwave_observed

        deepwave_observed(shot, setup["nt"], device)
        return
    with torch.no_grad():
        make_propagator(setup, 2, device, impl=case["impl"])(shot["wavelet"][:2], shot["sources"], shot["receivers"],
                                                             start_models(setup, device))


def does_not_fit(predicted: dict | None, needed: dict[str, int], available: dict[str, int], why: str) -> dict:
    """The measurements of a case that was not run because its prediction does not fit: ``needed`` and
    ``available`` bytes by place ('host', 'device', 'disk'), in MiB in the row."""
    places = ", ".join(f"{p} {needed[p] / 2**30:,.2f} GiB" + (f" of {available[p] / 2**30:,.2f} GiB available"
                                                               if p in available else "") for p in needed)
    return dict(status="does not fit", error=f"does not fit: predicted {places} ({why})", predicted=predicted,
                needed_mib={p: n / MIB for p, n in needed.items()},
                available_mib={p: n / MIB for p, n in available.items()}, seconds=None, peak_rss_mib=None,
                stored_mib=None, tracked_peak_mib=None)


def main(argv: list[str]) -> None:
    from ..memory import InsufficientMemoryError

    setup_path, case_path, out_path, grad_path = argv
    # The parent says once when the grid is under 5 points per wavelength (shot.sampling_note).
    warnings.filterwarnings("ignore", message=DISPERSION_WARNING)
    warnings.filterwarnings("ignore", message="pinned_memory=True has no effect")
    with open(case_path) as fh:
        case = json.load(fh)
    setup = torch.load(setup_path, weights_only=False)
    torch.set_num_threads(setup["threads"])
    device = torch.device(setup["device"])
    cuda = device.type == "cuda"
    peer3d = case["contender"] == "deepwave" and setup.get("equation") == "acoustic3d"
    if peer3d:  # Deepwave has no guard: its own estimate against what is available, before anything runs
        from .peers3d import check_peer3d

        refusal = check_peer3d(case, setup, device)
        if refusal is not None:
            with open(out_path, "w") as fh:
                json.dump(refusal, fh)
            return
    warm_up(case, setup, device)
    predicted = predict_sweep(case, setup, device) if case["contender"] == "sweep" else None
    kind, baseline = reset_peak()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    names = bench_equation(setup["shot"]).models
    t0 = time.perf_counter()
    try:
        grads, info = (run_peer if case["contender"] == "deepwave" else run_sweep)(case, setup, device)
    except InsufficientMemoryError as exc:  # the memory guard refused the call before it allocated
        info = does_not_fit(predicted, exc.needed, {p: a.nbytes for p, a in exc.available.items()},
                            "the memory guard refused the call")
        info["guard"] = str(exc)
        with open(out_path, "w") as fh:
            json.dump(info, fh)
        return
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    info.update(seconds=seconds, predicted=predicted, peak_kind="cuda" if cuda else kind,
                cuda_peak_mib=torch.cuda.max_memory_allocated(device) / MIB if cuda else None,
                peak_rss_mib=peak_since(kind, baseline) / MIB, **gradient_rms(grads, names))
    if peer3d:
        from .peers3d import peer_prediction

        info["predicted"] = peer_prediction(case, setup, device)
    torch.save(pack_gradients(grads, names), grad_path)
    with open(out_path, "w") as fh:
        json.dump(info, fh)


if __name__ == "__main__":
    main(sys.argv[1:])
