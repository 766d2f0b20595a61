"""What ``sweep-bench --equation acoustic3d`` (and ``vrz3d``) prints and writes: per grid a table
(:func:`sweep.bench.report.table`), strategies-GRID.png (:func:`sweep.bench.plots.plot_strategies`) and
tradeoff-GRID.png (peak memory against time, :func:`sweep.bench.tradeoff.plot_tradeoff`); results.json
and results.md; the bench's wall time."""
from __future__ import annotations

import os

from ..equations.sampling import MIN_POINTS_PER_WAVELENGTH
from .report import interrupted_line, save_results, table

LEGEND = ("Peak: process memory above the case's baseline (VmHWM) on a CPU, torch.cuda.max_memory_allocated on a "
          "GPU; tracked: the most bytes the strategy held at once (memory_report); predicted: estimate_memory's "
          "tracked peak, made in the case's process before it ran; device/host/disk: stored MiB (on a CPU "
          "'device' is the CPU's memory); errors: the velocity gradient's difference from full storage of the "
          "same back-end (relative L2 over the whole grid and below depth index 10, and max |dg| / max |g|). "
          "'does not fit': the memory guard refused the call before it allocated anything (or, for Deepwave, "
          "its own estimate with headroom did not fit what was available, and its disk mode more than half the "
          "free disk); the row shows the predicted bytes, so on a machine where they fit the row runs.")
VRZ_NOTE = ("Variable density (--equation vrz3d): AcousticVRZ3D with models vp (m/s) and z = density x vp "
            "(kg m^-2 s^-1), the density from Gardner's relation 310 vp^0.25 kg/m^3 (1000 in the water) of the true "
            "and of the smooth vp; the errors of the vp gradient are the 'vp ...' columns, of the z gradient the "
            "'z ...' ones ('rows>=10': below depth index 10).")
PEER_NOTE = ("Deepwave rows: deepwave.scalar with the same grid, order, absorbing width, time step and shot; "
             "its source scaling differs from sweep's, so its misfit is against its own data of the true model and "
             "its errors are from 'deepwave · device'; its predicted MiB is deepwave.estimate_memory's stored "
             "history (a lower bound by its documentation); it has no memory report, so tracked and stored are '-'.")


def grid_title(setup: dict, machine: dict) -> str:
    shape = "x".join(map(str, setup["shape"]))
    padded = "x".join(map(str, setup["padded_shape"]))
    return (f"layered 3-D model {shape} ({padded} padded) at {setup['dh']:g} m, nt={setup['nt']} x "
            f"{setup['dt'] * 1e3:g} ms, {setup['freq']:g} Hz Ricker, space order {setup['space_order']}, "
            f"{setup['abcn']} absorbing cells, 1 shot at {setup['source']} ([x, y, z]), {setup['nrec']} receivers; "
            f"device {setup['device']}, {setup['threads']} threads, {machine['cpu']}, torch {machine['torch']}, "
            f"sweep {machine['sweep']} ({machine['git'] or 'no git'}), load {machine['load'][0]:.2f}")


def vrz_stability(setup: dict) -> str:
    """What a vrz3d grid's title adds: its models' stable time step and the sub-stepping it needed, if any."""
    ratio = setup["substep"]
    return (f"; the density's stable dt {setup['max_stable_dt'] * 1e3:.3g} ms: "
            + (f"stepped at dt / {ratio} inside (substep={ratio})" if ratio else "no sub-stepping"))


def sampling_line(setup: dict) -> str:
    points = setup["points_per_wavelength"]
    line = (f"{points:.1f} grid points per shortest wavelength (up to {setup['fmax']:.3g} Hz in {setup['vmin']:g} "
            "m/s)")
    if points < MIN_POINTS_PER_WAVELENGTH:
        line += f", below the {MIN_POINTS_PER_WAVELENGTH:g} under which sweep warns of dispersion"
    return line


def write_outputs3d(out: str, result: dict, echo: bool = True) -> None:
    """results.json, results.md and the figures of a 3-D ``result``; with ``echo``, the tables on stdout."""
    from .plots import plot_strategies
    from .tradeoff import plot_tradeoff

    say = print if echo else (lambda *_: None)
    machine = result["machine"]
    vrz = result.get("equation") == "vrz3d"
    md = [f"# sweep-bench: 3-D {'variable-density acoustic (VRZ)' if vrz else 'acoustic'}\n"]
    if result.get("interrupted"):
        md.append(interrupted_line(result))
    md.append((LEGEND.replace("the velocity gradient's difference", "each model gradient's difference") if vrz
               else LEGEND) + "\n")
    if vrz:
        md.append(VRZ_NOTE + "\n")
    if any(r["contender"] == "deepwave" for g in result["grids"] for r in g["rows"]):
        md.append(PEER_NOTE + "\n")
    for entry in result["grids"]:
        setup, rows, name = entry["setup"], entry["rows"], entry["name"]
        title = grid_title(setup, machine) + (vrz_stability(setup) if vrz else "")
        say(f"\n{name}: {title}\n{sampling_line(setup)}")
        md.append(f"## {name}\n\n{title}; {sampling_line(setup)}; {entry['wall_seconds'] or 0:.0f} s for this grid.\n")
        if not rows:
            continue
        device = setup["device"]
        models = tuple(setup.get("models", ("vp",)))
        say(table(rows, device=device, models=models))
        part = dict(setup=setup, rows=rows)
        plot_strategies(part, os.path.join(out, f"strategies-{name}.png"))
        plot_tradeoff(part, os.path.join(out, f"tradeoff-{name}.png"))
        md += [table(rows, markdown=True, device=device, models=models),
               f"\n![strategies, {name}](strategies-{name}.png)\n",
               f"![trade-off, {name}: peak memory against time](tradeoff-{name}.png)\n"]
    wall = result.get("wall_seconds")
    if wall is not None:
        line = f"wall time of the whole bench: {wall:.1f} s ({wall / 60:.1f} min)"
        say(f"\n{line}")
        md.append(f"\n{line[0].upper()}{line[1:]}.\n")
    save_results(out, result, "\n".join(md))
    say(f"results in {out}/ (results.json, results.md, figures)")
