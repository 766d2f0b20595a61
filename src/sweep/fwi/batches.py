"""Shot batching: which shots each propagation call of an iteration takes.

Every process of a distributed run builds the same batches from the same seed and iteration number,
so no random state has to be shared or saved for a resumed run to draw what an uninterrupted one
would have drawn.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..messages import plain


def iteration_rng(seed: int, iteration: int, stream: int) -> np.random.Generator:
    """The random generator of one (seed, iteration, stream): independent of any earlier draw, so a
    resumed run and every rank draw exactly what an uninterrupted single-process run would."""
    return np.random.default_rng(np.random.SeedSequence([seed, iteration, stream]))


class ShotBatches:
    """Partition of the shots into batches of at most ``batch_size``, fixed or re-drawn each iteration.

    Parameters
    ----------
    nshots : int
        Shots in the survey.
    batch_size : int, optional
        Shots per propagation call (memory is bounded by one batch); default all shots in one call.
    redraw : bool
        ``False``: consecutive fixed batches. ``True``: a new random partition each iteration.
    per_iteration : int, optional
        Batches used per iteration; default all of them, so the iteration's gradient (the sum of the
        batch gradients) is the full objective's. Fewer gives a stochastic mini-batch gradient.
    seed : int
        Seed of the random partitions.
    """

    def __init__(self, nshots: int, batch_size: int | None = None, *, redraw: bool = False,
                 per_iteration: int | None = None, seed: int = 0) -> None:
        for name, value in (("nshots", nshots), ("batch_size", batch_size), ("per_iteration", per_iteration)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {plain(value)!r}")
        batch_size = nshots if batch_size is None else int(batch_size)
        if batch_size > nshots:
            raise ValueError(f"batch_size={batch_size} is larger than the number of shots ({nshots})")
        count = -(-nshots // batch_size)
        if per_iteration is not None and per_iteration > count:
            raise ValueError(f"per_iteration={per_iteration} is more than the {count} batches of "
                             f"{batch_size} shots that {nshots} shots make")
        self.nshots, self.batch_size, self.redraw, self.seed = int(nshots), batch_size, bool(redraw), int(seed)
        self.count = count
        self.per_iteration = count if per_iteration is None else int(per_iteration)

    @property
    def exact(self) -> bool:
        """Whether every iteration uses every shot (the gradient is the full objective's)."""
        return self.per_iteration == self.count

    def __call__(self, iteration: int) -> list[np.ndarray]:
        """The batches (1-D int64 arrays of shot indices) of ``iteration``."""
        order = (iteration_rng(self.seed, iteration, 0).permutation(self.nshots) if self.redraw
                 else np.arange(self.nshots))
        batches = [np.sort(order[i:i + self.batch_size]) for i in range(0, self.nshots, self.batch_size)]
        return batches[:self.per_iteration]

    def describe(self) -> dict:
        """The settings, as saved in an inversion state."""
        return {"nshots": self.nshots, "batch_size": self.batch_size, "redraw": self.redraw,
                "per_iteration": self.per_iteration, "seed": self.seed}
