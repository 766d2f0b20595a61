"""The seam: the only thing the memory layer knows about a back-end.

A strategy is a schedule of these calls; it never looks inside a state.
"""
from __future__ import annotations

from typing import Protocol

import torch


class Stepper(Protocol):
    """A time stepper for one propagation call (one equation on one back-end).

    The state at step ``n`` is one tensor holding everything needed to continue from ``n`` (wavefields
    and absorbing-layer auxiliaries); its layout is the back-end's business.
    """

    nt: int

    def initial(self) -> torch.Tensor:
        """A new state at step 0."""

    def state_nbytes(self) -> int:
        """Bytes of one state."""

    def advance(self, state: torch.Tensor, n0: int, n1: int, record: torch.Tensor | None = None,
                keep: torch.Tensor | None = None) -> None:
        """Steps ``n0 -> n1`` in place. ``record[:, n]`` (nshots, nrec) receives step n's receiver
        samples; ``keep[n - n0]`` receives the state at the start of step n."""

    def begin_adjoint(self, need_wavelet: bool, need_model: bool) -> None:
        """Start accumulating gradients for the inputs that need them."""

    def adjoint(self, adj_state: torch.Tensor, state_n: torch.Tensor, n: int, grad_record_n: torch.Tensor) -> None:
        """One reverse step in place: from the adjoint of the state after step n to the adjoint of the
        state at its start, given the forward state at the start of step n and the adjoint of its record."""

    def end_adjoint(self) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
        """(gradient w.r.t. the wavelet, [gradient w.r.t. each model]) accumulated since begin_adjoint."""
