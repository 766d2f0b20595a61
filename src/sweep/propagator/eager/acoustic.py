"""Pure-PyTorch time stepping of the 2-D acoustic equation on the padded grid.

The step (all fields on the padded grid, zero outside it; ``D1``/``D2`` centred first/second
derivatives along an axis; ``w = v^2 dt^2``)::

    psi_x <- b_x psi_x + a_x D1_x u                  (C-PML memory of du/dx)
    L_x    = D2_x u + D1_x psi_x                      (stretched second derivative, new psi)
    zeta_x <- b_x zeta_x + a_x L_x
    (same along z)
    S      = L_x + zeta_x + L_z + zeta_z, plus f[n] / dh^2 at each source cell
    u_next = 2 u - u_prev + w S

and the receivers record ``u`` at step n before the update, so ``data[:, n]`` is the field at
``t = n dt``. The state is one tensor (6, nshots, NZ, NX): u_prev, u, psi_x, psi_z, zeta_x, zeta_z.
The snapshot of step n is ``S`` on the physical grid (nshots, nz, nx): ``du_next / dw``, all the
reverse pass needs from the forward pass. The step is affine in the state and the wavelet, so its
adjoint is one vector-Jacobian product (autograd's, of this same step), the exact discrete adjoint.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from ...equations.stencils import FIRST_DERIVATIVE, SECOND_DERIVATIVE
from ..setup import Problem
from ..threads import governed_torch_threads

U_PREV, U, PSI_X, PSI_Z, ZETA_X, ZETA_Z = range(6)
NFIELDS = 6
#: Steps run with one thread count of the governor (threads.py): long enough to be judged, short enough
#: to follow the machine's load within a call.
GOVERNED_STEPS = 16


def _blocks(steps: range) -> list[range]:
    """``steps`` in consecutive pieces of at most GOVERNED_STEPS, in its order."""
    return [steps[i:i + GOVERNED_STEPS] for i in range(0, len(steps), GOVERNED_STEPS)]


_compiled_step = None


def _compiled():
    """``EagerAcousticStepper.step`` through ``torch.compile``, built once per process (the first call
    compiles, later calls with the same shapes reuse it)."""
    global _compiled_step
    if _compiled_step is None:
        _compiled_step = torch.compile(EagerAcousticStepper.step, dynamic=False)
    return _compiled_step


class EagerAcousticStepper:
    """The stepper protocol (see :mod:`sweep.memory.protocol`) for the acoustic equation in PyTorch.

    Parameters
    ----------
    problem : Problem
    use_compile : bool
        Run the forward steps through ``torch.compile`` (the adjoint keeps the plain step, whose
        transpose autograd builds once per call).
    """

    def __init__(self, problem: Problem, use_compile: bool = False) -> None:
        self.use_compile = use_compile
        self.problem = p = problem
        self.nt = p.nt
        self.r = p.grid.radius
        self.c1 = FIRST_DERIVATIVE[p.space_order]
        self.c2 = SECOND_DERIVATIVE[p.space_order]
        self.inv_dh = 1.0 / p.dh
        self.inv_dh2 = 1.0 / p.dh**2
        kw = dict(dtype=p.dtype, device=p.device)
        self.ax = p.pml["ax"].to(**kw).view(1, 1, -1)
        self.bx = p.pml["bx"].to(**kw).view(1, 1, -1)
        self.az = p.pml["az"].to(**kw).view(1, -1, 1)
        self.bz = p.pml["bz"].to(**kw).view(1, -1, 1)
        self.w = p.w_padded  # (NZ, NX), v^2 dt^2, no grad
        nshots = p.nshots
        self.shot_of_src = torch.arange(nshots, device=p.device).view(-1, 1).expand_as(p.src_z)
        self.shot_of_rec = torch.arange(nshots, device=p.device).view(-1, 1).expand_as(p.rec_z)
        g = p.grid
        self.strip_cells = torch.from_numpy(g.strip_cells()).to(p.device)
        self.strip_segments = g.strip_segments()  # {edge: (r, L) int64 positions in the strip}
        self._src_phys = (self.shot_of_src, p.src_z - g.top, p.src_x - g.left)
        self._grad_w: torch.Tensor | None = None
        self._grad_wavelet: torch.Tensor | None = None
        self._vjp = None

    # -- the protocol -------------------------------------------------------------------------
    @property
    def state_shape(self) -> tuple[int, int, int, int]:
        """(6, nshots, NZ, NX): ``initial()``'s shape, known without allocating a state."""
        p = self.problem
        return (NFIELDS, p.nshots, *p.grid.shape)

    @property
    def dtype(self) -> torch.dtype:
        """Of states, snapshots, strips and rebuild fields: the model's."""
        return self.problem.dtype

    def initial(self) -> torch.Tensor:
        p = self.problem
        return torch.zeros(self.state_shape, dtype=p.dtype, device=p.device)

    @property
    def snapshot_shape(self) -> tuple[int, int, int]:
        p = self.problem
        return (p.nshots, p.grid.nz, p.grid.nx)

    @property
    def strip_shape(self) -> tuple[int, int]:
        """(nshots, ncells): a step's boundary strip, u_{n-1} on ``grid.strip_cells()``."""
        return (self.problem.nshots, int(self.strip_cells.numel()))

    @property
    def rebuild_shape(self) -> tuple[int, int, int, int]:
        """(2, nshots, nz, nx): u_n and u_{n-1} on the physical grid."""
        return (2, *self.snapshot_shape)

    def _physical(self, field: torch.Tensor) -> torch.Tensor:
        g = self.problem.grid
        return field[..., g.top:g.top + g.nz, g.left:g.left + g.nx]

    def _strip(self, field: torch.Tensor) -> torch.Tensor:
        """(nshots, ncells): ``field`` (nshots, nz, nx) on the strip cells."""
        return field.reshape(field.shape[0], -1)[:, self.strip_cells]

    @torch.no_grad()
    def advance(self, state: torch.Tensor, n0: int, n1: int, record: torch.Tensor | None = None,
                keep: torch.Tensor | None = None, strips: torch.Tensor | None = None) -> None:
        """Steps n0 -> n1 in place; ``record[:, n]`` (nshots, nrec) gets step n's receivers;
        ``keep[n - n0]`` (nshots, nz, nx) gets step n's snapshot; ``strips[n - n0]`` (``strip_shape``)
        gets u_{n-1} on the strip cells."""
        wavelet = self.problem.wavelet
        step = partial(_compiled(), self) if self.use_compile else self.step
        for block in _blocks(range(n0, n1)):
            with governed_torch_threads(state.device):
                for n in block:
                    if strips is not None:
                        strips[n - n0].copy_(self._strip(self._physical(state[U_PREV])))
                    new, rec, sensitivity = step(state, self.w, wavelet[:, :, n])
                    if record is not None:
                        record[:, n] = rec
                    if keep is not None:
                        keep[n - n0].copy_(self._physical(sensitivity))
                    state.copy_(new)

    def save_fields(self, state: torch.Tensor, out: torch.Tensor) -> None:
        """(u_n, u_{n-1}) of ``state`` on the physical grid into ``out`` (``rebuild_shape``)."""
        out[0].copy_(self._physical(state[U]))
        out[1].copy_(self._physical(state[U_PREV]))

    @torch.no_grad()
    def retreat(self, fields: torch.Tensor, strips: torch.Tensor, n0: int, n1: int, keep: torch.Tensor) -> None:
        """Reverse-time rebuild of steps n1-1 .. n0 in place on ``fields`` ((u_{n1}, u_{n1-1}) on entry,
        (u_{n0}, u_{n0-1}) on return); ``strips[n - n0]`` is step n's strip (u_{n-1} on the strip cells);
        ``keep[n - n0]`` gets step n's snapshot S_n.

        Away from the strips S_n is the Laplacian of u_n (+ f[n]/dh^2 at the sources), computed by the
        forward's own operations, so it repeats the forward's rounding, and
        u_{n-1} = 2 u_n - u_{n+1} + w S_n. On the strip cells u_{n-1} is the stored strip and
        S_n = (u_{n+1} - (2 u_n - u_{n-1})) / w, the forward update solved for S."""
        p = self.problem
        w = self._physical(self.w)
        w_strip = w.reshape(-1)[self.strip_cells]
        for block in _blocks(range(n1 - 1, n0 - 1, -1)):
            with governed_torch_threads(fields.device):
                for n in block:
                    u_next, u = fields[0], fields[1]  # (u_{n+1}, u_n) here, (u_n, u_{n-1}) after the step
                    dxx, dzz = self._d2(u)
                    sensitivity = (dxx + dzz).index_put(self._src_phys, p.wavelet[:, :, n] * self.inv_dh2,
                                                        accumulate=True)
                    u_prev = 2 * u - u_next + w * sensitivity
                    flat_prev = u_prev.view(u_prev.shape[0], -1)
                    flat_prev[:, self.strip_cells] = strips[n - n0]
                    strip_s = (self._strip(u_next) - (2 * self._strip(u) - strips[n - n0])) / w_strip
                    sensitivity.view(sensitivity.shape[0], -1)[:, self.strip_cells] = strip_s
                    keep[n - n0].copy_(sensitivity)
                    fields[0].copy_(u)
                    fields[1].copy_(u_prev)

    def begin_adjoint(self, need_wavelet: bool, need_model: bool) -> None:
        p = self.problem
        self._grad_wavelet = torch.zeros_like(p.wavelet) if need_wavelet else None
        self._grad_w = torch.zeros(p.grid.nz, p.grid.nx, dtype=p.dtype, device=p.device) if need_model else None
        # The step is affine in (state, wavelet sample): one VJP function, built once, is its transpose.
        zero_state = self.initial()
        zero_f = torch.zeros_like(p.wavelet[:, :, 0])
        _, self._vjp = torch.func.vjp(lambda s, f: self.step(s, self.w, f)[:2], zero_state, zero_f)

    @torch.no_grad()
    def adjoint(self, adj_state: torch.Tensor, kept: torch.Tensor, n0: int, n1: int,
                grad_record: torch.Tensor) -> None:
        """Reverse steps n1-1 .. n0 in place on ``adj_state``; ``kept[n - n0]`` is step n's snapshot."""
        for block in _blocks(range(n1 - 1, n0 - 1, -1)):
            with governed_torch_threads(adj_state.device):
                for n in block:
                    if self._grad_w is not None:
                        self._grad_w += (self._physical(adj_state[U]) * kept[n - n0]).sum(0)
                    adj_s, adj_f = self._vjp((adj_state, grad_record[:, n]))
                    if self._grad_wavelet is not None:
                        self._grad_wavelet[:, :, n] += adj_f
                    adj_state.copy_(adj_s)

    def end_adjoint(self) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
        """(gradient w.r.t. the wavelet (nshots, nsrc, nt), [gradient w.r.t. vp (nz, nx)])."""
        grad_vp = None if self._grad_w is None else self.problem.vp_gradient(self._grad_w)
        out = (self._grad_wavelet, [grad_vp])
        self._grad_wavelet = self._grad_w = self._vjp = None
        return out

    # -- one time step ------------------------------------------------------------------------
    def _d1_x(self, f: torch.Tensor) -> torch.Tensor:
        r, nx = self.r, f.shape[-1]
        fp = F.pad(f, (r, r))
        return sum(c * (fp[..., r + k:r + k + nx] - fp[..., r - k:r - k + nx]) for k, c in enumerate(self.c1, 1)) * self.inv_dh

    def _d1_z(self, f: torch.Tensor) -> torch.Tensor:
        r, nz = self.r, f.shape[-2]
        fp = F.pad(f, (0, 0, r, r))
        return sum(c * (fp[..., r + k:r + k + nz, :] - fp[..., r - k:r - k + nz, :]) for k, c in enumerate(self.c1, 1)) * self.inv_dh

    def _d2(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r, (nz, nx) = self.r, u.shape[-2:]
        up = F.pad(u, (r, r, r, r))
        centre = up[..., r:r + nz, r:r + nx]
        dxx = self.c2[0] * centre
        dzz = self.c2[0] * centre
        for k, c in enumerate(self.c2[1:], 1):
            dxx = dxx + c * (up[..., r:r + nz, r + k:r + k + nx] + up[..., r:r + nz, r - k:r - k + nx])
            dzz = dzz + c * (up[..., r + k:r + k + nz, r:r + nx] + up[..., r - k:r - k + nz, r:r + nx])
        return dxx * self.inv_dh2, dzz * self.inv_dh2

    def step(self, state: torch.Tensor, w: torch.Tensor,
             f_n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One leapfrog step: (state after it, receivers (nshots, nrec) at its start, ``S`` = du_next/dw
        on the padded grid)."""
        p = self.problem
        u_prev, u, psi_x, psi_z, zeta_x, zeta_z = state.unbind(0)
        rec = u[self.shot_of_rec, p.rec_z, p.rec_x]
        psi_x = self.bx * psi_x + self.ax * self._d1_x(u)
        psi_z = self.bz * psi_z + self.az * self._d1_z(u)
        dxx, dzz = self._d2(u)
        lap_x = dxx + self._d1_x(psi_x)
        lap_z = dzz + self._d1_z(psi_z)
        zeta_x = self.bx * zeta_x + self.ax * lap_x
        zeta_z = self.bz * zeta_z + self.az * lap_z
        sensitivity = (lap_x + zeta_x + lap_z + zeta_z).index_put(
            (self.shot_of_src, p.src_z, p.src_x), f_n * self.inv_dh2, accumulate=True)
        u_next = 2 * u - u_prev + w * sensitivity
        return torch.stack((u, u_next, psi_x, psi_z, zeta_x, zeta_z)), rec, sensitivity
