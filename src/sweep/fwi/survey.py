"""A multi-shot survey: acquisition geometry, source wavelets and observed data, in the shapes
:class:`~sweep.propagator.torch.PropTorch` takes and returns."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from ..propagator.setup import index_array


def _space(sources: object) -> int:
    """Location components of ``sources``: its last axis when that is 3 (``[x, y, z]``), else 2 (and
    :func:`index_array` says what is wrong with any other shape)."""
    shape = getattr(sources, "shape", None)
    if shape is None:
        try:
            shape = np.shape(sources)
        except ValueError:  # ragged nested lists: index_array names where
            return 2
    return 3 if len(shape) in (2, 3) and shape[-1] == 3 else 2


@dataclass(frozen=True)
class Survey:
    """Shots of one inversion.

    Attributes
    ----------
    sources : int64 array (nshots, nsrc, 2) or (nshots, nsrc, 3)
        ``[x, z]`` (2-D) or ``[x, y, z]`` (3-D) grid indices of each shot's sources; a (nshots, space)
        array is one source per shot.
    receivers : int64 array (nshots, nrec, space)
        Grid indices of each shot's receivers, with as many components as ``sources``.
    wavelet : tensor (nshots, nsrc, nt)
        Source time functions.
    observed : tensor (nshots, nt, nrec, ncomp)
        Recorded data, the shape a propagator call returns.
    """

    sources: np.ndarray
    receivers: np.ndarray
    wavelet: torch.Tensor
    observed: torch.Tensor

    def __post_init__(self) -> None:
        space = _space(self.sources)
        src = index_array(self.sources, "sources", (2, 3), space)
        if src.ndim == 2:
            src = src[:, None, :]
        rec = index_array(self.receivers, "receivers", (3,), space)
        nshots, nsrc = src.shape[:2]
        if rec.shape[0] != nshots:
            raise ValueError(f"receivers has {rec.shape[0]} shots but sources has {nshots}")
        if not isinstance(self.observed, torch.Tensor) or self.observed.ndim != 4:
            raise ValueError("observed must be a (nshots, nt, nrec, ncomp) tensor, got "
                             f"{getattr(self.observed, 'shape', type(self.observed).__name__)}")
        nt = self.observed.shape[1]
        if tuple(self.observed.shape[:3]) != (nshots, nt, rec.shape[1]):
            raise ValueError(f"observed has shape {tuple(self.observed.shape)} but the geometry needs "
                             f"({nshots}, nt, {rec.shape[1]}, ncomp)")
        wavelet = torch.as_tensor(self.wavelet).detach()
        if wavelet.ndim == 1:
            wavelet = wavelet.expand(nshots, nsrc, nt)
        if tuple(wavelet.shape) != (nshots, nsrc, nt):
            raise ValueError(f"wavelet must have shape (nt,) or (nshots, nsrc, nt) = ({nshots}, {nsrc}, {nt}), "
                             f"got {tuple(wavelet.shape)}")
        object.__setattr__(self, "sources", src)
        object.__setattr__(self, "receivers", rec)
        object.__setattr__(self, "wavelet", wavelet.to(self.observed.dtype).contiguous())
        object.__setattr__(self, "observed", self.observed.detach())

    @property
    def space(self) -> int:
        """Components of a location: 2 (``[x, z]``) or 3 (``[x, y, z]``)."""
        return int(self.sources.shape[-1])

    @property
    def nshots(self) -> int:
        return int(self.sources.shape[0])

    @property
    def nt(self) -> int:
        return int(self.observed.shape[1])

    def subset(self, shots: np.ndarray) -> "Survey":
        """The survey of the shots with indices ``shots`` (1-D int array), in that order."""
        index = torch.as_tensor(np.asarray(shots, dtype=np.int64))
        return Survey(self.sources[shots], self.receivers[shots], self.wavelet[index], self.observed[index])

    def fingerprint(self) -> str:
        """sha256 of the geometry, wavelets and data: identifies the problem in a saved inversion state."""
        h = hashlib.sha256()
        for arr in (self.sources, self.receivers, self.wavelet.cpu().numpy(), self.observed.cpu().numpy()):
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()
