"""The padded computational grid: a physical grid of any dimension surrounded by C-PML absorbing cells.

Shared by every back-end so that they discretise exactly the same problem. Axes are in array order:
``(nz, nx)`` in 2-D, ``(nz, ny, nx)`` in 3-D, axis 0 being depth; a free surface replaces the layer
before axis 0 (the top).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PML_REFLECTION = 1e-4
"""Theoretical normal-incidence reflection coefficient the damping profile is designed for."""
PML_POWER = 2
"""Polynomial order of the damping profile d(s) = d0 * s**PML_POWER, s in (0, 1] across the layer."""

AXIS_NAMES = {2: ("z", "x"), 3: ("z", "y", "x")}
"""Names of the axes of a grid of each dimension, in array order."""
FACE_NAMES = {"z": ("top", "bottom"), "y": ("front", "back"), "x": ("left", "right")}
"""The faces (before, after) across each axis."""


@dataclass(frozen=True)
class PaddedGrid:
    """Layout of the padded grid.

    Parameters
    ----------
    shape : tuple of int
        Physical grid shape, ``(nz, nx)`` or ``(nz, ny, nx)`` (cells; axis 0 is depth).
    abcn : int
        Absorbing (C-PML) cells on each face; none on top when ``free_surface``.
    free_surface : bool
        Pressure-release top: the wavefield is held at zero on the cells above row 0.
    """

    shape: tuple[int, ...]
    abcn: int
    free_surface: bool

    def __post_init__(self) -> None:
        if len(self.shape) not in AXIS_NAMES:
            raise ValueError(f"a grid has {sorted(AXIS_NAMES)} axes, got shape {self.shape}")
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def axes(self) -> tuple[str, ...]:
        """Axis names in array order: ``('z', 'x')`` or ``('z', 'y', 'x')``."""
        return AXIS_NAMES[self.ndim]

    @property
    def pad(self) -> tuple[tuple[int, int], ...]:
        """Absorbing cells (before, after) along each axis."""
        top = 0 if self.free_surface else self.abcn
        return ((top, self.abcn),) + ((self.abcn, self.abcn),) * (self.ndim - 1)

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """Shape of the padded grid (physical cells plus the absorbing layers)."""
        return tuple(n + a + b for n, (a, b) in zip(self.shape, self.pad))

    @property
    def physical(self) -> tuple[slice, ...]:
        """Per-axis slices of the physical cells within the padded grid."""
        return tuple(slice(a, a + n) for n, (a, _) in zip(self.shape, self.pad))

    @property
    def absorbing_faces(self) -> dict[str, bool]:
        """Which faces of the physical grid touch an absorbing layer (none when ``abcn == 0``; not the
        top with a free surface, where the cells above row 0 are held at zero), in axis order."""
        out = {}
        for axis, (before, after) in zip(self.axes, self.pad):
            out[FACE_NAMES[axis][0]], out[FACE_NAMES[axis][1]] = before > 0, after > 0
        return out

    def _inside(self, width: int) -> tuple[slice, ...]:
        """Per-axis slices of the physical cells farther than ``width`` from every absorbing face."""
        faces = self.absorbing_faces
        out = []
        for axis, n in zip(self.axes, self.shape):
            before, after = (width * faces[f] for f in FACE_NAMES[axis])
            out.append(slice(before, max(before, n - after)))
        return tuple(out)

    def thinnest_axis(self, width: int) -> str | None:
        """The first axis too thin for strips of ``width`` cells on each of its absorbing faces (fewer cells
        than those strips need), or None."""
        faces = self.absorbing_faces
        for axis, n in zip(self.axes, self.shape):
            if n < width * sum(faces[f] for f in FACE_NAMES[axis]):
                return axis
        return None

    def strip_cells(self, width: int) -> np.ndarray:
        """Flat C-order indices (ascending, int64) of the physical cells within ``width`` cells of an
        absorbing face: the cells boundary saving stores every step for a stencil of half-width
        ``width``. Every other physical cell's stencil reads physical cells (or the zero cells above a
        free surface) only, so the wavefield there can be rebuilt backwards in time without the layer."""
        inside = np.zeros(self.shape, dtype=bool)
        inside[self._inside(width)] = True
        return np.flatnonzero(~inside).astype(np.int64)

    def strip_segments(self, width: int) -> dict[str, np.ndarray]:
        """The strip of :meth:`strip_cells` cut into one segment per absorbing face, for codecs that want
        arrays: ``{face: (width, *face_shape) int64}`` of positions in the strip vector; ``[k, ...]`` is
        layer ``k`` counted from the face (0: the cells next to the absorbing layer). The faces across
        axis ``a`` span the whole grid along later axes and the cells between the earlier axes' faces,
        so every strip position is in exactly one segment. Faces in ``absorbing_faces`` order; a face
        whose segment would be empty is left out.

        Raises
        ------
        ValueError
            The grid is thinner than ``2 * width`` cells across an absorbing axis.
        """
        faces = self.absorbing_faces
        cells = self.strip_cells(width)
        pos = np.full(math.prod(self.shape), -1, dtype=np.int64)
        pos[cells] = np.arange(cells.size, dtype=np.int64)
        pos = pos.reshape(self.shape)
        if width and (thin := self.thinnest_axis(width)) is not None:
            raise ValueError(f"grid {self.shape} is too small for strips of {width} cells on each absorbing face "
                             f"(axis {thin})")
        inside = self._inside(width)
        out = {}
        for a, axis in enumerate(self.axes):
            window = tuple(inside[b] if b < a else slice(None) for b in range(self.ndim))
            block = np.moveaxis(pos[window], a, 0)
            for face, part in zip(FACE_NAMES[axis], (block, block[::-1])):
                if faces[face] and width and part[:width].size:
                    out[face] = np.ascontiguousarray(part[:width])
        assert all((seg >= 0).all() for seg in out.values())
        return out

    def pad_model(self, model: np.ndarray) -> np.ndarray:
        """Edge-replicate a ``(..., *shape)`` array to the padded shape (the fixed PML extension)."""
        widths = [(0, 0)] * (model.ndim - self.ndim) + list(self.pad)
        return np.pad(model, widths, mode="edge")

    def pml_profiles(self, vmax: float, dh: float, dt: float, pml_freq: float) -> dict[str, np.ndarray]:
        """C-PML recursive-convolution coefficients ``a<axis>``, ``b<axis>`` along each axis (the padded
        length of that axis), e.g. ``az``, ``bz``, ``ax``, ``bx`` in 2-D.

        For the memory variables ``psi <- b * psi + a * d(.)``; ``a = 0``, ``b = 1`` is no absorption.
        Damping ``d = d0 s^2`` with ``d0 = 3 vmax ln(1/R) / (2 L)``, frequency shift
        ``alpha = pi pml_freq (1 - s)``, ``b = exp(-(d + alpha) dt)``, ``a = d (b - 1) / (d + alpha)``.
        """
        out = {}
        for axis, (before, after), n in zip(self.axes, self.pad, self.shape):
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
