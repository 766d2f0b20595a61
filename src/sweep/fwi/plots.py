"""Summary figure of an inversion: velocity models and the loss curve.

Drawn on :class:`matplotlib.figure.Figure` with an explicit Agg canvas, so importing or calling this
module never changes matplotlib's global backend or pyplot state.
"""
from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..messages import plain
from .atomic import replacing

ArrayLike = np.ndarray | torch.Tensor


_AXES = {2: "(nz, nx)", 3: "(nz, ny, nx)"}


def _as_model(name: str, model: ArrayLike, ndims: tuple[int, ...] = (2,)) -> np.ndarray:
    """``model`` as a float64 array with one of ``ndims`` axes."""
    axes = " or ".join(_AXES[d] for d in ndims)
    if isinstance(model, torch.Tensor):
        model = model.detach().to(device="cpu", dtype=torch.float64).numpy()
    elif not isinstance(model, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or torch.Tensor {axes}, got {type(model).__name__}")
    if model.ndim not in ndims:
        raise ValueError(f"{name} must have shape {axes}, got shape {model.shape}")
    return np.asarray(model, dtype=np.float64)


def plot_losses(ax, losses: np.ndarray, edges: Sequence[int]) -> None:
    """The loss per iteration on a log axis, a dashed line where each new frequency band starts."""
    ax.plot(np.arange(losses.size), losses, color="tab:blue", marker="." if losses.size < 50 else None)
    ax.set_yscale("log", nonpositive="mask")
    for i, edge in enumerate(edges):
        ax.axvline(edge, color="gray", linestyle="--", linewidth=1, label="new band" if i == 0 else None)
    if edges:
        ax.legend(loc="upper right")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")


def model_error(model: ArrayLike, true: ArrayLike) -> float:
    """Relative L2 model error ``||model - true|| / ||true||`` (dimensionless).

    Parameters
    ----------
    model, true : numpy.ndarray or torch.Tensor, (nz, nx) or (nz, ny, nx)
        Velocity models in the same units, same shape; ``true`` not all zero.
    """
    m, t = _as_model("model", model, (2, 3)), _as_model("true", true, (2, 3))
    if m.shape != t.shape:
        raise ValueError(f"model and true must have the same shape, got model {m.shape} and true {t.shape}")
    norm = np.linalg.norm(t)
    if norm == 0:
        raise ValueError("true must not be all zero (the error is relative to its norm)")
    return float(np.linalg.norm(m - t) / norm)


def _model_rows(prefix: str, true: ArrayLike | None, start: ArrayLike,
                inverted: ArrayLike) -> list[tuple[str, np.ndarray]]:
    """[(title, model), ...] of one parameter: true (when known), start, inverted."""
    rows = [(prefix + "start", _as_model(prefix + "start", start)),
            (prefix + "inverted", _as_model(prefix + "inverted", inverted))]
    if true is not None:
        rows.insert(0, (prefix + "true", _as_model(prefix + "true", true)))
    return rows


def plot_inversion(true: ArrayLike | None, start: ArrayLike, inverted: ArrayLike, losses: Sequence[float],
                   dh: float, path: str | os.PathLike, band_edges: Sequence[int] | None = None,
                   title: str | None = None, density: Sequence[ArrayLike | None] | None = None) -> Path:
    """Write a figure of the true, starting and inverted velocity models and the loss curve (and of the
    densities, when a variable-density inversion gives them).

    The models share one colour scale (one colorbar, "vp (m/s)") and are drawn on km axes; the loss is
    drawn against iteration on a log axis (non-positive values are left out), with a dashed vertical
    line where each new frequency band starts.

    Parameters
    ----------
    true : numpy.ndarray or torch.Tensor (nz, nx), or None
        True P-wave velocity in m/s; None when unknown (field data), then only start and inverted are
        drawn.
    start, inverted : numpy.ndarray or torch.Tensor, (nz, nx)
        Starting and final velocity models in m/s, same shape as ``true``.
    losses : sequence of float, (niter,)
        Misfit value of each iteration.
    dh : float
        Grid spacing in m, > 0.
    path : str or os.PathLike
        Output file; the format follows its suffix (PNG when it has none). Parent folders are created.
    band_edges : sequence of int, optional
        Iteration indices (into ``losses``) at which a new frequency band starts.
    title : str, optional
        Figure title.
    density : (true, start, inverted), optional
        Densities (kg/m^3) of the same shape (true may be None), drawn below the velocities on their own
        colour scale, each inverted model's title giving its relative error when the truth is known.

    Returns
    -------
    pathlib.Path
        ``path``, written atomically (a temporary file in the same folder, then ``os.replace``).
    """
    if not isinstance(dh, numbers.Real) or isinstance(dh, bool) or not np.isfinite(dh) or dh <= 0:
        raise ValueError(f"dh must be a positive grid spacing in m, got {plain(dh)!r}")
    groups = [_model_rows("", true, start, inverted)]
    if density is not None:
        if len(density) != 3:
            raise ValueError(f"density must be (true, start, inverted), got {len(density)} items")
        groups.append(_model_rows("density ", *density))
    models = [row for group in groups for row in group]
    shape = models[0][1].shape
    for name, m in models:
        if m.shape != shape:
            raise ValueError(f"{name} must have the same shape as {models[0][0]}, {shape}, got {m.shape}")
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1:
        raise ValueError(f"losses must be a 1-D sequence of loss values, got shape {losses.shape}")
    edges = [] if band_edges is None else list(band_edges)

    nz, nx = shape
    km = dh / 1000.0
    # Cell-centred extent: sample i sits at i * dh.
    extent = (-0.5 * km, (nx - 0.5) * km, (nz - 0.5) * km, -0.5 * km)
    # One row per model at the model's aspect ratio (clamped so thin or tall models stay readable).
    width = 8.0
    row = float(np.clip(0.8 * width * nz / nx, 1.5, 5.0))
    fig = Figure(figsize=(width, row * len(models) + 2.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(models) + 1, 1, height_ratios=[row] * len(models) + [2.3])
    first = 0
    for group, label, cmap in zip(groups, ("vp (m/s)", "density (kg/m^3)"), ("viridis", "cividis")):
        vmin = min(float(np.nanmin(m)) for _, m in group)
        vmax = max(float(np.nanmax(m)) for _, m in group)
        truth = group[0][1] if group[0][0].endswith("true") else None
        group_axes = axes[first:first + len(group)]
        for ax, (name, m) in zip(group_axes, group):
            image = ax.imshow(m, extent=extent, vmin=vmin, vmax=vmax, cmap=cmap, aspect="equal",
                              interpolation="nearest")
            error = "" if truth is None or name.endswith("true") else f" (error {model_error(m, truth):.4f})"
            ax.set_title(name + error)
            ax.set_xlabel("x (km)")
            ax.set_ylabel("depth (km)")
        fig.colorbar(image, ax=list(group_axes), label=label, shrink=0.9)
        first += len(group)

    plot_losses(axes[-1], losses, edges)
    axes[-1].set_title("loss")
    if title is not None:
        fig.suptitle(title)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as f:
        fig.savefig(f, format=out.suffix[1:].lower() or "png", dpi=110)
    return out
