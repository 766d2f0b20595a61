"""Pure-PyTorch time stepping of the variable-density acoustic equation (VRZ) on the padded grid, 2-D and 3-D.

The step (all fields on the padded grid, zero outside it; ``D1_a`` the centred first derivative along axis
``a``, ``c_k`` the centred second derivative's coefficients, ``beta`` the buoyancy ``vp / z`` extended past the
padded grid by edge replication, ``K = z vp dt^2``), for every axis ``a`` in reversed order (x, [y,] z)::

    psi_a <- b_a psi_a + a_a beta D1_a u                          (C-PML memory of beta du/da)
    B_a    = sum_k c_k / dh^2 [ (beta_i + beta_{i+k}) / 2 (u_{i+k} - u_i)
                              + (beta_i + beta_{i-k}) / 2 (u_{i-k} - u_i) ]     (d/da (beta du/da))
    L_a    = B_a + D1_a psi_a
    zeta_a <- b_a zeta_a + a_a L_a
    S      = sum over a of (L_a + zeta_a), plus beta f[n] / dh^ndim at each source cell
    u_next = 2 u - u_prev + K S

With a constant ``beta`` every term is ``beta`` times :mod:`~sweep.propagator.eager.acoustic`'s, so ``K S`` is its
``v^2 dt^2 S``. The state is :mod:`~sweep.propagator.acoustic_layout`'s; the snapshot of step n is ``(S, u_n)``
on the physical grid. The model gradient is ``g_K = sum_n lambda_{n+1} S_n`` and, with ``mu = lambda_{n+1} K``,
``g_beta`` at cell m = ``sum_n sum`` over the pairs (m, i) of physical cells ``c_k / (2 dh^2) (mu_m - mu_i)
(u_i - u_m)``, plus ``mu f[n] / dh^ndim`` at the sources: the pair coefficients that reach outside the
physical grid, like the padding, are held fixed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..acoustic_vrz_layout import SNAP_S, SNAP_U, AcousticVRZLayout
from .acoustic import EagerAcousticStepper


class EagerAcousticVRZStepper(AcousticVRZLayout, EagerAcousticStepper):
    """The stepper protocol (see :mod:`sweep.memory.protocol`) for the VRZ equation in PyTorch, any
    dimension the grid has; built and driven as :class:`~sweep.propagator.eager.acoustic.EagerAcousticStepper`.

    Parameters
    ----------
    problem : :class:`~sweep.propagator.setup.Problem`
    models : [vp (m/s), z (kg m^-2 s^-1)]
    use_compile : bool
    image_interval : int
    """

    def __init__(self, problem, models, use_compile: bool = False, image_interval: int = 1) -> None:
        super().__init__(problem, models, use_compile=use_compile, image_interval=image_interval)
        self._pairs = self._pair_coefficients(self.b_padded)  # the forward's, on the padded grid
        self._pairs_physical = self._pair_coefficients(self.physical(self.b_padded))  # the rebuild's
        self._buoyancy_src = self.b_padded[self._src_at[1:]]  # (nshots, nsrc)

    def _pair_coefficients(self, beta: torch.Tensor) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Per visited axis, per offset k = 1..r: ((beta_i + beta_{i+k}) / 2, (beta_i + beta_{i-k}) / 2) on
        ``beta``'s grid, ``beta`` edge-replicated past it."""
        r = self.r
        out = []
        for dim in self.dims:
            n = beta.shape[dim]
            widths = [0, 0] * beta.ndim  # F.pad's order: last axis first
            widths[2 * (-dim - 1)] = widths[2 * (-dim - 1) + 1] = r
            wide = F.pad(beta[None, None], widths, mode="replicate")[0, 0]
            out.append([(0.5 * (beta + wide.narrow(dim, r + k, n)), 0.5 * (beta + wide.narrow(dim, r - k, n)))
                        for k in range(1, r + 1)])
        return out

    def _div_b(self, u: torch.Tensor, dim: int, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """``d/da (beta du/da)`` along ``dim`` (zero outside the grid) with the pair coefficients ``pairs``
        of that axis, 1/(m^2) times beta's unit."""
        up, r = self._shifted(u, dim)
        n = u.shape[dim]
        out = None
        for k, (plus, minus) in enumerate(pairs, 1):
            term = self.c2[k] * (plus * (up.narrow(dim, r + k, n) - u) + minus * (up.narrow(dim, r - k, n) - u))
            out = term if out is None else out + term
        return out * self.inv_dh2

    # -- what the equation decides (see EagerAcousticStepper) -------------------------------------------
    @property
    def gradient_shape(self) -> tuple[int, ...]:
        """Of the model gradient's accumulator: (d/dK, d/dbeta) on the physical grid."""
        return (2, *self.problem.grid.shape)

    def _source(self, f_n: torch.Tensor) -> torch.Tensor:
        """What the sources add to S at step n: beta f / dh^ndim."""
        return self._buoyancy_src * f_n * self.inv_source

    def _snapshot(self, sensitivity: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.stack((sensitivity, u))

    def _image(self, adj_u: torch.Tensor, snapshot: torch.Tensor, n: int) -> None:
        """Add imaged step n's terms to (g_K, g_beta), given the adjoint of u_{n+1} (nshots, *shape)."""
        sensitivity, u = snapshot[SNAP_S], snapshot[SNAP_U]
        grad_k, grad_b = self._grad_w[0], self._grad_w[1]
        grad_k += (adj_u * sensitivity).sum(0)
        mu = adj_u * self.physical(self.update_coefficient)
        for dim in self.dims:
            n_dim = u.shape[dim]
            for k, c in enumerate(self.c2[1:], 1):
                m = n_dim - k
                pair = ((mu.narrow(dim, 0, m) - mu.narrow(dim, k, m)) * (u.narrow(dim, k, m) - u.narrow(dim, 0, m))
                        ).sum(0) * (0.5 * c * self.inv_dh2)
                grad_b.narrow(dim, 0, m).add_(pair)
                grad_b.narrow(dim, k, m).add_(pair)
        grad_b.index_put_(self._src_phys[1:], mu[self._src_phys] * self.problem.wavelet[:, :, n] * self.inv_source,
                          accumulate=True)

    # -- one time step (EagerAcousticStepper.step with these terms) -----------------------------------
    def _flux(self, u: torch.Tensor, dim: int) -> torch.Tensor:
        """What psi of axis ``dim`` convolves: beta du/da."""
        return self.b_padded * self._d1(u, dim)

    def _second(self, u: torch.Tensor, dim: int, axis: int, physical: bool = False) -> torch.Tensor:
        """d/da (beta du/da) of the ``axis``-th visited axis on the padded grid (or the physical one)."""
        return self._div_b(u, dim, (self._pairs_physical if physical else self._pairs)[axis])
