"""PNG figures of the benchmark results (the seed notebook's section 5 comparison, and knob sweeps).

The figures are drawn on :class:`matplotlib.figure.Figure` with an explicit Agg canvas, so importing or
calling this module never changes matplotlib's global backend.
"""
from __future__ import annotations

import math
import numbers
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LOCATION_COLOURS = {"device": "tab:blue", "host": "tab:orange", "disk": "tab:green"}
PEAK_TITLES = {"cuda": "peak GPU memory (torch.cuda.max_memory_allocated)",
               "rss": "peak process memory above baseline (VmHWM)"}


def _peak(row: dict) -> float | None:
    """The row's measured peak in MiB: CUDA's when there is one, else the process's."""
    value = row.get("cuda_peak_mib")
    return row.get("peak_rss_mib") if value is None else value


def _failed(row: dict) -> bool:
    return row.get("status") == "failed"


def _title(setup: dict) -> str:
    """``"{nz}x{nx}, nt={nt}, {device}, {threads} threads"`` from whichever of those ``setup`` holds."""
    parts = []
    shape = setup.get("shape")
    if shape is not None and len(shape) >= 2:
        parts.append(f"{shape[0]}x{shape[1]}")
    if setup.get("nt") is not None:
        parts.append(f"nt={setup['nt']}")
    if setup.get("device") is not None:
        parts.append(str(setup["device"]))
    if setup.get("threads") is not None:
        parts.append(f"{setup['threads']} threads")
    return ", ".join(parts)


def _save(fig: Figure, path: str) -> str:
    FigureCanvasAgg(fig)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _note(ax, y: float, text: str, colour: str = "dimgray") -> None:
    """``text`` at the left edge of the panel (axes x, data y), where a bar would start."""
    ax.text(0.005, y, text, transform=ax.get_yaxis_transform(), va="center", ha="left",
            fontsize=8, color=colour)


def _linear_bars(ax, values: list[float | None], fmt: str, skip: list[bool]) -> None:
    """Horizontal bars with value labels; ``None`` values are marked "n/a", skipped rows get nothing."""
    top = max([v for v, s in zip(values, skip) if v is not None and not s] + [0.0])
    for y, (v, s) in enumerate(zip(values, skip)):
        if s:
            continue
        if v is None:
            _note(ax, y, "n/a")
            continue
        ax.barh(y, v, color="tab:blue", height=0.7)
        ax.text(v + 0.01 * (top or 1.0), y, fmt % v, va="center", fontsize=8)
    ax.set_xlim(0, 1.18 * top if top > 0 else 1.0)


def plot_strategies(result: dict, path: str) -> str:
    """Write the four-panel comparison of memory strategies as a PNG.

    Parameters
    ----------
    result : dict
        ``{"setup": {...}, "rows": [...]}``. ``setup`` may hold ``shape``, ``nt``, ``device``,
        ``threads`` (figure title) and ``peak_kind`` ('cuda' or 'rss', panel (a)'s title). Each row
        uses ``label``, ``status`` ('failed' marks a failed run, with ``error``), ``cuda_peak_mib`` /
        ``peak_rss_mib``, ``stored_mib`` (MiB by 'device'/'host'/'disk', or None), ``seconds`` and
        ``err_whole`` (relative L2 gradient difference from full storage, or None).
    path : str
        Where to write the PNG.

    Returns
    -------
    str
        ``path``.
    """
    rows = list(result.get("rows", []))
    setup = result.get("setup") or {}
    n = max(len(rows), 1)
    labels = [str(r.get("label", f"row {i}")) for i, r in enumerate(rows)]
    failed = [_failed(r) for r in rows]
    fig = Figure(figsize=(13, 4 * (0.3 * n + 1.3)), layout="constrained")
    axes = fig.subplots(4, 1)
    for ax in axes:
        ax.set_yticks(range(len(rows)), labels, fontsize=9)
        ax.set_ylim(n - 0.5, -0.5)  # first row on top
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    for y, row in enumerate(rows):
        if failed[y]:
            _note(axes[0], y, "failed: " + str(row.get("error") or "")[:60], "tab:red")
            for ax in axes[1:]:
                _note(ax, y, "failed", "tab:red")

    # (a) measured peak
    _linear_bars(axes[0], [_peak(r) for r in rows], "%.1f MiB", failed)
    kind = setup.get("peak_kind")
    axes[0].set_title("(a) " + PEAK_TITLES.get(kind, "peak memory"), loc="left")
    axes[0].set_xlabel("MiB")

    # (b) stored footprint by location
    ax = axes[1]
    totals = [sum((r.get("stored_mib") or {}).values()) for r in rows]
    top = max([t for t, f in zip(totals, failed) if not f] + [0.0])
    shown = set()
    for y, row in enumerate(rows):
        if failed[y]:
            continue
        stored = row.get("stored_mib")
        if stored is None:
            _note(ax, y, "n/a")
            continue
        left = 0.0
        for loc, colour in LOCATION_COLOURS.items():
            mib = stored.get(loc, 0.0) or 0.0
            if mib > 0:
                ax.barh(y, mib, left=left, color=colour, height=0.7, label=None if loc in shown else loc)
                shown.add(loc)
                left += mib
        ax.text(totals[y] + 0.01 * (top or 1.0), y, f"{totals[y]:.1f} MiB", va="center", fontsize=8)
    ax.set_xlim(0, 1.18 * top if top > 0 else 1.0)
    ax.set_title("(b) stored footprint by location (memory_report)", loc="left")
    ax.set_xlabel("MiB")
    if shown:
        ax.legend(loc="best", fontsize=8)

    # (c) wall time
    _linear_bars(axes[2], [r.get("seconds") for r in rows], "%.2f s", failed)
    axes[2].set_title("(c) wall time, forward + backward", loc="left")
    axes[2].set_xlabel("s")

    # (d) gradient difference on a log axis
    ax = axes[3]
    errs = [r.get("err_whole") for r in rows]
    positive = [e for e, f in zip(errs, failed) if not f and e is not None and e > 0 and math.isfinite(e)]
    lo = 10.0 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1e-8
    hi = 10.0 ** (math.ceil(math.log10(max(positive))) + 1) if positive else 1.0
    ax.set_xscale("log")
    for y, e in enumerate(errs):
        if failed[y]:
            continue
        if e is None:
            _note(ax, y, "n/a")
        elif e == 0.0:
            _note(ax, y, "0 (bit-identical)", "tab:green")
        else:
            ax.barh(y, e - lo, left=lo, color="tab:purple", height=0.7)
            ax.text(e * 1.15, y, f"{e:.1e}", va="center", fontsize=8)
    ax.set_xlim(lo, hi)
    ax.set_title("(d) velocity-gradient difference from full storage (relative L2, whole grid)", loc="left")
    ax.set_xlabel("relative L2 difference")

    title = _title(setup)
    fig.suptitle("memory strategies" + (f": {title}" if title else ""), fontsize=13)
    return _save(fig, path)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def plot_sweep(sweep: dict, path: str) -> str | None:
    """Write wall time and memory against one knob's values as a PNG, one line per strategy label.

    Parameters
    ----------
    sweep : dict
        ``{"knob": str, "values": [...], "rows": [...], "inert": str | None}`` (optionally ``setup``
        as in :func:`plot_strategies`). Rows are :func:`plot_strategies` rows plus ``value`` (the knob
        value) and ``label``; they use ``seconds``, ``tracked_peak_mib`` and ``cuda_peak_mib`` /
        ``peak_rss_mib``. Failed rows (``status == 'failed'``) are skipped. Values that are not all
        numbers are placed at categorical positions in the order of ``values``.
    path : str
        Where to write the PNG.

    Returns
    -------
    str or None
        ``path``, or None (nothing written) when ``sweep["inert"]`` is a string: the knob does
        nothing on this device.
    """
    if isinstance(sweep.get("inert"), str):
        return None
    knob = str(sweep.get("knob", "value"))
    rows = [r for r in sweep.get("rows", []) if not _failed(r)]
    values = list(sweep.get("values") or dict.fromkeys(r.get("value") for r in rows))
    numeric = bool(values) and all(_is_number(v) for v in values)
    if numeric:
        def position(v):
            return float(v) if _is_number(v) else None
    else:
        index = {str(v): i for i, v in enumerate(values)}

        def position(v):
            return index.get(str(v))

    fig = Figure(figsize=(13, 5), layout="constrained")
    ax_t, ax_m = fig.subplots(1, 2)
    colours = [f"C{i}" for i in range(10)]
    for i, label in enumerate(dict.fromkeys(str(r.get("label", "")) for r in rows)):
        mine = [(position(r.get("value")), r) for r in rows if str(r.get("label", "")) == label]
        mine = sorted(((x, r) for x, r in mine if x is not None), key=lambda p: p[0])
        colour = colours[i % len(colours)]

        def series(key):
            pts = [(x, key(r)) for x, r in mine if key(r) is not None]
            return [p[0] for p in pts], [p[1] for p in pts]

        ax_t.plot(*series(lambda r: r.get("seconds")), "o-", color=colour, label=label)
        ax_m.plot(*series(lambda r: r.get("tracked_peak_mib")), "o-", color=colour, label=f"{label}: tracked peak")
        ax_m.plot(*series(_peak), "s--", color=colour, label=f"{label}: measured peak")

    ticks = [float(v) for v in values] if numeric else list(range(len(values)))
    spread = numeric and min(ticks) > 0 and max(ticks) / min(ticks) >= 50
    for ax in (ax_t, ax_m):
        if spread:
            ax.set_xscale("log")
        ax.set_xticks(ticks, [str(v) for v in values])
        ax.minorticks_off()
        if not numeric:
            ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_xlabel(knob)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    ax_t.set_ylabel("wall time (s)")
    ax_t.set_title("wall time, forward + backward", loc="left")
    ax_m.set_ylabel("MiB")
    ax_m.set_title("memory: tracked peak (solid), measured peak (dashed)", loc="left")
    if rows:
        ax_t.legend(fontsize=8)
        ax_m.legend(fontsize=7)
    title = _title(sweep.get("setup") or {})
    fig.suptitle(f"sweep of {knob}" + (f": {title}" if title else ""), fontsize=13)
    return _save(fig, path)
