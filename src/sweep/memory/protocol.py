"""The seam: the only thing the memory layer knows about a back-end.

A strategy is a schedule of these calls; it never looks inside a state, a snapshot or a strip.
"""
from __future__ import annotations

from typing import Protocol

import torch


class Stepper(Protocol):
    """A time stepper for one propagation call (one equation on one back-end).

    Four kinds of tensors cross the seam, all opaque to the memory layer:

    - a *state*: everything needed to continue stepping from step ``n`` (wavefields and
      absorbing-layer auxiliaries), one tensor shaped like ``initial()``;
    - a *snapshot* of step ``n`` (shape ``snapshot_shape``): what the reverse pass needs from the
      forward pass at that step, usually much smaller than a state (for the acoustic equation the
      sensitivity of the new wavefield to the model on the physical grid);
    - a *strip* of step ``n`` (shape ``strip_shape``): the values boundary saving keeps per step so
      that the physical wavefield can be rebuilt backwards in time (acoustic: ``u_{n-1}`` on the
      physical cells within one stencil radius of an absorbing edge);
    - *rebuild fields* (shape ``rebuild_shape``): what that reverse-time rebuild walks on (acoustic:
      ``u_n`` and ``u_{n-1}`` on the physical grid).

    ``strip_segments`` cuts a strip into one segment per absorbing face, ``{face: (r, *face_shape) int64
    numpy array}`` of positions along the strip's last axis (``[k, ...]``: layer ``k`` across the face,
    then the position along it); the segments partition the strip. Codecs that need arrays (ZFP) and
    precursor skipping work per segment. Which cells a strip holds is the stepper's choice.

    ``grid_ndim`` is the number of trailing axes of a state that form one field (2 or 3): lossy
    checkpoint codecs compress field by field.

    ``image_interval`` (k, default 1) is gradient sampling: only the steps ``n`` with ``n % k == 0`` are
    *imaged* (their snapshots kept and used by the model gradient, each weighted k by the stepper), so a
    snapshot buffer over steps ``n0 .. n1 - 1`` holds :func:`imaged_steps` ``(k, n0, n1)`` snapshots, those
    of the imaged steps in order; every step is still stepped (forward, rebuilt and adjoint).

    ``state_shape`` and ``dtype`` are ``initial()``'s shape and dtype (also the dtype of snapshots,
    strips and rebuild fields), so that a prediction never allocates a state; a stepper without them
    is asked for one ``initial()`` state instead (:func:`state_layout`).
    """

    nt: int
    grid_ndim: int
    image_interval: int
    state_shape: tuple[int, ...]
    dtype: torch.dtype
    snapshot_shape: tuple[int, ...]
    strip_shape: tuple[int, ...]
    strip_segments: dict[str, "numpy.ndarray"]
    rebuild_shape: tuple[int, ...]

    def initial(self) -> torch.Tensor:
        """A new state at step 0."""

    def advance(self, state: torch.Tensor, n0: int, n1: int, record: torch.Tensor | None = None,
                keep: torch.Tensor | None = None, strips: torch.Tensor | None = None) -> None:
        """Steps ``n0 -> n1`` in place. ``record[:, n]`` (nshots, nrec) receives step n's receiver
        samples; ``keep`` the snapshots of the imaged steps among them, in order (``keep[n - n0]`` when every
        step is imaged); ``strips[n - n0]`` step n's strip."""

    def save_fields(self, state: torch.Tensor, out: torch.Tensor) -> None:
        """Copy the rebuild fields of ``state`` (at step n) into ``out`` (``rebuild_shape``)."""

    def retreat(self, fields: torch.Tensor, strips: torch.Tensor, n0: int, n1: int, keep: torch.Tensor) -> None:
        """Reverse-time rebuild of steps ``n1 - 1`` down to ``n0`` in place on ``fields`` (the rebuild
        fields at step ``n1`` on entry, at step ``n0`` on return), given ``strips[n - n0]`` = step n's
        strip; ``keep`` receives the snapshots of the imaged steps, as ``advance`` would have written them."""

    def begin_adjoint(self, need_wavelet: bool, need_model: bool) -> None:
        """Start accumulating gradients for the inputs that need them."""

    def adjoint(self, adj_state: torch.Tensor, kept: torch.Tensor, n0: int, n1: int,
                grad_record: torch.Tensor) -> None:
        """Reverse steps ``n1 - 1`` down to ``n0`` in place on ``adj_state`` (state-shaped: the adjoint
        of the state after step ``n1 - 1`` on entry, of the state at step ``n0`` on return), given
        ``kept``, the snapshots of the imaged steps among them (``kept[n - n0]`` when every step is
        imaged), and the adjoint of all the data ``grad_record``
        (nshots, nt, nrec); accumulates the gradients."""

    def end_adjoint(self) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
        """(gradient w.r.t. the wavelet, [gradient w.r.t. each model]) accumulated since begin_adjoint."""


def image_interval(stepper: Stepper) -> int:
    """The stepper's gradient sampling interval k (1 when it does not declare one)."""
    return int(getattr(stepper, "image_interval", 1))


def imaged_steps(interval: int, n0: int, n1: int) -> int:
    """How many of the steps ``n0 .. n1 - 1`` are imaged (``n % interval == 0``): the snapshots a buffer
    over them holds."""
    return max(0, -(-n1 // interval) - -(-n0 // interval))


def state_layout(stepper: Stepper) -> tuple[tuple[int, ...], torch.dtype]:
    """``(state_shape, dtype)`` of ``stepper``'s states, without allocating one when the stepper declares
    them (otherwise from one ``initial()`` state, which is then dropped)."""
    shape, dtype = getattr(stepper, "state_shape", None), getattr(stepper, "dtype", None)
    if shape is None or dtype is None:
        state = stepper.initial()
        shape, dtype = state.shape, state.dtype
    return tuple(shape), dtype
