"""What ``sweep-bench`` prints and writes: the tables, results.json, results.md and the figures."""
from __future__ import annotations

import json
import os

from .cases import display_label
from .shot import sampling_note


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else ("0" if x == 0 else format(x, spec))


def table(rows: list[dict], markdown: bool = False, device: str | None = None) -> str:
    """The rows as a fixed-width (or Markdown) table; a failed row says why.

    With ``device`` (the run's), labels are shown as :func:`~sweep.bench.cases.display_label` gives them."""
    head = ["strategy", "fwd+bwd s", "peak MiB", "tracked MiB", "predicted MiB", "device", "host", "disk", "RMS g",
            "err whole", "err z>=10", "pointwise"]
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
                      _fmt(predicted, ".2f"), *stored, _fmt(r.get("grad_rms"), ".2e"), _fmt(r["err_whole"], ".1e"),
                      _fmt(r["err_below10"], ".1e"), _fmt(r["err_pointwise"], ".1e")])
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                         ["| " + " | ".join(c + [""] * (len(head) - len(c))) + " |" for c in lines])
    full = [c for c in lines if len(c) == len(head)]
    widths = [max(len(x) for x in col) for col in zip(head, *full)] if full else [len(h) for h in head]
    widths[0] = max(widths[0], *(len(c[0]) for c in lines)) if lines else widths[0]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([fmt(head)] + [fmt(c) if len(c) == len(head) else f"{c[0].ljust(widths[0])}  {c[1]}" for c in lines])


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
    device = setup["device"]
    title = (f"Marmousi shot {setup['shape'][0]}x{setup['shape'][1]}, nt={setup['nt']}, {setup['freq']:g} Hz Ricker, "
             f"device {device}, {setup['threads']} threads, {machine['cpu']}, torch {machine['torch']}, "
             f"sweep {machine['sweep']} ({machine['git'] or 'no git'}), load {machine['load'][0]:.2f}")
    md = [f"# sweep-bench\n\n{title}\n"]
    note = sampling_note(setup)
    if note:  # once, above the tables: what the grid means for their numbers
        say(note)
        md.append(note[0].upper() + note[1:] + ".\n")
    if result.get("interrupted"):
        md.append(interrupted_line(result))
    md.append("Peak: process memory above the case's baseline (VmHWM) on a CPU, torch.cuda.max_memory_allocated on "
              "a GPU; tracked: the most bytes the strategy held at once (memory_report); device/host/disk: stored "
              "MiB; errors: relative to full storage of the same back-end." +
              ("" if device.startswith("cuda") else " 'bdy device' is the notebook's 'bdy gpu' (storage='gpu': "
                                                    "the compute device's memory), here the CPU's.") + "\n")
    if result["rows"]:
        say(table(result["rows"], device=device))
        plot_strategies(result, os.path.join(out, "strategies.png"))
        plot_tradeoff(result, os.path.join(out, "tradeoff.png"))
        md += [table(result["rows"], markdown=True, device=device), "\n![strategies](strategies.png)\n",
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
