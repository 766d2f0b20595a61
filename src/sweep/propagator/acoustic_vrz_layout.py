"""What every back-end of the variable-density acoustic equation (VRZ) shares: the coefficients on the padded
grid, the snapshot's shape and the chain rule from the step's coefficients to ``[vp, z]``, in 2-D and 3-D.

The state, strips and rebuild fields are :mod:`acoustic_layout`'s. The step (see
:mod:`sweep.propagator.eager.acoustic_vrz`) is ``u_next = 2 u - u_prev + K S`` with ``K = kappa dt^2`` and ``S``
the stretched ``div(b grad u)`` plus the source's ``b f / dh^ndim``; the model gradient needs from step n
``S`` (for K) and ``u_n`` (for the buoyancy b), so a snapshot holds both: ``(2, nshots, *shape)``, twice
:class:`~sweep.propagator.acoustic_layout.AcousticLayout`'s.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .acoustic_layout import AcousticLayout

#: A snapshot's two fields: S_n (du_next/dK) and u_n.
SNAP_S, SNAP_U = 0, 1


class AcousticVRZLayout(AcousticLayout):
    """Shapes and coefficients of one VRZ propagation call, for a stepper of any back-end to inherit.

    Parameters
    ----------
    problem : :class:`~sweep.propagator.setup.Problem`
    models : [vp (m/s), z (kg m^-2 s^-1)], the grid's physical shape; only their values are read.
    image_interval : int
        Gradient sampling (see :class:`~sweep.propagator.acoustic_layout.AcousticLayout`).

    Attributes
    ----------
    vp, z : tensors of the physical shape (detached).
    k_padded : tensor, ``padded_shape``: ``kappa dt^2 = z vp dt^2`` on the padded grid (edge-replicated).
    b_padded : tensor, ``padded_shape``: the buoyancy ``vp / z`` (m^3/kg) on the padded grid (edge-replicated);
        the step extends it beyond the padded grid by edge replication too.
    """

    def set_coefficients(self, models: Sequence[torch.Tensor]) -> None:
        """The step's coefficients on the padded grid: ``k_padded`` and ``b_padded``."""
        self.z = models[1].detach()
        vp, z = self.vp.to(torch.float64), self.z.to(torch.float64)
        self.k_padded = self.padded(z * vp * self.problem.dt**2)
        self.b_padded = self.padded(vp / z)

    @property
    def update_coefficient(self) -> torch.Tensor:
        """``padded_shape``: ``K = kappa dt^2``, what multiplies ``S`` in the update."""
        return self.k_padded

    @property
    def snapshot_shape(self) -> tuple[int, ...]:
        """(2, nshots, *shape): step n's ``S`` (du_next/dK) and ``u_n`` on the physical grid."""
        return (2, self.problem.nshots, *self.problem.grid.shape)

    def model_gradients(self, grads: tuple[torch.Tensor, torch.Tensor] | None) -> list[torch.Tensor | None]:
        """``[gradient w.r.t. vp, gradient w.r.t. z]`` from ``(g_K, g_b)``, the gradients w.r.t. ``K = z vp
        dt^2`` and ``b = vp / z`` on the physical grid summed over the imaged steps (each standing for
        ``image_interval`` steps); None when the model gradient was not asked for."""
        if grads is None:
            return [None, None]
        grad_k, grad_b = grads
        scale = self.image_interval
        vp, z, dt2 = self.vp, self.z, self.problem.dt**2
        grad_vp = (z * dt2 * grad_k + grad_b / z) * scale
        grad_z = (vp * dt2 * grad_k - vp / z**2 * grad_b) * scale
        return [grad_vp, grad_z]

    def model_bytes(self) -> int:
        """Bytes of the model's arrays the stepper holds for a call (K and b on the padded grid)."""
        return 2 * self.k_padded.numel() * self.k_padded.element_size()
