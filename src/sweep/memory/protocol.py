"""The seam: the only thing the memory layer knows about a back-end.

A strategy is a schedule of these calls; it never looks inside a state or a snapshot.
"""
from __future__ import annotations

from typing import Protocol

import torch


class Stepper(Protocol):
    """A time stepper for one propagation call (one equation on one back-end).

    Two kinds of tensors cross the seam, both opaque to the memory layer:

    - a *state*: everything needed to continue stepping from step ``n`` (wavefields and
      absorbing-layer auxiliaries), one tensor shaped like ``initial()``;
    - a *snapshot* of step ``n`` (shape ``snapshot_shape``): what the reverse pass needs from the
      forward pass at that step, usually much smaller than a state (for the acoustic equation the
      sensitivity of the new wavefield to the model on the physical grid).
    """

    nt: int
    snapshot_shape: tuple[int, ...]

    def initial(self) -> torch.Tensor:
        """A new state at step 0."""

    def advance(self, state: torch.Tensor, n0: int, n1: int, record: torch.Tensor | None = None,
                keep: torch.Tensor | None = None) -> None:
        """Steps ``n0 -> n1`` in place. ``record[:, n]`` (nshots, nrec) receives step n's receiver
        samples; ``keep[n - n0]`` receives step n's snapshot."""

    def begin_adjoint(self, need_wavelet: bool, need_model: bool) -> None:
        """Start accumulating gradients for the inputs that need them."""

    def adjoint(self, adj_state: torch.Tensor, kept: torch.Tensor, n0: int, n1: int,
                grad_record: torch.Tensor) -> None:
        """Reverse steps ``n1 - 1`` down to ``n0`` in place on ``adj_state`` (state-shaped: the adjoint
        of the state after step ``n1 - 1`` on entry, of the state at step ``n0`` on return), given
        ``kept[n - n0]`` = step n's snapshot and the adjoint of all the data ``grad_record``
        (nshots, nt, nrec); accumulates the gradients."""

    def end_adjoint(self) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
        """(gradient w.r.t. the wavelet, [gradient w.r.t. each model]) accumulated since begin_adjoint."""
