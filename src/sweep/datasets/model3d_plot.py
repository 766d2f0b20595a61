"""Figure of :func:`sweep.datasets.layered_3d`: a depth slice, an inline and a crossline section of the
true and smooth models.

``python -m sweep.datasets.model3d_plot [PATH] [--shape NZ NY NX] [--dh DH]`` writes it (default
``docs/datasets/model3d.png``, shape (64, 96, 96) at 25 m). Drawn on a :class:`matplotlib.figure.Figure`
with an explicit Agg canvas, so matplotlib's global backend is never changed.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .model3d import layered_3d

DEFAULT_PATH = Path("docs") / "datasets" / "model3d.png"


def slice_panels(shape: tuple[int, int, int], km: float, cuts: tuple[int, int, int]) -> list[tuple]:
    """The three sections of a (nz, ny, nx) model through cells ``cuts = (iz, iy, ix)`` at ``km`` km per
    cell: ``[(take, extent, xlabel, ylabel, title, lines)]`` for the depth slice, the inline (x-z) and the
    crossline (y-z) section; ``take(model)`` cuts a model, ``extent`` is imshow's (km), ``lines`` mark
    where the other two sections cut (``('h' or 'v', km)``)."""
    nz, ny, nx = shape
    iz, iy, ix = cuts
    zmax, ymax, xmax = (nz - 0.5) * km, (ny - 0.5) * km, (nx - 0.5) * km
    lo = -0.5 * km
    return [
        (lambda m: m[iz], (lo, xmax, ymax, lo), "x (km)", "y (km)", f"depth slice z = {iz * km:.2f} km",
         [("h", iy * km), ("v", ix * km)]),
        (lambda m: m[:, iy], (lo, xmax, zmax, lo), "x (km)", "depth (km)", f"inline y = {iy * km:.2f} km",
         [("h", iz * km), ("v", ix * km)]),
        (lambda m: m[:, :, ix], (lo, ymax, zmax, lo), "y (km)", "depth (km)", f"crossline x = {ix * km:.2f} km",
         [("h", iz * km), ("v", iy * km)]),
    ]


def plot_layered_3d(path: str | os.PathLike = DEFAULT_PATH, shape: tuple[int, int, int] = (64, 96, 96),
                    dh: float = 25.0) -> Path:
    """Write a PNG of ``layered_3d(shape, dh)`` true (top row) and smooth (bottom row) models.

    Columns: the depth slice through the salt's centre (0.68 of the depth), the inline (x-z) section
    at mid y and the crossline (y-z) section through the salt (x = 0.30 of the width); dashed lines mark
    where the other two cut. Axes in km, one colour scale for all panels.

    Returns
    -------
    pathlib.Path
        ``path``; its parent folders are created.
    """
    true = layered_3d(shape, dh, "true")
    smooth = layered_3d(shape, dh, "smooth")
    nz, ny, nx = true.shape
    km = dh / 1000.0
    iz, iy, ix = int(round(0.68 * nz)), ny // 2, int(round(0.30 * nx))
    panels = slice_panels((nz, ny, nx), km, (iz, iy, ix))
    fig = Figure(figsize=(11.0, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3, width_ratios=[nx, nx, ny])
    image = None
    for row, (name, model) in enumerate([("true", true), ("smooth", smooth)]):
        for ax, (cut, extent, xlabel, ylabel, title, lines) in zip(axes[row], panels):
            image = ax.imshow(cut(model), extent=extent, vmin=1500.0, vmax=4500.0, cmap="turbo",
                              aspect="equal", interpolation="nearest")
            for direction, at in lines:
                line = ax.axhline if direction == "h" else ax.axvline
                line(at, color="white", linestyle="--", linewidth=0.7)
            ax.set_title(f"{name}: {title}", fontsize=9)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
    fig.colorbar(image, ax=axes, label="vp (m/s)", shrink=0.8)
    fig.suptitle(f"layered_3d(shape={tuple(shape)}, dh={dh:g})", fontsize=10)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=90)
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m sweep.datasets.model3d_plot", description=__doc__)
    parser.add_argument("path", nargs="?", default=str(DEFAULT_PATH), help="output PNG")
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 96, 96], metavar=("NZ", "NY", "NX"))
    parser.add_argument("--dh", type=float, default=25.0, help="grid spacing in m")
    args = parser.parse_args(argv)
    out = plot_layered_3d(args.path, tuple(args.shape), args.dh)
    print(out)
    return out


if __name__ == "__main__":
    main()
