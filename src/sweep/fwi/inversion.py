"""The inversion loop: misfit and gradient over shot batches (optionally encoded and spread over
processes), a masked and bounded optimiser step, frequency bands, and a resumable state file."""
from __future__ import annotations

import hashlib
import numbers
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..messages import plain
from ..propagator.torch import PropTorch
from .batches import ShotBatches
from .constraints import VelocityConstraints, default_bounds
from .distributed import ShotGroup
from .encoding import check_encodable, encode, polarity_codes
from .filters import lowpass
from .losses import get_misfit
from .parameters import ModelParameters, velocity
from .state import load_state, save_state
from .survey import Survey


@dataclass(frozen=True)
class Band:
    """A stage of frequency continuation: data and wavelet low-passed at ``cutoff`` Hz (None: as given)
    for ``iterations`` iterations."""

    cutoff: float | None
    iterations: int

    def __post_init__(self) -> None:
        if self.cutoff is not None and not (isinstance(self.cutoff, numbers.Real) and 0 < self.cutoff < float("inf")):
            raise ValueError(f"band cutoff must be a positive frequency in Hz or None, got {plain(self.cutoff)!r}")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, numbers.Integral) or self.iterations < 1:
            raise ValueError(f"band iterations must be a positive integer, got {plain(self.iterations)!r}")


@dataclass
class InversionResult:
    """model: inverted velocity (m/s), the start's shape ((nz, nx) or (nz, ny, nx)); losses: misfit
    before each iteration's update; band_starts: iteration index where each band begins; resumed_from:
    iterations taken from the state file (0: started afresh); parameters: every inverted parameter, in the
    inversion's order (``[model]`` when the velocity alone is inverted)."""

    model: torch.Tensor
    losses: list[float] = field(default_factory=list)
    band_starts: list[int] = field(default_factory=list)
    resumed_from: int = 0
    parameters: list[torch.Tensor] = field(default_factory=list)


def _per_parameter(value, count: int, name: str) -> list:
    """``value`` once per parameter: a sequence of ``count`` as given, anything else repeated."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{name} must give one value per inverted parameter ({count}), got {len(value)}")
        return list(value)
    return [value] * count


class Inversion:
    """Full-waveform inversion of the velocity with the public propagator.

    Parameters
    ----------
    propagator : PropTorch
        Its memory strategy, back-end and grid are the inversion's.
    survey : Survey
        Geometry, wavelets and observed data (the propagator's ``nt``).
    start : tensor of the propagator's shape, (nz, nx) or (nz, ny, nx), or a list of them
        Starting velocity, m/s (its dtype and device are the inversion's), or the starting value of each of
        ``parameters``' parameters.
    parameters : ModelParameters, optional
        What is inverted and how it makes the propagator's models (:mod:`sweep.fwi.parameters`); default the
        velocity alone, the propagator's only model.
    misfit : {'l2', 'normalized_l2'}
    batches : ShotBatches, optional
        Default: all shots in one call, every iteration.
    encoding : bool
        Mix each batch into one simultaneous source with random polarity codes re-drawn every iteration
        (needs the same receivers for every shot).
    constraints : VelocityConstraints or a list of them (one per parameter), optional
        Default: no mask and :func:`~sweep.fwi.constraints.default_bounds` (above the dispersion limit,
        below the stability limit of the internal step ``dt / r``: no update can make the next iteration
        raise or warn); required for any parameter but the velocity.
    bands : sequence of Band
        Frequency continuation, low frequencies first.
    lr : float or a list of floats (one per parameter)
        Adam step size per iteration, in each parameter's unit (m/s for the velocity).
    seed : int
        Seeds the batches and the codes (the same on every rank, and on resume).
    group : ShotGroup, optional
        Process group sharing the shots; default a single process (or torchrun's group when launched by it).
    state_path : str or Path, optional
        State file written (by rank 0) after every iteration; when it exists the run resumes from it.
    """

    def __init__(self, propagator: PropTorch, survey: Survey, start: torch.Tensor | Sequence[torch.Tensor], *,
                 parameters: ModelParameters | None = None, misfit: str = "l2",
                 batches: ShotBatches | None = None, encoding: bool = False,
                 constraints: VelocityConstraints | Sequence[VelocityConstraints] | None = None,
                 bands: Sequence[Band] = (Band(None, 10),), lr: float | Sequence[float] = 20.0, seed: int = 0,
                 group: ShotGroup | None = None, state_path: str | os.PathLike | None = None) -> None:
        if not isinstance(propagator, PropTorch):
            raise TypeError(f"propagator must be a PropTorch, got {type(propagator).__name__}")
        if not isinstance(survey, Survey):
            raise TypeError(f"survey must be a Survey, got {type(survey).__name__}")
        if survey.nt != propagator.nt:
            raise ValueError(f"survey has nt={survey.nt} samples but the propagator runs nt={propagator.nt} steps")
        self.parameters = parameters or velocity()
        starts = list(start) if isinstance(start, (list, tuple)) else [start]
        if len(starts) != len(self.parameters.names):
            raise ValueError(f"start must hold one tensor per inverted parameter {list(self.parameters.names)}, "
                             f"got {len(starts)}")
        axes = "(nz, ny, nx)" if len(propagator.shape) == 3 else "(nz, nx)"
        for name, s in zip(self.parameters.names, starts):
            if not isinstance(s, torch.Tensor) or tuple(s.shape) != propagator.shape:
                raise ValueError(f"start: {name} must be a {propagator.shape} {axes} tensor, got "
                                 f"{getattr(s, 'shape', type(s).__name__)}")
        self.misfit_name, self.misfit = misfit, get_misfit(misfit)
        self.batches = batches or ShotBatches(survey.nshots)
        if self.batches.nshots != survey.nshots:
            raise ValueError(f"batches are drawn from {self.batches.nshots} shots but the survey has {survey.nshots}")
        if not isinstance(encoding, bool):
            raise ValueError(f"encoding must be a bool, got {plain(encoding)!r}")
        if encoding:
            check_encodable(survey.receivers)
        self.bands = [b if isinstance(b, Band) else Band(*b) for b in bands]
        if not self.bands:
            raise ValueError("bands must hold at least one Band")
        nyquist = 0.5 / propagator.dt
        for b in self.bands:
            if b.cutoff is not None and b.cutoff >= nyquist:
                raise ValueError(f"band cutoff {b.cutoff} Hz is not below the Nyquist frequency {nyquist:g} Hz of dt")
        lrs = _per_parameter(lr, len(starts), "lr")
        for name, unit, step in zip(self.parameters.names, self.parameters.units, lrs):
            if not (isinstance(step, numbers.Real) and 0 < step < float("inf")):
                raise ValueError(f"lr of {name} must be a positive step in {unit}, got {plain(step)!r}")
        self.prop, self.survey, self.encoding, self.seed = propagator, survey, encoding, int(seed)
        self.lrs = [float(step) for step in lrs]
        self.lr = self.lrs[0]
        self.starts = [s.detach().clone() for s in starts]
        self.start = self.starts[0]
        if constraints is None:
            if len(starts) > 1:
                raise ValueError(f"constraints must be given for every parameter of {list(self.parameters.names)}")
            constraints = VelocityConstraints(propagator.shape, *default_bounds(propagator, survey.wavelet, self.start))
        self.constraint_list = _per_parameter(constraints, len(starts), "constraints")
        self.constraints = self.constraint_list[0]
        for c, s in zip(self.constraint_list, self.starts):
            c.check_start(s)
        self.group = group or ShotGroup(self.start.device)
        self.state_path = None if state_path is None else os.fspath(state_path)
        self._band_surveys: dict[int, Survey] = {}

    # -- the objective -------------------------------------------------------------------------------
    def band_survey(self, band: int) -> Survey:
        """The survey with data and wavelets low-passed to band ``band``'s cutoff."""
        if band not in self._band_surveys:
            s, cutoff, dt = self.survey, self.bands[band].cutoff, self.prop.dt
            self._band_surveys[band] = s if cutoff is None else Survey(
                s.sources, s.receivers, lowpass(s.wavelet, cutoff, dt, axis=-1), lowpass(s.observed, cutoff, dt, axis=1))
        return self._band_surveys[band]

    def calls(self, iteration: int, band: int) -> list[Survey]:
        """The propagation calls of ``iteration``: one (possibly encoded) survey per batch."""
        return self._calls(self.batches(iteration), iteration, band)

    def _calls(self, batches: list[np.ndarray], iteration: int, band: int) -> list[Survey]:
        survey = self.band_survey(band)
        out = []
        for b, shots in enumerate(batches):
            part = survey.subset(shots)
            out.append(encode(part, polarity_codes(len(shots), self.seed, iteration, b)) if self.encoding else part)
        return out

    def gradient(self, model: torch.Tensor | Sequence[torch.Tensor], iteration: int,
                 band: int = 0) -> tuple[float, torch.Tensor | list[torch.Tensor]]:
        """Misfit and its gradient w.r.t. ``model`` (the velocity, or a list of every parameter: the gradient
        is then a list too) at ``iteration``, summed over this iteration's batches and over the ranks; when
        only some batches are used, both are scaled to the whole survey so losses of different iterations
        compare."""
        params = [m.detach().requires_grad_(True) for m in (model if isinstance(model, (list, tuple)) else [model])]
        grads = [torch.zeros_like(p) for p in params]
        total = torch.zeros((), dtype=torch.float64, device=params[0].device)
        batches = self.batches(iteration)
        for call in self.group.mine(self._calls(batches, iteration, band)):
            predicted = self.prop(call.wavelet, call.sources, call.receivers, self.parameters.to_models(params))
            loss = self.misfit(predicted, call.observed.to(predicted.device))
            for grad, g in zip(grads, torch.autograd.grad(loss, params)):
                grad += g
            total += loss.detach().to(torch.float64)
        for grad in grads:
            self.group.sum_(grad)
        self.group.sum_(total)
        scale = 1.0 if self.batches.exact else self.survey.nshots / sum(len(b) for b in batches)
        grads = [grad.mul_(scale) for grad in grads]
        return float(total) * scale, grads if isinstance(model, (list, tuple)) else grads[0]

    # -- the loop --------------------------------------------------------------------------------------
    def problem_key(self) -> dict:
        """What identifies this inversion in a state file."""
        p = self.prop
        key = {"survey": self.survey.fingerprint(), "grid": [list(p.shape), p.dh, p.dt, p.nt, p.abcn, p.free_surface,
                                                             p.space_order, p.pml_freq, p.pml_vmax],
               "start": hashlib.sha256(self.start.cpu().numpy().tobytes()).hexdigest(),
               "dtype": str(self.start.dtype), "misfit": self.misfit_name, "batches": self.batches.describe(),
               "encoding": self.encoding, "constraints": self.constraints.describe(),
               "bands": [[b.cutoff, b.iterations] for b in self.bands], "lr": self.lr, "seed": self.seed}
        if len(self.starts) > 1 or self.parameters.key != "vp":  # the velocity alone keeps the key it always had
            key["parameters"] = {"what": self.parameters.key, "lr": self.lrs,
                                 "starts": [hashlib.sha256(s.cpu().numpy().tobytes()).hexdigest() for s in self.starts],
                                 "constraints": [c.describe() for c in self.constraint_list]}
        # Sub-stepping changes the discretisation and gradient sampling the gradients, so a state made with
        # other values is another problem's; a run with neither keeps the key it always had (its state
        # files from before these options still resume).
        sampling = (p.step_ratio, p.memory.gradient_interval)
        if sampling != (1, 1):
            key["time_sampling"] = {"step_ratio": sampling[0], "gradient_interval": sampling[1]}
        return key

    def band_starts(self) -> list[int]:
        return [int(x) for x in np.cumsum([0] + [b.iterations for b in self.bands[:-1]])]

    def _load(self, key: dict | None) -> dict | None:
        """Rank 0 reads the state file of problem ``key``; every rank gets its progress, or every rank
        raises its error."""
        outcome: tuple[str, object] = ("ok", None)
        if key is not None:
            try:
                outcome = ("ok", load_state(self.state_path, key))
            except ValueError as exc:
                outcome = ("error", str(exc))
        kind, value = self.group.broadcast(outcome)
        if kind == "error":
            raise ValueError(value)
        return value

    def run(self, progress: bool = True,
            callback: Callable[[int, torch.Tensor, float], None] | None = None) -> InversionResult:
        """Iterate to the end of the last band, resuming from the state file when it has progress.

        ``callback(iteration, model, loss)`` runs on every rank after each iteration's state is saved; ``model``
        is the velocity, or the list of every parameter when more than one is inverted.
        """
        if self.state_path is not None and self.group.is_main:
            directory = os.path.dirname(os.path.abspath(self.state_path))
            if not os.path.isdir(directory):
                raise FileNotFoundError(f"state_path: directory {directory!r} does not exist")
        # Hashed once: the key covers the survey's data, which a per-iteration save must not re-read.
        key = self.problem_key() if self.group.is_main and self.state_path is not None else None
        saved = self._load(key)
        params = [s.clone() for s in self.starts]
        several = len(params) > 1
        # Several parameters are optimised in units of their own step (Adam's step 1 is lr of each): their
        # gradients then compare, and none falls to the order of Adam's eps (1e-8), which shortens steps (the
        # impedance, ~1e6 times the velocity, has gradients ~1e6 times smaller). One keeps its plain units.
        scales = self.lrs if several else [1.0]
        scaled = [(p / scale).requires_grad_(True) for p, scale in zip(params, scales)]
        optimizer = torch.optim.Adam([{"params": [x], "lr": lr / scale}
                                      for x, lr, scale in zip(scaled, self.lrs, scales)])
        losses: list[float] = []
        if saved is not None:
            with torch.no_grad():
                for p, x, m, scale in zip(params, scaled, [saved["model"], *saved.get("more_parameters", [])], scales):
                    p.copy_(m.to(p.device))
                    x.copy_(p / scale)
            optimizer.load_state_dict(saved["optimizer"])
            losses = list(saved["losses"])
        starts = self.band_starts()
        total = starts[-1] + self.bands[-1].iterations
        bar = tqdm(total=total, initial=len(losses), desc="FWI", unit="it", disable=not (progress and self.group.is_main))
        try:
            for iteration in range(len(losses), total):
                band = int(np.searchsorted(starts, iteration, side="right")) - 1
                loss, grads = self.gradient(params, iteration, band)
                for x, grad, constraints, scale in zip(scaled, grads, self.constraint_list, scales):
                    constraints.mask_gradient(grad)
                    x.grad = grad.mul_(scale)
                optimizer.step()
                with torch.no_grad():
                    for p, x, constraints, scale in zip(params, scaled, self.constraint_list, scales):
                        before = p.clone()
                        p.copy_(x * scale)
                        constraints.project(p, before)
                        x.copy_(p / scale)
                losses.append(loss)
                if key is not None:
                    progress_state = {"model": params[0].cpu(), "optimizer": optimizer.state_dict(),
                                      "losses": losses}
                    if several:
                        progress_state["more_parameters"] = [p.cpu() for p in params[1:]]
                    save_state(self.state_path, key, progress_state)
                bar.set_postfix(loss=f"{loss:.4g}", band=band, refresh=False)
                bar.update()
                if callback is not None:
                    callback(iteration, list(params) if several else params[0], loss)
        finally:
            bar.close()
        return InversionResult(params[0], losses, starts, resumed_from=0 if saved is None else len(saved["losses"]),
                               parameters=params)
