"""Summary figure of a 3-D inversion: a depth slice, an inline (x-z) and a crossline (y-z) section of the
true, starting and inverted models, the loss curve and the model error.

Drawn on :class:`matplotlib.figure.Figure` with an explicit Agg canvas, so importing or calling this
module never changes matplotlib's global backend or pyplot state.
"""
from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..datasets.model3d_plot import slice_panels
from ..messages import plain
from .atomic import replacing
from .plots import ArrayLike, _as_model, plot_losses


def _cut(name: str, value: int | None, n: int) -> int:
    if value is None:
        return n // 2
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < n:
        raise ValueError(f"cuts: {name} must be an index in [0, {n}), got {plain(value)!r}")
    return int(value)


def plot_inversion_3d(true: ArrayLike | None, start: ArrayLike, inverted: ArrayLike, losses: Sequence[float],
                      dh: float, path: str | os.PathLike, errors: Sequence[float] | None = None,
                      cuts: tuple[int | None, int | None, int | None] = (None, None, None),
                      band_edges: Sequence[int] | None = None, title: str | None = None) -> Path:
    """Write a figure of three cuts through the true, starting and inverted 3-D models, with the loss
    curve and the model error below.

    Rows: true (when given), start, inverted. Columns: the depth slice z = ``cuts[0]``, the inline (x-z)
    section y = ``cuts[1]`` and the crossline (y-z) section x = ``cuts[2]``; dashed lines mark where the
    other two cut. One colour scale for all panels ("vp (m/s)"), km axes. Bottom row: the loss against
    iteration on a log axis (non-positive values left out; dashed lines where a new frequency band
    starts), and the relative model error against iteration.

    Parameters
    ----------
    true : numpy.ndarray or torch.Tensor (nz, ny, nx), or None
        True velocity, m/s; None when unknown (then two rows, and no model error unless ``errors``).
    start, inverted : numpy.ndarray or torch.Tensor (nz, ny, nx)
        Starting and final velocities, m/s, the same shape.
    losses : sequence of float (niter,)
        Misfit of each iteration (before its update).
    dh : float
        Grid spacing, m.
    path : str or os.PathLike
        Output file; the format follows its suffix (PNG when it has none). Parent folders are created.
    errors : sequence of float (niter + 1,), optional
        Relative model error of the start (entry 0) and after each iteration; NaN where unknown (the
        iterations of a resumed run that an earlier run made). Default: with ``true``, the start's and
        the inverted model's only.
    cuts : (iz, iy, ix)
        Where to cut; None is the middle of that axis.
    band_edges : sequence of int, optional
        Iterations at which a new frequency band starts.
    title : str, optional

    Returns
    -------
    pathlib.Path
        ``path``, written atomically (a temporary file in the same folder, then ``os.replace``).
    """
    if not isinstance(dh, numbers.Real) or isinstance(dh, bool) or not np.isfinite(dh) or dh <= 0:
        raise ValueError(f"dh must be a positive grid spacing in m, got {plain(dh)!r}")
    models = [("start", _as_model("start", start, (3,))), ("inverted", _as_model("inverted", inverted, (3,)))]
    if true is not None:
        models.insert(0, ("true", _as_model("true", true, (3,))))
    shape = models[0][1].shape
    for name, m in models:
        if m.shape != shape:
            raise ValueError(f"{name} must have the same shape as {models[0][0]}, {shape}, got {m.shape}")
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1:
        raise ValueError(f"losses must be a 1-D sequence of loss values, got shape {losses.shape}")
    if errors is None and true is not None:
        errors = np.full(losses.size + 1, np.nan)
        norm = np.linalg.norm(models[0][1])
        errors[0] = np.linalg.norm(models[1][1] - models[0][1]) / norm
        errors[-1] = np.linalg.norm(models[2][1] - models[0][1]) / norm
    errors = None if errors is None else np.asarray(errors, dtype=np.float64)
    if errors is not None and errors.shape != (losses.size + 1,):
        raise ValueError(f"errors must have one value more than losses ({losses.size + 1}: the start's, then one "
                         f"per iteration), got shape {errors.shape}")
    edges = [] if band_edges is None else list(band_edges)

    nz, ny, nx = shape
    iz, iy, ix = (_cut(n, c, size) for n, c, size in zip(("iz", "iy", "ix"), cuts, shape))
    km = dh / 1000.0
    panels = slice_panels(shape, km, (iz, iy, ix))
    vmin = min(float(np.nanmin(m)) for _, m in models)
    vmax = max(float(np.nanmax(m)) for _, m in models)
    width = 11.0
    row = float(np.clip(width / 3.4 * max(nz, ny) / max(nx, ny), 1.6, 4.0))
    fig = Figure(figsize=(width, row * len(models) + 2.9), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(models) + 1, 3, height_ratios=[row] * len(models) + [2.3],
                            width_ratios=[nx, nx, ny])
    image = None
    model_axes = []
    for r, (name, model) in enumerate(models):
        for c, (cut, extent, xlabel, ylabel, where, lines) in enumerate(panels):
            ax = fig.add_subplot(grid[r, c])
            model_axes.append(ax)
            image = ax.imshow(cut(model), extent=extent, vmin=vmin, vmax=vmax, cmap="viridis", aspect="equal",
                              interpolation="nearest")
            for direction, at in lines:
                (ax.axhline if direction == "h" else ax.axvline)(at, color="white", linestyle="--", linewidth=0.7)
            ax.set_title(f"{name}: {where}", fontsize=9)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
    fig.colorbar(image, ax=model_axes, label="vp (m/s)", shrink=0.85)

    ax = fig.add_subplot(grid[-1, :2] if errors is not None else grid[-1, :])
    plot_losses(ax, losses, edges)
    ax.set_title("loss (before each update)", fontsize=9)
    if errors is not None:
        ax = fig.add_subplot(grid[-1, 2])
        known = np.isfinite(errors)
        steps = np.arange(errors.size)
        ax.plot(steps[known], errors[known], color="tab:red", marker="." if errors.size < 50 else None)
        ax.set_xlabel("iteration")
        ax.set_ylabel("relative L2 error")
        first, last = errors[0], errors[-1]
        ax.set_title(f"model error {first:.4f} -> {last:.4f}" if np.isfinite(first) and np.isfinite(last)
                     else "model error", fontsize=9)
    if title is not None:
        fig.suptitle(title)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as f:
        fig.savefig(f, format=out.suffix[1:].lower() or "png", dpi=100)
    return out
