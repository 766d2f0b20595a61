"""The trade-off figure: each strategy's peak memory against its forward + backward time, on log axes.

One point per strategy, coloured by its gradient's difference from full storage (the larger of vp's and
z's for the variable-density bench; exact ones, difference 0, are black-edged stars), with the Pareto
front (the strategies no other one beats in both memory and time) drawn as a staircase and its labels
in bold. Labels sit next to their points where they overlap nothing, in columns with leader lines beside
a crowd of points; a large crowd (the compiled back-end's boundary-saving variants, within a factor 1.5
in time) is drawn again, zoomed, in a second panel.
"""
from __future__ import annotations

import math

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox

from .cases import display_label
from .models import suffixed
from .plots import _failed, _peak, _save, _title, model_names, plain_log_ticks

PEAK_AXIS = {"cuda": "peak GPU memory, MiB (torch.cuda.max_memory_allocated)",
             "rss": "peak process memory above baseline, MiB (VmHWM)"}
# Label offsets from a point on its own, in marker radii: the nearest free one is taken, the directions in
# this order. Points closer than CROWD marker radii have their labels in columns beside their crowd.
RINGS = (1.7, 2.8, 4.2, 6.0)
CROWD = 3.0
# Columns start GAP marker radii beyond their crowd, so that every label in them has a visible leader line;
# a label keeps KEEP_OUT marker radii from every point but its own.
GAP = 4.5
KEEP_OUT = 2.5
DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1))
MARKER_PX = 6.0
CMAP = "viridis"
# A crowd of ZOOM_MIN or more points closer than ZOOM_REACH of the panel's height to their neighbours is
# drawn again, zoomed, in a second panel (ASPECT: the overview panel's width over its height).
ZOOM_MIN, ZOOM_REACH, ASPECT = 6, 0.07, 1.6


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points that no other point dominates, by increasing first coordinate.

    Parameters
    ----------
    points : list of (time, memory)
        Smaller is better in both.

    Returns
    -------
    list of int
        A point is dominated when another is no worse in both coordinates and better in one; equal points
        do not dominate each other, so both stay.
    """
    order = sorted(range(len(points)), key=lambda i: points[i])
    front: list[int] = []
    best = math.inf  # the least memory among the faster points seen so far
    for i in order:
        t, m = points[i]
        if m < best or (front and tuple(points[front[-1]]) == (t, m)):
            front.append(i)
            best = min(best, m)
    return front


def _short(label: str, device: str) -> str:
    """A point's label: the table's, without its separators."""
    return display_label(label, device).replace(" · ", " ")


class _Labels:
    """Places the labels of a scatter's points in display coordinates, once the figure is laid out.

    Points within CROWD marker radii of each other (by chains) form a crowd, whose labels go in columns
    beside it (:meth:`columns`); a point on its own has its label at the nearest free offset of RINGS x
    DIRECTIONS (:meth:`alone`). A label is free where it stays inside the axes and overlaps no label placed
    before, nothing in ``avoid`` and no other point's keep-out box (KEEP_OUT marker radii), so that it
    never sits beside a point it does not belong to; where nothing is free, the least overlapping place."""

    def __init__(self, fig: Figure, ax, xy: list[tuple[float, float]], texts: list[str], bold: set[int],
                 avoid: list[Bbox]) -> None:
        renderer = fig.canvas.get_renderer()
        self.fig, self.ax, self.xy, self.texts, self.bold = fig, ax, xy, texts, bold
        self.frame = ax.get_window_extent(renderer)
        self.centres = ax.transData.transform(xy) if xy else []
        self.r = MARKER_PX * fig.dpi / 72
        k = KEEP_OUT * self.r
        self.marks = [Bbox.from_extents(x - k, y - k, x + k, y + k) for x, y in self.centres]
        self.taken = list(avoid)
        self.sizes = []
        for i, text in enumerate(texts):
            probe = ax.text(0, 0, text, fontsize=8, fontweight="bold" if i in bold else "normal")
            box = probe.get_window_extent(renderer)
            probe.remove()
            self.sizes.append((box.width, box.height))

    def place(self) -> None:
        """Points on their own beside their markers first, crowds in columns, then the rest on their own."""
        crowds = _crowds(self.centres, CROWD * self.r)
        alone = sorted((c[0] for c in crowds if len(c) == 1), key=lambda k: (k not in self.bold, -self.xy[k][1]))
        rest = [i for i in alone if not self.alone(i, RINGS[:1])]
        for crowd in sorted((c for c in crowds if len(c) > 1), key=len, reverse=True):
            self.columns(crowd)
        for i in rest:
            self.alone(i, RINGS, force=True)

    def clash(self, box: Bbox, own: int) -> float:
        """How much of ``box`` (the label of point ``own``) overlaps what it must not; inf outside the axes."""
        if not (self.frame.x0 <= box.x0 and box.x1 <= self.frame.x1 and self.frame.y0 <= box.y0
                and box.y1 <= self.frame.y1):
            return math.inf
        return (sum(_area(box, b) for b in self.taken) +
                sum(_area(box, m) for j, m in enumerate(self.marks) if j != own))

    def alone(self, i: int, rings: tuple[float, ...], force: bool = False) -> bool:
        """Point ``i``'s label at the nearest free offset on ``rings``, with a leader line beyond the first
        ring of RINGS; with ``force``, at the least overlapping one when none is free. Whether it was placed."""
        r, (w, h) = self.r, self.sizes[i]
        best = None
        for ring in rings:
            for dx, dy in DIRECTIONS:
                box = _box(self.centres[i], dx * ring * r, dy * ring * r, dx, dy, w, h)
                clash = self.clash(box, i)
                if best is None or clash < best[0]:
                    best = (clash, ring, dx, dy, box)
            if best[0] == 0:
                break
        if best[0] > 0 and not force:
            return False
        _, ring, dx, dy, box = best
        self.taken.append(box)
        self.annotate(i, (dx * ring * r, dy * ring * r), dx, dy, ring != RINGS[0])
        return True

    def columns(self, crowd: list[int]) -> None:
        """The ``crowd``'s labels in a column left and one right of it, each label on the side its leader
        line passes fewer points and labels on (the nearer side when equal), each column in the order
        of the points' heights, spread apart and moved outwards from GAP marker radii beyond the crowd
        until it is free (to the other side if the axes end first); leader lines join them to their points."""
        c, r = self.centres, self.r

        def crossed(i: int, side: int) -> float:
            """What a level leader line from point i to a column on that side would pass: points (1 each)
            and labels already placed (2 each, a line through text reads worse) within 1.5 radii of its
            height, up to the column's far edge."""
            near = (min if side < 0 else max)(c[j][0] for j in crowd) + side * (GAP * r + self.sizes[i][0])
            lo, hi = sorted((c[i][0], near))
            band = Bbox.from_extents(lo, c[i][1] - 1.5 * r, hi, c[i][1] + 1.5 * r)
            return (sum(1 for j, p in enumerate(c) if j != i and band.contains(*p)) +
                    2 * sum(1 for b in self.taken if band.overlaps(b)))

        by_x = sorted(crowd, key=lambda i: c[i][0])
        left = [i for k, i in enumerate(by_x) if (crossed(i, -1), k >= len(by_x) / 2) < (crossed(i, 1), k < len(by_x) / 2)]
        for side, members in ((-1, left), (1, [i for i in by_x if i not in left])):
            if not members:
                continue
            members.sort(key=lambda i: c[i][1])
            ys = _spread([c[i][1] for i in members], [self.sizes[i][1] + 2 for i in members], self.frame.y0, self.frame.y1)
            best = None
            for way in (side, -side):
                edge = (min if way < 0 else max)(c[i][0] for i in crowd) + way * GAP * r
                while self.frame.x0 <= edge <= self.frame.x1:  # step outwards until free or out of the axes
                    boxes = [_box((edge, y), 0, 0, way, 0, *self.sizes[i]) for i, y in zip(members, ys)]
                    clash = sum(self.clash(b, i) for b, i in zip(boxes, members))
                    if best is None or clash < best[0]:
                        best = (clash, way, edge, boxes)
                    if clash == 0:
                        break
                    edge += way * r / 2
                if best is not None and best[0] == 0:
                    break
            if best is None:  # the crowd spans the axes, no column starts inside them: at its own edge then
                edge = (min if side < 0 else max)(c[i][0] for i in crowd) + side * GAP * r
                best = (0, side, edge, [_box((edge, y), 0, 0, side, 0, *self.sizes[i]) for i, y in zip(members, ys)])
            _, way, edge, boxes = best
            self.taken += boxes
            for i, y in zip(members, ys):
                self.annotate(i, (edge - c[i][0], y - c[i][1]), way, 0, True)

    def annotate(self, i: int, offset_px: tuple[float, float], dx: int, dy: int, leader: bool) -> None:
        """Point ``i``'s label at ``offset_px`` from it, aligned away from it, with a leader line or not."""
        pt = 72 / self.fig.dpi
        self.ax.annotate(self.texts[i], self.xy[i], xytext=(offset_px[0] * pt, offset_px[1] * pt),
                         textcoords="offset points", ha="left" if dx > 0 else "right" if dx < 0 else "center",
                         va="bottom" if dy > 0 else "top" if dy < 0 else "center", fontsize=8,
                         fontweight="bold" if i in self.bold else "normal",
                         arrowprops=dict(arrowstyle="-", color="0.55", lw=0.6, shrinkA=1, shrinkB=self.r * pt)
                         if leader else None)


def _crowds(centres, reach: float) -> list[list[int]]:
    """The points grouped by chains of neighbours closer than ``reach`` (display px)."""
    group = list(range(len(centres)))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for i in range(len(centres)):
        for j in range(i):
            if math.dist(centres[i], centres[j]) < reach:
                group[root(i)] = root(j)
    crowds: dict[int, list[int]] = {}
    for i in range(len(centres)):
        crowds.setdefault(root(i), []).append(i)
    return list(crowds.values())


def _spread(centres: list[float], heights: list[float], lo: float, hi: float) -> list[float]:
    """Positions as near ``centres`` (ascending) as lets boxes of ``heights`` not overlap within [lo, hi]."""
    pos = list(centres)
    for k in range(1, len(pos)):
        pos[k] = max(pos[k], pos[k - 1] + (heights[k - 1] + heights[k]) / 2)
    shift = min(0.0, hi - (pos[-1] + heights[-1] / 2))  # pushed past the top: move the column down
    pos = [p + shift for p in pos]
    for k in range(len(pos) - 2, -1, -1):
        pos[k] = min(pos[k], pos[k + 1] - (heights[k] + heights[k + 1]) / 2)
    return [max(p, lo + h / 2) for p, h in zip(pos, heights)]


def _box(centre, ox: float, oy: float, dx: int, dy: int, w: float, h: float) -> Bbox:
    """The display box of a ``w`` x ``h`` label at ``(ox, oy)`` px from ``centre``, aligned away from it."""
    x0 = centre[0] + ox - (w if dx < 0 else w / 2 if dx == 0 else 0)
    y0 = centre[1] + oy - (h if dy < 0 else h / 2 if dy == 0 else 0)
    return Bbox.from_bounds(x0, y0, w, h)


def _area(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _limits(points: list[tuple[float, float]], parts: tuple[float, float]) -> tuple[tuple[float, float], ...]:
    """Log-axis limits around ``points`` with room for labels: ``parts`` of each axis's log span (at least
    a factor 1.25) on each side."""
    out = []
    for axis, part in zip(zip(*points), parts):
        lo, hi = min(axis), max(axis)
        pad = max((hi / lo) ** part, 1.25)
        out.append((lo / pad, hi * pad))
    return tuple(out)


def _zoomed(xy: list[tuple[float, float]], limits) -> list[int]:
    """The largest crowd of at least ZOOM_MIN points, closer than ZOOM_REACH of the panel to their
    neighbours on the log axes of ``limits`` (for a panel of the overview's aspect): drawn again, zoomed."""
    spans = [math.log(hi / lo) for lo, hi in limits]
    flat = [(math.log(x / limits[0][0]) / spans[0] * ASPECT, math.log(y / limits[1][0]) / spans[1]) for x, y in xy]
    crowd = max(_crowds(flat, ZOOM_REACH), key=len, default=[])
    return crowd if len(crowd) >= ZOOM_MIN else []


def _draw(ax, xy: list[tuple[float, float]], errs: list[float | None], front: list[int], norm, limits) -> None:
    """The points (coloured by error, exact ones starred), the Pareto front, log axes within ``limits``."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    if front:
        ax.step([xy[i][0] for i in front], [xy[i][1] for i in front], where="post", color="0.35", lw=1.2,
                ls="--", zorder=1, label="Pareto front: no strategy both faster and smaller")
    lossy = [(p, e) for p, e in zip(xy, errs) if e is not None and e > 0]
    if lossy:
        ax.scatter([p[0] for p, _ in lossy], [p[1] for p, _ in lossy], c=[e for _, e in lossy], norm=norm,
                   cmap=CMAP, s=70, edgecolors="0.2", linewidths=0.6, zorder=3)
    exact = [p for p, e in zip(xy, errs) if e == 0]
    if exact:
        ax.scatter(*zip(*exact), marker="*", s=260, facecolors="white", edgecolors="black", linewidths=1.3,
                   zorder=4, label="exact: the full-storage gradient to the bit")
    unknown = [p for p, e in zip(xy, errs) if e is None]
    if unknown:
        ax.scatter(*zip(*unknown), marker="X", s=70, color="0.6", zorder=3, label="no reference to compare with")
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    for axis, (lo, hi) in zip((ax.xaxis, ax.yaxis), limits):
        plain_log_ticks(axis, lo, hi)
    ax.grid(which="both", alpha=0.25)
    ax.set_xlabel("forward + backward time, s")


#: Refused rows whose predicted needs differ by less than this factor share one level in the figure.
SAME_LEVEL = 1.15


def _size(mib: float) -> str:
    return f"{mib / 1024:,.1f} GiB" if mib >= 1024 else f"{mib:,.1f} MiB"


def _unfit(rows: list[dict], device: str) -> list[tuple[str, float, float | None]]:
    """(labels, predicted MiB in memory, MiB available then) of the rows refused for want of memory, rows
    whose needs are within :data:`SAME_LEVEL` of each other sharing one level (their labels joined). A row
    refused for its disk need alone has no level here: its memory need fitted (the table says why)."""
    found = []
    for r in rows:
        needed, have = r.get("needed_mib") or {}, r.get("available_mib") or {}
        short = [p for p in ("device", "host") if needed.get(p) and (have.get(p) is None or needed[p] > have[p])]
        if r.get("status") == "does not fit" and short:
            place = max(short, key=needed.get)
            found.append((_short(r["label"], device), needed[place], have.get(place)))
    out: list[tuple[str, float, float | None]] = []
    for text, mib, have in sorted(found, key=lambda f: f[1]):
        if out and mib <= out[-1][1] * SAME_LEVEL:
            out[-1] = (f"{out[-1][0]}, {text}", mib, out[-1][2])
        else:
            out.append((text, mib, have))
    return out


def _label(fig: Figure, ax, xy: list[tuple[float, float]], texts: list[str], front: list[int], shown: list[int],
           avoid: list) -> None:
    """Label the points ``shown`` on ``ax``, keeping off the artists in ``avoid`` and the Pareto front's steps."""
    avoid = [a.get_window_extent() for a in avoid]
    corners = ax.transData.transform([xy[i] for i in front]) if front else []
    for (x0, y0), (x1, y1) in zip(corners, corners[1:]):  # the front's steps: across, then down
        avoid += [Bbox.from_extents(x0, y0 - 2, x1, y0 + 2), Bbox.from_extents(x1 - 2, y1, x1 + 2, y0)]
    _Labels(fig, ax, [xy[i] for i in shown], [texts[i] for i in shown],
            {k for k, i in enumerate(shown) if i in front}, avoid).place()


def _worst(errors: list[float | None]) -> float | None:
    """The largest of a row's model-gradient errors (None when none has a reference)."""
    known = [e for e in errors if e is not None]
    return max(known) if known else None


def tradeoff_figure(result: dict) -> Figure:
    """The trade-off figure of ``result`` (see :func:`plot_tradeoff`)."""
    setup = result.get("setup") or {}
    device = str(setup.get("device") or "cuda")
    rows = [r for r in result.get("rows", []) if not _failed(r) and (r.get("seconds") or 0) > 0
            and (_peak(r) or 0) > 0]
    xy = [(r["seconds"], _peak(r)) for r in rows]
    models = model_names(setup)
    errs = [_worst([r.get(suffixed("err_whole", m, i)) for i, m in enumerate(models)]) for r in rows]
    texts = [_short(r["label"], device) for r in rows]
    front = pareto_front(xy)
    limits = _limits(xy, (0.2, 0.08)) if xy else ((0.1, 10.0), (1.0, 100.0))
    unfit = _unfit(result.get("rows", []), device)
    if unfit:  # rows the memory guard refused: a level each at their predicted need, and what was available
        levels = [v for _, mib, have in unfit for v in (mib, have) if v]
        limits = (limits[0], (min(limits[1][0], min(levels) / 1.6), max(limits[1][1], max(levels) * 1.6)))
    zoom = _zoomed(xy, limits)
    fig = Figure(figsize=(19, 7.5) if zoom else (12, 7.5), layout="constrained")
    FigureCanvasAgg(fig)  # a renderer to measure the labels with
    axes = list(fig.subplots(1, 2, width_ratios=(1.5, 1))) if zoom else [fig.subplots()]
    positive = [e for e in errs if e is not None and e > 0]
    lo, hi = (min(positive), max(positive)) if positive else (1e-6, 1e-3)
    norm = LogNorm(lo / 3, hi * 3) if lo == hi else LogNorm(lo, hi)
    inner = _limits([xy[i] for i in zoom], (0.3, 0.12)) if zoom else None
    for ax, box in zip(axes, (limits, inner)):
        _draw(ax, xy, errs, front, norm, box)
    for k, (text, mib, have) in enumerate(unfit):
        axes[0].axhline(mib, color="tab:red", ls=":", lw=1.2, zorder=1)
        upto = "up to " if ", " in text else ""  # a shared level: the largest need of its rows
        axes[0].annotate(f"{text}: does not fit, predicted {upto}{_size(mib)}", (0.01, mib), va="bottom",
                         xycoords=("axes fraction", "data"), fontsize=8, color="tab:red")
        if have and k == 0:
            axes[0].axhline(have, color="0.5", ls="-.", lw=1, zorder=1)
            axes[0].annotate(f"available when refused: {_size(have)}", (0.99, have), va="bottom", ha="right",
                             xycoords=("axes fraction", "data"), fontsize=8, color="0.4")
    if positive:
        which = "" if len(models) == 1 else f", the larger of {' and '.join(models)}'s"
        fig.colorbar(ScalarMappable(norm, CMAP), ax=axes,
                     label=f"gradient difference from full storage (relative L2{which})")
    axes[0].set_ylabel(PEAK_AXIS.get(setup.get("peak_kind"), "peak memory, MiB"))
    title = _title(setup)
    axes[0].set_title("peak memory against time, one point per strategy" + (f": {title}" if title else ""), loc="left")
    avoid = []
    if zoom:
        (x0, x1), (y0, y1) = inner
        axes[0].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="0.5", lw=1, zorder=2))
        avoid.append(axes[0].annotate("zoomed on the right", (x0, y1), xytext=(0, 2), textcoords="offset points",
                                      va="bottom", fontsize=8, color="0.4"))
        axes[1].set_title("the grey box, zoomed", loc="left")
    handles, names = axes[0].get_legend_handles_labels()
    if handles:  # below the panels, where it hides no point
        fig.legend(handles, names, loc="outside lower center", ncols=len(handles), fontsize=9)
    fig.canvas.draw()  # lay the figure out once, then keep it: labels are placed in display coordinates
    fig.set_layout_engine("none")
    inside = [i for i in range(len(xy)) if inner and all(a <= v <= b for v, (a, b) in zip(xy[i], inner))]
    _label(fig, axes[0], xy, texts, front, [i for i in range(len(xy)) if i not in inside], avoid)
    if zoom:
        _label(fig, axes[1], xy, texts, front, inside, [])
    return fig


def plot_tradeoff(result: dict, path: str) -> str:
    """Write the trade-off figure as a PNG.

    Parameters
    ----------
    result : dict
        ``{"setup": {...}, "rows": [...]}`` as for :func:`sweep.bench.plots.plot_strategies`: rows use
        ``label``, ``status``, ``seconds``, ``cuda_peak_mib`` / ``peak_rss_mib`` and ``err_whole`` (with
        ``setup['models']``, a point is coloured by the largest of its models' ``err_whole[_NAME]``); failed
        rows and rows without a positive time or peak are left out. ``setup['device']`` decides the
        labels ('bdy device' rather than 'bdy gpu' off a GPU).
    path : str
        Where to write the PNG.

    Returns
    -------
    str
        ``path``.
    """
    return _save(tradeoff_figure(result), path)
