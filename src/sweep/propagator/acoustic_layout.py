"""What every back-end of the constant-density acoustic equation shares: the model's coefficient on the
padded grid, the state's fields and the shapes of states, snapshots, strips and rebuild fields (the
stepper protocol's declarations, :mod:`sweep.memory.protocol`), in 2-D and 3-D.

A state is one tensor ``(2 + 2 * ndim, nshots, *padded_shape)``: ``u_prev``, ``u``, then the C-PML
memory variables ``psi`` of every axis and ``zeta`` of every axis, each in reversed axis order
(``psi_x, psi_z, zeta_x, zeta_z`` in 2-D; ``psi_x, psi_y, psi_z, zeta_x, zeta_y, zeta_z`` in 3-D).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..equations.stencils import stencil_radius
from ..memory.protocol import imaged_steps
from .setup import Problem

U_PREV, U = 0, 1


class AcousticLayout:
    """Shapes and fields of one acoustic propagation call, for a stepper of any back-end to inherit.

    Parameters
    ----------
    problem : Problem
        The call's geometry.
    models : sequence of tensor
        ``[vp]``, m/s, the grid's physical shape; only its values are read (no autograd link).
    image_interval : int
        Gradient sampling (the stepper protocol's ``image_interval``): snapshots of the steps
        ``n % image_interval == 0`` only, the model gradient's terms of those steps weighted by it.

    Attributes
    ----------
    vp : tensor, the physical shape, m/s (detached).
    w_padded : tensor, ``padded_shape``: ``v^2 dt^2`` on the padded grid, the model edge-replicated into
        the layer (a fixed extension: no gradient flows through the padding).
    r : int, the stencil half-width; boundary saving's strips are the physical cells within ``r`` of an
        absorbing face.
    """

    def __init__(self, problem: Problem, models: Sequence[torch.Tensor], image_interval: int = 1) -> None:
        self.problem = p = problem
        self.nt = p.nt
        if isinstance(image_interval, bool) or not isinstance(image_interval, int) or image_interval < 1:
            raise ValueError(f"image_interval must be an integer >= 1, got {image_interval!r}")
        self.image_interval = image_interval
        self.grid_ndim = p.grid.ndim  # spatial axes: the last grid_ndim axes of a state are one field
        self.r = stencil_radius(p.space_order)
        self.vp = models[0].detach()
        self.set_coefficients(models)
        self.strip_index = p.grid.strip_cells(self.r)  # (ncells,) int64 flat physical indices
        self.strip_segments = p.grid.strip_segments(self.r)  # {face: (r, *face shape) int64 positions}

    def set_coefficients(self, models: Sequence[torch.Tensor]) -> None:
        """The step's model coefficient on the padded grid: ``w_padded = v^2 dt^2``."""
        self.w_padded = self.padded(self.vp.to(torch.float64) ** 2 * self.problem.dt**2)

    @property
    def update_coefficient(self) -> torch.Tensor:
        """``padded_shape``: what multiplies ``S`` in ``u_next = 2 u - u_prev + (.) S``."""
        return self.w_padded

    def padded(self, coefficient: torch.Tensor) -> torch.Tensor:
        """A float64 ``coefficient`` of the physical grid, edge-replicated to the padded grid (the fixed
        extension into the layers) in the call's dtype and device."""
        p = self.problem
        return torch.from_numpy(p.grid.pad_model(coefficient.cpu().numpy())).to(p.device, p.dtype)

    # -- the protocol's declarations ---------------------------------------------------------------
    @property
    def nfields(self) -> int:
        """Fields of a state: u_prev, u, and psi and zeta of each axis."""
        return 2 + 2 * self.grid_ndim

    @property
    def dtype(self) -> torch.dtype:
        """Of states, snapshots, strips and rebuild fields: the model's."""
        return self.problem.dtype

    @property
    def state_shape(self) -> tuple[int, ...]:
        """(2 + 2 ndim, nshots, *padded_shape): the shape of ``initial()``, known without allocating it."""
        return (self.nfields, self.problem.nshots, *self.problem.grid.padded_shape)

    @property
    def snapshot_shape(self) -> tuple[int, ...]:
        """(nshots, *shape): a step's snapshot S = du_next/dw on the physical grid."""
        return (self.problem.nshots, *self.problem.grid.shape)

    @property
    def strip_shape(self) -> tuple[int, int]:
        """(nshots, ncells): a step's boundary strip, u_{n-1} on the strip cells."""
        return (self.problem.nshots, int(self.strip_index.size))

    @property
    def rebuild_shape(self) -> tuple[int, ...]:
        """(2, nshots, *shape): u_n and u_{n-1} on the physical grid (not derived from ``snapshot_shape``,
        which an equation may widen: VRZ's snapshot holds two fields)."""
        return (2, self.problem.nshots, *self.problem.grid.shape)

    def initial(self) -> torch.Tensor:
        """A new state at step 0 (zeros)."""
        return torch.zeros(self.state_shape, dtype=self.dtype, device=self.problem.device)

    def physical(self, field: torch.Tensor) -> torch.Tensor:
        """The physical window (a view) of ``field`` (..., *padded_shape)."""
        return field[(..., *self.problem.grid.physical)]

    def save_fields(self, state: torch.Tensor, out: torch.Tensor) -> None:
        """(u_n, u_{n-1}) of ``state`` on the physical grid into ``out`` (``rebuild_shape``)."""
        out[0].copy_(self.physical(state[U]))
        out[1].copy_(self.physical(state[U_PREV]))

    def imaged(self, n0: int, n1: int) -> int:
        """Snapshots of the steps ``n0 .. n1 - 1``: those of the imaged steps (every step when k = 1)."""
        return imaged_steps(self.image_interval, n0, n1)

    def model_gradients(self, grad_w: torch.Tensor | None) -> list[torch.Tensor | None]:
        """``[gradient w.r.t. vp]`` from one w.r.t. ``w = v^2 dt^2`` on the physical grid (chain rule;
        the padding is a fixed extension and has no gradient), summed over the imaged steps: each stands for
        ``image_interval`` steps."""
        scale = 2.0 * self.problem.dt**2 * self.image_interval
        return [None if grad_w is None else grad_w * scale * self.vp]

    def model_bytes(self) -> int:
        """Bytes of the model's arrays the stepper holds for a call (the padded coefficient)."""
        return self.w_padded.numel() * self.w_padded.element_size()
