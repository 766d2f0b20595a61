"""What ``sweep-bench`` prints and writes: the tables, results.json, results.md and the figures."""
from __future__ import annotations

import json
import os

from .cases import display_label
from .models import suffixed
from .shot import sampling_note


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else ("0" if x == 0 else format(x, spec))


def _error_columns(models: tuple[str, ...]) -> tuple[list[str], list[tuple[str, str]]]:
    """(headers, (row key, format) pairs) of the gradient columns: the acoustic bench's own for vp alone,
    else RMS and errors of each model's gradient, named ('vp err whole', 'z err rows>=10', ...)."""
    errors = [("err_whole", "err whole"), ("err_below10", "err z>=10"), ("err_pointwise", "pointwise")]
    if models == ("vp",):
        return ["RMS g"] + [h for _, h in errors], [("grad_rms", ".2e")] + [(k, ".1e") for k, _ in errors]
    rows_errors = [(k, h.replace("z>=10", "rows>=10")) for k, h in errors]  # 'z' names a model here
    heads = [f"RMS g {m}" for m in models] + [f"{m} {h}" for m in models for _, h in rows_errors]
    keys = [(suffixed("grad_rms", m, i), ".2e") for i, m in enumerate(models)]
    keys += [(suffixed(k, m, i), ".1e") for i, m in enumerate(models) for k, _ in rows_errors]
    return heads, keys


def table(rows: list[dict], markdown: bool = False, device: str | None = None,
          models: tuple[str, ...] = ("vp",)) -> str:
    """The rows as a fixed-width (or Markdown) table; a failed row says why.

    With ``device`` (the run's), labels are shown as :func:`~sweep.bench.cases.display_label` gives them.
    ``models``: the names of the equation's models, whose gradients' RMS and errors get a column each
    (see :mod:`sweep.bench.models`)."""
    grad_heads, grad_keys = _error_columns(tuple(models))
    head = ["strategy", "fwd+bwd s", "peak MiB", "tracked MiB", "predicted MiB", "device", "host", "disk",
            *grad_heads]
    lines = []
    for r in rows:
        label = display_label(r["label"], device) if device else r["label"]
        label = label if r.get("value") is None else f"{label} [{r['value']}]"
        if r["status"] != "ok":  # failed, or not run: "does not fit" (with its prediction), "skipped" (why)
            lines.append([label, "failed: " + r["error"][:90] if r["status"] == "failed" else
                          r["status"] + ": " + r["error"].removeprefix(r["status"] + ": ")[:160]])
            continue
        s = r.get("stored_mib")
        peak = r.get("cuda_peak_mib") if r.get("cuda_peak_mib") is not None else r.get("peak_rss_mib")
        stored = [_fmt(s.get(k, 0.0), ".2f") if s is not None else "-" for k in ("device", "host", "disk")]
        predicted = (r.get("predicted") or {}).get("tracked_peak_mib")
        lines.append([label, _fmt(r["seconds"], ".2f"), _fmt(peak, ".1f"), _fmt(r.get("tracked_peak_mib"), ".2f"),
                      _fmt(predicted, ".2f"), *stored, *(_fmt(r.get(k), spec) for k, spec in grad_keys)])
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                         ["| " + " | ".join(c + [""] * (len(head) - len(c))) + " |" for c in lines])
    full = [c for c in lines if len(c) == len(head)]
    widths = [max(len(x) for x in col) for col in zip(head, *full)] if full else [len(h) for h in head]
    widths[0] = max(widths[0], *(len(c[0]) for c in lines)) if lines else widths[0]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([fmt(head)] + [fmt(c) if len(c) == len(head) else f"{c[0].ljust(widths[0])}  {c[1]}" for c in lines])


#: What the title says of a ``--equation vrz`` shot.
VRZ_SHOT = " (variable density, VRZ: models vp and z = density x vp)"


def vrz_line(setup: dict) -> str:
    """results.md's line on a ``--equation vrz`` run: its models, back-end and time step's stability."""
    return (f"Variable-density acoustic (AcousticVRZ, impl={setup['impl']!r}): models vp (m/s) and z = density x vp "
            "(kg m^-2 s^-1) with the shipped Marmousi-II density (the smooth density times the smooth vp as the "
            "starting z); both gradients are compared with full storage ('vp ...' and 'z ...' columns; 'rows>=10' "
            f"is below depth index 10). The data's dt = {setup['dt'] * 1e3:g} ms; these models are stable up to "
            f"{setup['max_stable_dt'] * 1e3:.3g} ms: " + ("no sub-stepping." if not setup["substep"] else
                                                          f"every case steps at dt / {setup['substep']} inside "
                                                          f"(substep={setup['substep']}), the data at dt."))


def interrupted_line(result: dict) -> str | None:
    """results.md's line above the tables of a run cut short (``result["interrupted"]``), or None."""
    cut = result.get("interrupted")
    return f"Interrupted after {cut['runs']} of {cut['of']} runs: only the cases that finished are here.\n" if cut else None


def save_results(out: str, result: dict, markdown: str) -> None:
    """``result`` as ``out``/results.json and ``markdown`` as ``out``/results.md."""
    with open(os.path.join(out, "results.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(markdown + "\n")


def write_outputs(out: str, result: dict, echo: bool = True) -> None:
    """results.json, results.md and the figures of ``result`` in ``out``; with ``echo``, the tables on stdout too.

    ``result["interrupted"]`` (``{"runs": done, "of": total}``), when present, says the run was cut short:
    results.md says so above the tables, which hold the cases that finished."""
    from .plots import plot_strategies, plot_sweep
    from .tradeoff import plot_tradeoff

    say = print if echo else (lambda *_: None)
    setup, machine = result["setup"], result["machine"]
    device, models = setup["device"], tuple(setup.get("models", ("vp",)))
    shot = "Marmousi shot" + (VRZ_SHOT if setup.get("equation") == "vrz" else "")
    title = (f"{shot} {setup['shape'][0]}x{setup['shape'][1]}, nt={setup['nt']}, {setup['freq']:g} Hz Ricker, "
             f"device {device}, {setup['threads']} threads, {machine['cpu']}, torch {machine['torch']}, "
             f"sweep {machine['sweep']} ({machine['git'] or 'no git'}), load {machine['load'][0]:.2f}")
    md = [f"# sweep-bench\n\n{title}\n"]
    note = sampling_note(setup)
    if note:  # once, above the tables: what the grid means for their numbers
        say(note)
        md.append(note[0].upper() + note[1:] + ".\n")
    if result.get("interrupted"):
        md.append(interrupted_line(result))
    if setup.get("equation") == "vrz":
        md.append(vrz_line(setup) + "\n")
    md.append("Peak: process memory above the case's baseline (VmHWM) on a CPU, torch.cuda.max_memory_allocated on "
              "a GPU; tracked: the most bytes the strategy held at once (memory_report); device/host/disk: stored "
              "MiB; errors: relative to full storage of the same back-end." +
              ("" if device.startswith("cuda") else " 'bdy device' is the notebook's 'bdy gpu' (storage='gpu': "
                                                    "the compute device's memory), here the CPU's.") + "\n")
    if result["rows"]:
        say(table(result["rows"], device=device, models=models))
        plot_strategies(result, os.path.join(out, "strategies.png"))
        plot_tradeoff(result, os.path.join(out, "tradeoff.png"))
        md += [table(result["rows"], markdown=True, device=device, models=models), "\n![strategies](strategies.png)\n",
               "![trade-off: peak memory against time](tradeoff.png)\n"]
    for sweep in result["sweeps"]:
        say(f"\nsweep {sweep['knob']} = {sweep['values']}" + (f"  ({sweep['inert']})" if sweep["inert"] else ""))
        say(table(sweep["rows"], device=device))
        md += [f"## {sweep['knob']} = {', '.join(map(str, sweep['values']))}\n",
               table(sweep["rows"], markdown=True, device=device)]
        if sweep["inert"]:
            md.append(f"\nNot plotted: {sweep['inert']}.\n")
        elif plot_sweep(dict(sweep, setup=setup), os.path.join(out, f"sweep-{sweep['knob']}.png")):
            md.append(f"\n![{sweep['knob']}](sweep-{sweep['knob']}.png)\n")
    save_results(out, result, "\n".join(md))
    say(f"\nresults in {out}/ (results.json, results.md, figures)")
