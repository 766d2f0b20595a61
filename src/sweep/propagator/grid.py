"""The padded computational grid: physical (nz, nx) surrounded by C-PML absorbing cells.

Shared by every back-end so that they discretise exactly the same problem.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PML_REFLECTION = 1e-4
"""Theoretical normal-incidence reflection coefficient the damping profile is designed for."""
PML_POWER = 2
"""Polynomial order of the damping profile d(s) = d0 * s**PML_POWER, s in (0, 1] across the layer."""


@dataclass(frozen=True)
class PaddedGrid:
    """Layout of the padded grid.

    Parameters
    ----------
    nz, nx : int
        Physical grid shape (rows = depth, columns = distance).
    abcn : int
        Absorbing (C-PML) cells on each side; none on top when ``free_surface``.
    free_surface : bool
        Pressure-release top: the wavefield is held at zero on the rows above row 0.
    radius : int
        Stencil half-width (cells); the grid is surrounded by that many zero-valued halo cells.
    """

    nz: int
    nx: int
    abcn: int
    free_surface: bool
    radius: int

    @property
    def top(self) -> int:
        return 0 if self.free_surface else self.abcn

    @property
    def bottom(self) -> int:
        return self.abcn

    @property
    def left(self) -> int:
        return self.abcn

    @property
    def right(self) -> int:
        return self.abcn

    @property
    def shape(self) -> tuple[int, int]:
        """Padded (NZ, NX), halo not included."""
        return self.nz + self.top + self.bottom, self.nx + self.left + self.right

    @property
    def absorbing_edges(self) -> dict[str, bool]:
        """Which edges of the physical grid touch an absorbing layer (none when ``abcn == 0``; not the
        top with a free surface, where the rows above row 0 are held at zero)."""
        return {"top": self.top > 0, "bottom": self.bottom > 0, "left": self.left > 0, "right": self.right > 0}

    def strip_cells(self) -> np.ndarray:
        """Flat indices ``i * nx + j`` (ascending, int64) of the physical cells within ``radius`` of an
        absorbing edge: the cells boundary saving stores every step. Their count is
        ``nz*nx - (nz - r*top - r*bottom) * (nx - r*left - r*right)`` (edges as in ``absorbing_edges``).
        Every other physical cell's stencil reads physical cells (or the zero rows above a free
        surface) only, so the wavefield there can be rebuilt backwards in time without the layer."""
        r, e = self.radius, self.absorbing_edges
        inside = np.zeros((self.nz, self.nx), dtype=bool)
        inside[r * e["top"]:self.nz - r * e["bottom"], r * e["left"]:self.nx - r * e["right"]] = True
        return np.flatnonzero(~inside).astype(np.int64)

    def strip_segments(self) -> dict[str, np.ndarray]:
        """The strip cut into one segment per absorbing edge, for codecs that want 2-D/3-D arrays:
        ``{edge: (r, L) int64}`` of positions in the strip vector (the order of :meth:`strip_cells`);
        ``[k, j]`` is layer ``k`` counted from the edge (0: the cells next to the absorbing layer) at
        position ``j`` along it (increasing row or column). ``'top'``/``'bottom'`` span the full width;
        ``'left'``/``'right'`` the rows between them, so every strip position is in exactly one segment.
        Edges in ``absorbing_edges`` order; an edge whose segment would be empty is left out."""
        r, e = self.radius, self.absorbing_edges
        cells = self.strip_cells()
        pos = np.full(self.nz * self.nx, -1, dtype=np.int64)
        pos[cells] = np.arange(cells.size, dtype=np.int64)
        pos = pos.reshape(self.nz, self.nx)
        z0, z1 = r * e["top"], self.nz - r * e["bottom"]
        x0, x1 = r * e["left"], self.nx - r * e["right"]
        if r and (z1 < z0 or x1 < x0):
            raise ValueError(f"grid {self.nz} x {self.nx} is too small for strips of {r} cells on each absorbing edge")
        parts = {"top": pos[:r, :], "bottom": pos[::-1][:r, :],
                 "left": pos[z0:z1, :r].T, "right": pos[z0:z1, ::-1][:, :r].T}
        out = {edge: np.ascontiguousarray(parts[edge]) for edge, on in e.items() if on and r and parts[edge].size}
        assert all((seg >= 0).all() for seg in out.values())
        return out

    def pad_model(self, model: np.ndarray) -> np.ndarray:
        """Edge-replicate a (..., nz, nx) array to the padded shape (the fixed PML extension)."""
        widths = [(0, 0)] * (model.ndim - 2) + [(self.top, self.bottom), (self.left, self.right)]
        return np.pad(model, widths, mode="edge")

    def pml_profiles(self, vmax: float, dh: float, dt: float, pml_freq: float) -> dict[str, np.ndarray]:
        """C-PML recursive-convolution coefficients ``a``, ``b`` along z (length NZ) and x (length NX).

        For the memory variables ``psi <- b * psi + a * d(.)``; ``a = 0``, ``b = 1`` is no absorption.
        Damping ``d = d0 s^2`` with ``d0 = 3 vmax ln(1/R) / (2 L)``, frequency shift
        ``alpha = pi pml_freq (1 - s)``, ``b = exp(-(d + alpha) dt)``, ``a = d (b - 1) / (d + alpha)``.
        """
        out = {}
        for axis, (before, after, n) in {"z": (self.top, self.bottom, self.nz), "x": (self.left, self.right, self.nx)}.items():
            s = np.zeros(before + n + after)
            if before:
                s[:before] = np.arange(before, 0, -1) / self.abcn
            if after:
                s[before + n:] = np.arange(1, after + 1) / self.abcn
            a, b = np.zeros_like(s), np.ones_like(s)
            if self.abcn:
                width = self.abcn * dh
                d0 = (PML_POWER + 1) * vmax * math.log(1.0 / PML_REFLECTION) / (2.0 * width)
                inside = s > 0
                d = d0 * s[inside] ** PML_POWER
                alpha = math.pi * pml_freq * (1.0 - s[inside])
                b[inside] = np.exp(-(d + alpha) * dt)
                a[inside] = d * (b[inside] - 1.0) / (d + alpha)
            out[f"a{axis}"], out[f"b{axis}"] = a, b
        return out
