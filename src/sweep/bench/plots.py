"""PNG figures of the benchmark results (the seed notebook's section 5 comparison, and knob sweeps; the
trade-off figure is in :mod:`sweep.bench.tradeoff`).

The figures are drawn on :class:`matplotlib.figure.Figure` with an explicit Agg canvas, so importing or
calling this module never changes matplotlib's global backend.
"""
from __future__ import annotations

import math
import numbers
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from .cases import display_label
from .models import suffixed

LOCATION_COLOURS = {"device": "tab:blue", "host": "tab:orange", "disk": "tab:green"}
#: Panel (d)'s bar colour of each model's gradient difference, in the equation's model order.
ERROR_COLOURS = ("tab:purple", "tab:orange")
PEAK_TITLES = {"cuda": "peak GPU memory (torch.cuda.max_memory_allocated)",
               "rss": "peak process memory above baseline (VmHWM)"}


def _peak(row: dict) -> float | None:
    """The row's measured peak in MiB: CUDA's when there is one, else the process's."""
    value = row.get("cuda_peak_mib")
    return row.get("peak_rss_mib") if value is None else value


def model_names(setup: dict) -> tuple[str, ...]:
    """The names of the models whose gradients the rows compare (``setup['models']``; vp alone by default)."""
    return tuple(setup.get("models") or ("vp",))


def _failed(row: dict) -> bool:
    """The row has no measurement: it failed, did not fit (the memory guard refused it) or was skipped."""
    return row.get("status") in ("failed", "does not fit", "skipped")


def _why(row: dict, width: int = 60) -> str:
    """What a row without measurements shows in a panel: 'failed: ...', 'does not fit: ...', 'skipped: ...'."""
    status, error = str(row.get("status")), str(row.get("error") or "")
    return f"{status}: {error.removeprefix(status + ': ')}"[:width]


def _title(setup: dict) -> str:
    """``"{nz}x{nx}, nt={nt}, {device}, {threads} threads"`` (``{nz}x{ny}x{nx}`` in 3-D) from whichever of
    those ``setup`` holds."""
    parts = []
    shape = setup.get("shape")
    if shape is not None and len(shape) >= 2:
        parts.append("x".join(str(n) for n in shape))
    if setup.get("nt") is not None:
        parts.append(f"nt={setup['nt']}")
    if setup.get("device") is not None:
        parts.append(str(setup["device"]))
    if setup.get("threads") is not None:
        parts.append(f"{setup['threads']} threads")
    return ", ".join(parts)


def plain_log_ticks(axis, lo: float, hi: float) -> None:
    """Label a log ``axis`` spanning [``lo``, ``hi``] with plain numbers (40 and 0.7 rather than 4 x 10^1
    and 7 x 10^-1): every decade, every minor tick within 6 times, those with leading digit 2, 3 or 5
    within 100 times, no minor tick beyond."""
    def fmt(v: float, _pos) -> str:
        lead = round(v / 10 ** math.floor(math.log10(v) + 1e-9))
        return f"{v:g}" if hi / lo <= 6 or lead in (1, 2, 3, 5) else ""

    axis.set_major_formatter(FuncFormatter(fmt))
    axis.set_minor_formatter(FuncFormatter(fmt) if hi / lo < 100 else NullFormatter())


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


def _predicted_stored(row: dict) -> str | None:
    """'predicted X MiB on device' from a row's prediction (a refused row's, or a peer's own estimate)."""
    stored = (row.get("predicted") or {}).get("stored_mib") or {}
    parts = [f"{mib:,.1f} MiB on {loc}" for loc, mib in stored.items() if mib]
    return "predicted " + " + ".join(parts) if parts else None


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
    """Write the four-panel comparison of memory strategies as a PNG (:func:`strategies_figure`).

    Parameters
    ----------
    result : dict
        ``{"setup": {...}, "rows": [...]}``. ``setup`` may hold ``shape``, ``nt``, ``device``,
        ``threads`` (figure title) and ``peak_kind`` ('cuda' or 'rss', panel (a)'s title). Each row
        uses ``label``, ``status`` ('failed' marks a failed run, with ``error``), ``cuda_peak_mib`` /
        ``peak_rss_mib``, ``stored_mib`` (MiB by 'device'/'host'/'disk', or None), ``seconds`` and
        ``err_whole`` (relative L2 gradient difference from full storage, or None), and with
        ``setup['models']`` (e.g. ``['vp', 'z']``) each further model's ``err_whole_NAME``, drawn beside
        vp's in panel (d). Labels are shown
        as :func:`~sweep.bench.cases.display_label` gives them for ``setup['device']``.
    path : str
        Where to write the PNG.

    Returns
    -------
    str
        ``path``.
    """
    return _save(strategies_figure(result), path)


def strategies_figure(result: dict) -> Figure:
    """The four-panel comparison of ``result`` (see :func:`plot_strategies`)."""
    rows = list(result.get("rows", []))
    setup = result.get("setup") or {}
    n = max(len(rows), 1)
    device = str(setup.get("device") or "cuda")
    labels = [display_label(str(r.get("label", f"row {i}")), device) for i, r in enumerate(rows)]
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
            colour = "tab:red" if row.get("status") == "failed" else "dimgray"
            _note(axes[0], y, _why(row, 90), colour)
            for k, ax in enumerate(axes[1:]):
                guess = _predicted_stored(row) if k == 0 else None
                _note(ax, y, str(row.get("status")) + (f": {guess}" if guess else ""), colour)

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
            guess = _predicted_stored(row)
            _note(ax, y, f"n/a ({guess})" if guess else "n/a")
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

    # (d) gradient difference on a log axis, a bar per model (vp alone for the acoustic bench)
    ax = axes[3]
    models = model_names(setup)
    errs = [[r.get(suffixed("err_whole", m, i)) for r in rows] for i, m in enumerate(models)]
    positive = [e for per in errs for e, f in zip(per, failed)
                if not f and e is not None and e > 0 and math.isfinite(e)]
    lo = 10.0 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1e-8
    hi = 10.0 ** (math.ceil(math.log10(max(positive))) + 1) if positive else 1.0
    ax.set_xscale("log")
    height = 0.7 / len(models)
    for y in range(len(rows)):
        values = [per[y] for per in errs]
        if failed[y]:
            continue
        if all(e is None for e in values):
            _note(ax, y, "n/a")
            continue
        if all(e == 0.0 for e in values):
            _note(ax, y, "0 (bit-identical)", "tab:green")
            continue
        for j, (name, e) in enumerate(zip(models, values)):
            at = y + (j - (len(models) - 1) / 2) * height
            if e is None or e == 0.0:  # one model's, beside another's bar
                _note(ax, at, f"{name}: {'n/a' if e is None else '0 (bit-identical)'}",
                      "dimgray" if e is None else "tab:green")
                continue
            ax.barh(at, e - lo, left=lo, color=ERROR_COLOURS[j % len(ERROR_COLOURS)], height=height,
                    label=name if len(models) > 1 else None)
            ax.text(e * 1.15, at, f"{e:.1e}", va="center", fontsize=8)
    ax.set_xlim(lo, hi)
    if len(models) == 1:
        ax.set_title("(d) velocity-gradient difference from full storage (relative L2, whole grid)", loc="left")
    else:
        ax.set_title(f"(d) gradient differences from full storage, {' and '.join(models)} (relative L2, whole grid)",
                     loc="left")
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles))
        if unique:
            ax.legend(unique.values(), [f"{n} gradient" for n in unique], loc="best", fontsize=8)
    ax.set_xlabel("relative L2 difference")

    title = _title(setup)
    fig.suptitle("memory strategies" + (f": {title}" if title else ""), fontsize=13)
    return fig


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def sweep_figure(sweep: dict) -> Figure | None:
    """The knob-sweep figure of ``sweep`` (see :func:`plot_sweep`), or None for an inert knob."""
    if isinstance(sweep.get("inert"), str):
        return None
    knob = str(sweep.get("knob", "value"))
    device = str((sweep.get("setup") or {}).get("device") or "cuda")
    rows = [r for r in sweep.get("rows", []) if not _failed(r)]
    swept = [r for r in rows if r.get("value") is not None]
    references = [r for r in rows if r.get("value") is None]
    values = list(sweep.get("values") or dict.fromkeys(r["value"] for r in swept))
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
    # (what, panel, line style, legend suffix): tracked peaks solid, measured peaks dashed.
    metrics = ((lambda r: r.get("seconds"), ax_t, "-", ""),
               (lambda r: r.get("tracked_peak_mib"), ax_m, "-", ": tracked peak"),
               (_peak, ax_m, "--", ": measured peak"))
    labels = list(dict.fromkeys(str(r.get("label", "")) for r in swept))
    for i, label in enumerate(labels):
        mine = [(position(r.get("value")), r) for r in swept if str(r.get("label", "")) == label]
        mine = sorted(((x, r) for x, r in mine if x is not None), key=lambda p: p[0])
        shown = display_label(label, device)
        for key, ax, style, suffix in metrics:
            pts = [(x, key(r)) for x, r in mine if key(r) is not None]
            if pts:  # a legend entry only for a line that is drawn
                ax.plot(*zip(*pts), ("s" if style == "--" else "o") + style, color=f"C{i % 10}",
                        label=shown + suffix)
    # References (full storage) have no knob value: one level across the panel, in the legend as such.
    for j, ref in enumerate(references, start=len(labels)):
        shown = display_label(str(ref.get("label", "")), device) + " (reference)"
        for key, ax, style, suffix in metrics:
            if key(ref) is not None:
                ax.axhline(key(ref), color=f"C{j % 10}", ls=style, lw=1.4, label=shown + suffix)

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
        levels = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
        if levels and max(levels) / min(levels) > 20:
            ax.set_yscale("log")  # e.g. full storage's 735 MiB beside boundary strips' 4 MiB
            plain_log_ticks(ax.yaxis, *ax.get_ylim())
        else:
            ax.set_ylim(bottom=0)
        if ax.get_lines():
            ax.legend(fontsize=8 if ax is ax_t else 7)
    ax_t.set_ylabel("wall time (s)")
    ax_t.set_title("wall time, forward + backward", loc="left")
    ax_m.set_ylabel("MiB")
    ax_m.set_title("memory: tracked peak (solid), measured peak (dashed)", loc="left")
    title = _title(sweep.get("setup") or {})
    fig.suptitle(f"sweep of {knob}" + (f": {title}" if title else ""), fontsize=13)
    return fig


def plot_sweep(sweep: dict, path: str) -> str | None:
    """Write wall time and memory against one knob's values as a PNG, one line per strategy label.

    Parameters
    ----------
    sweep : dict
        ``{"knob": str, "values": [...], "rows": [...], "inert": str | None}`` (optionally ``setup``
        as in :func:`plot_strategies`). Rows are :func:`plot_strategies` rows plus ``value`` (the knob
        value) and ``label``; they use ``seconds``, ``tracked_peak_mib`` and ``cuda_peak_mib`` /
        ``peak_rss_mib``. Rows whose ``value`` is None are references (full storage): a horizontal line
        each. Failed rows (``status == 'failed'``) are skipped. Values that are not all numbers are
        placed at categorical positions in the order of ``values``. A memory or time panel whose
        levels span more than 20x has a log axis.
    path : str
        Where to write the PNG.

    Returns
    -------
    str or None
        ``path``, or None (nothing written) when ``sweep["inert"]`` is a string: the knob does
        nothing on this device.
    """
    fig = sweep_figure(sweep)
    return None if fig is None else _save(fig, path)
