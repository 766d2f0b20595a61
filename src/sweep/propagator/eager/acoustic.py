"""Pure-PyTorch time stepping of the acoustic equation on the padded grid, in 2-D and 3-D.

The step (all fields on the padded grid, zero outside it; ``D1_a``/``D2_a`` centred first/second
derivatives along axis ``a``; ``w = v^2 dt^2``), for every axis ``a`` in reversed order (x, [y,] z)::

    psi_a <- b_a psi_a + a_a D1_a u                  (C-PML memory of du/da)
    L_a    = D2_a u + D1_a psi_a                      (stretched second derivative, new psi)
    zeta_a <- b_a zeta_a + a_a L_a
    S      = sum over a of (L_a + zeta_a), plus f[n] / dh^ndim at each source cell
    u_next = 2 u - u_prev + w S

and the receivers record ``u`` at step n before the update, so ``data[:, n]`` is the field at
``t = n dt``. The state is one tensor (see :mod:`sweep.propagator.acoustic_layout`). The snapshot of
step n is ``S`` on the physical grid: ``du_next / dw``, all the reverse pass needs from the forward pass.
The step is affine in the state and the wavelet, so its adjoint is one vector-Jacobian product
(autograd's, of this same step), the exact discrete adjoint.
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
import torch.nn.functional as F

from ...equations.stencils import FIRST_DERIVATIVE, SECOND_DERIVATIVE
from ..acoustic_layout import U, U_PREV, AcousticLayout
from ..setup import Problem
from ..threads import governed_torch_threads

#: Steps run with one thread count of the governor (threads.py): long enough to be judged, short enough
#: to follow the machine's load within a call.
GOVERNED_STEPS = 16


def _blocks(steps: range) -> list[range]:
    """``steps`` in consecutive pieces of at most GOVERNED_STEPS, in its order."""
    return [steps[i:i + GOVERNED_STEPS] for i in range(0, len(steps), GOVERNED_STEPS)]


_compiled_steps: dict[type, object] = {}


def _compiled(cls: type):
    """``cls.step`` through ``torch.compile``, built once per process and class (the first call compiles,
    later calls with the same shapes reuse it)."""
    if cls not in _compiled_steps:
        _compiled_steps[cls] = torch.compile(cls.step, dynamic=False)
    return _compiled_steps[cls]


class EagerAcousticStepper(AcousticLayout):
    """The stepper protocol (see :mod:`sweep.memory.protocol`) for the acoustic equation in PyTorch, any
    dimension the grid has.

    Parameters
    ----------
    problem : Problem
    models : [vp]
    use_compile : bool
        Run the forward steps through ``torch.compile`` (the adjoint keeps the plain step, whose
        transpose autograd builds once per call).
    image_interval : int
        Gradient sampling (see :class:`~sweep.propagator.acoustic_layout.AcousticLayout`).
    """

    def __init__(self, problem: Problem, models: Sequence[torch.Tensor], use_compile: bool = False,
                 image_interval: int = 1) -> None:
        super().__init__(problem, models, image_interval)
        self.use_compile = use_compile
        p = problem
        nd = self.grid_ndim
        self.c1 = FIRST_DERIVATIVE[p.space_order]
        self.c2 = SECOND_DERIVATIVE[p.space_order]
        self.inv_dh = 1.0 / p.dh
        self.inv_dh2 = 1.0 / p.dh**2
        self.inv_source = 1.0 / p.dh**nd  # the source's delta spread over one cell
        kw = dict(dtype=p.dtype, device=p.device)
        # Derivative axes in the order the step visits them (x first), as tensor dims of a (nshots, ...) field.
        self.dims = tuple(range(-1, -nd - 1, -1))
        self.profiles = []  # (a, b) per visited axis, shaped to broadcast along it
        for dim, axis in zip(self.dims, reversed(p.grid.axes)):
            shape = [1] * (nd + 1)
            shape[dim] = -1
            self.profiles.append((p.pml[f"a{axis}"].to(**kw).view(shape), p.pml[f"b{axis}"].to(**kw).view(shape)))
        self.w = self.update_coefficient  # multiplies S in the update (v^2 dt^2), no grad
        shots = torch.arange(p.nshots, device=p.device).view(-1, 1)
        self._src_at = (shots.expand(p.src.shape[:2]), *p.src.unbind(-1))
        self._rec_at = (shots.expand(p.rec.shape[:2]), *p.rec.unbind(-1))
        before = torch.tensor([a for a, _ in p.grid.pad], device=p.device)
        self._src_phys = (self._src_at[0], *(p.src - before).unbind(-1))
        self.strip_cells = torch.from_numpy(self.strip_index).to(p.device)
        self._grad_w: torch.Tensor | None = None
        self._grad_wavelet: torch.Tensor | None = None
        self._vjp = None

    # -- the protocol -------------------------------------------------------------------------
    def _strip(self, field: torch.Tensor) -> torch.Tensor:
        """(nshots, ncells): ``field`` (nshots, *shape) on the strip cells."""
        return field.reshape(field.shape[0], -1)[:, self.strip_cells]

    @torch.no_grad()
    def advance(self, state: torch.Tensor, n0: int, n1: int, record: torch.Tensor | None = None,
                keep: torch.Tensor | None = None, strips: torch.Tensor | None = None) -> None:
        """Steps n0 -> n1 in place; ``record[:, n]`` (nshots, nrec) gets step n's receivers;
        ``keep[self.imaged(n0, n)]`` (``snapshot_shape``) gets the snapshot of an imaged step n;
        ``strips[n - n0]`` (``strip_shape``) gets u_{n-1} on the strip cells."""
        wavelet = self.problem.wavelet
        step = partial(_compiled(type(self)), self) if self.use_compile else self.step
        for block in _blocks(range(n0, n1)):
            with governed_torch_threads(state.device):
                for n in block:
                    if strips is not None:
                        strips[n - n0].copy_(self._strip(self.physical(state[U_PREV])))
                    new, rec, sensitivity = step(state, self.w, wavelet[:, :, n])
                    if record is not None:
                        record[:, n] = rec
                    if keep is not None and n % self.image_interval == 0:
                        keep[self.imaged(n0, n)].copy_(self.physical(sensitivity))
                    state.copy_(new)

    @torch.no_grad()
    def retreat(self, fields: torch.Tensor, strips: torch.Tensor, n0: int, n1: int, keep: torch.Tensor) -> None:
        """Reverse-time rebuild of steps n1-1 .. n0 in place on ``fields`` ((u_{n1}, u_{n1-1}) on entry,
        (u_{n0}, u_{n0-1}) on return); ``strips[n - n0]`` is step n's strip (u_{n-1} on the strip cells);
        ``keep[self.imaged(n0, n)]`` gets the snapshot S_n of an imaged step n.

        Away from the strips S_n is the Laplacian of u_n (+ f[n]/dh^ndim at the sources), computed by the
        forward's own operations, so it repeats the forward's rounding, and
        u_{n-1} = 2 u_n - u_{n+1} + w S_n. On the strip cells u_{n-1} is the stored strip and
        S_n = (u_{n+1} - (2 u_n - u_{n-1})) / w, the forward update solved for S."""
        p = self.problem
        w = self.physical(self.w)
        w_strip = w.reshape(-1)[self.strip_cells]
        for block in _blocks(range(n1 - 1, n0 - 1, -1)):
            with governed_torch_threads(fields.device):
                for n in block:
                    u_next, u = fields[0], fields[1]  # (u_{n+1}, u_n) here, (u_n, u_{n-1}) after the step
                    sensitivity = self._operator(u).index_put(self._src_phys, self._source(p.wavelet[:, :, n]),
                                                              accumulate=True)
                    u_prev = 2 * u - u_next + w * sensitivity
                    flat_prev = u_prev.view(u_prev.shape[0], -1)
                    flat_prev[:, self.strip_cells] = strips[n - n0]
                    strip_s = (self._strip(u_next) - (2 * self._strip(u) - strips[n - n0])) / w_strip
                    sensitivity.view(sensitivity.shape[0], -1)[:, self.strip_cells] = strip_s
                    if n % self.image_interval == 0:
                        keep[self.imaged(n0, n)].copy_(self._snapshot(sensitivity, u))
                    fields[0].copy_(u)
                    fields[1].copy_(u_prev)

    def begin_adjoint(self, need_wavelet: bool, need_model: bool) -> None:
        p = self.problem
        self._grad_wavelet = torch.zeros_like(p.wavelet) if need_wavelet else None
        self._grad_w = torch.zeros(self.gradient_shape, dtype=p.dtype, device=p.device) if need_model else None
        # The step is affine in (state, wavelet sample): one VJP function, built once, is its transpose.
        zero_state = self.initial()
        zero_f = torch.zeros_like(p.wavelet[:, :, 0])
        _, self._vjp = torch.func.vjp(lambda s, f: self.step(s, self.w, f)[:2], zero_state, zero_f)

    @torch.no_grad()
    def adjoint(self, adj_state: torch.Tensor, kept: torch.Tensor, n0: int, n1: int,
                grad_record: torch.Tensor) -> None:
        """Reverse steps n1-1 .. n0 in place on ``adj_state``; ``kept[self.imaged(n0, n)]`` is the snapshot
        of an imaged step n (the others add nothing to the model gradient)."""
        for block in _blocks(range(n1 - 1, n0 - 1, -1)):
            with governed_torch_threads(adj_state.device):
                for n in block:
                    if self._grad_w is not None and n % self.image_interval == 0:
                        self._image(self.physical(adj_state[U]), kept[self.imaged(n0, n)], n)
                    adj_s, adj_f = self._vjp((adj_state, grad_record[:, n]))
                    if self._grad_wavelet is not None:
                        self._grad_wavelet[:, :, n] += adj_f
                    adj_state.copy_(adj_s)

    def end_adjoint(self) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
        """(gradient w.r.t. the wavelet (nshots, nsrc, nt), [gradient w.r.t. vp (the grid's shape)])."""
        out = (self._grad_wavelet, self.model_gradients(self._grad_w))
        self._grad_wavelet = self._grad_w = self._vjp = None
        return out

    # -- what the equation decides: the reverse pass's operator, snapshot and imaging -----------------
    @property
    def gradient_shape(self) -> tuple[int, ...]:
        """Of the model gradient's accumulator: d/dw on the physical grid."""
        return self.problem.grid.shape

    def _operator(self, u: torch.Tensor) -> torch.Tensor:
        """The sum of the axes' second-derivative terms of ``u`` (nshots, *shape) on the physical grid, as the
        forward computes them away from the layers (the Laplacian here)."""
        out = None
        for axis, dim in enumerate(self.dims):
            term = self._second(u, dim, axis, physical=True)
            out = term if out is None else out + term
        return out

    def _source(self, f_n: torch.Tensor) -> torch.Tensor:
        """What the sources add to S at step n, given the wavelet's samples f_n (nshots, nsrc): f / dh^ndim."""
        return f_n * self.inv_source

    def _snapshot(self, sensitivity: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Step n's snapshot from its S and u_n (the physical grid): S."""
        return sensitivity

    def _image(self, adj_u: torch.Tensor, snapshot: torch.Tensor, n: int) -> None:
        """Add imaged step n's term to the model gradient: the adjoint of u_{n+1} (nshots, *shape) times S."""
        self._grad_w += (adj_u * snapshot).sum(0)

    # -- one time step ------------------------------------------------------------------------
    def _shifted(self, f: torch.Tensor, dim: int) -> tuple[torch.Tensor, int]:
        """``f`` zero-padded by r cells on both sides of ``dim`` (a negative tensor dim), and r."""
        r = self.r
        return F.pad(f, (0, 0) * (-dim - 1) + (r, r)), r

    def _d1(self, f: torch.Tensor, dim: int) -> torch.Tensor:
        """Centred first derivative of ``f`` along ``dim`` (zero outside the grid), 1/m."""
        fp, r = self._shifted(f, dim)
        n = f.shape[dim]
        return sum(c * (fp.narrow(dim, r + k, n) - fp.narrow(dim, r - k, n))
                   for k, c in enumerate(self.c1, 1)) * self.inv_dh

    def _d2(self, u: torch.Tensor, dim: int) -> torch.Tensor:
        """Centred second derivative of ``u`` along ``dim`` (zero outside the grid), 1/m^2."""
        up, r = self._shifted(u, dim)
        n = u.shape[dim]
        out = self.c2[0] * up.narrow(dim, r, n)
        for k, c in enumerate(self.c2[1:], 1):
            out = out + c * (up.narrow(dim, r + k, n) + up.narrow(dim, r - k, n))
        return out * self.inv_dh2

    def _flux(self, u: torch.Tensor, dim: int) -> torch.Tensor:
        """What the C-PML memory psi of axis ``dim`` convolves: du/da."""
        return self._d1(u, dim)

    def _second(self, u: torch.Tensor, dim: int, axis: int, physical: bool = False) -> torch.Tensor:
        """The second-derivative term of the ``axis``-th visited axis (tensor dim ``dim``) of ``u`` on the padded
        grid, or on the physical grid when ``physical``."""
        return self._d2(u, dim)

    def step(self, state: torch.Tensor, w: torch.Tensor,
             f_n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One leapfrog step: (state after it, receivers (nshots, nrec) at its start, the snapshot on the
        padded grid: ``S`` = du_next/dw)."""
        nd = self.grid_ndim
        fields = state.unbind(0)
        u_prev, u = fields[U_PREV], fields[U]
        psis, zetas = list(fields[2:2 + nd]), list(fields[2 + nd:])
        rec = u[self._rec_at]
        total = None
        for i, (dim, (a, b)) in enumerate(zip(self.dims, self.profiles)):
            psis[i] = b * psis[i] + a * self._flux(u, dim)
        for i, (dim, (a, b)) in enumerate(zip(self.dims, self.profiles)):
            lap = self._second(u, dim, i) + self._d1(psis[i], dim)
            zetas[i] = b * zetas[i] + a * lap
            total = lap + zetas[i] if total is None else total + lap + zetas[i]
        sensitivity = total.index_put(self._src_at, self._source(f_n), accumulate=True)
        u_next = 2 * u - u_prev + w * sensitivity
        return torch.stack((u, u_next, *psis, *zetas)), rec, self._snapshot(sensitivity, u)
