"""PropTorch: the user-facing differentiable propagator."""
from __future__ import annotations

import logging
import math
import numbers
import os
import warnings
from typing import Sequence

import torch

from ..equations import Acoustic
from ..equations.stencils import check_space_order, stencil_radius
from ..messages import plain
from ..resampling import downsample
from ..memory import BoundarySaving, MemoryReport, available, propagate
from ..memory.guard import check_fits
from ..memory.predict import predict
from ..memory.protocol import state_layout
from ..memory.store import new_private_dir
from .grid import AXIS_NAMES, PaddedGrid
from .registry import impls, stepper_class
from .options import CUDAOptions, EagerOptions, MemoryOptions
from .setup import build_problem, check_models
from .strategy import make_schedule, resolve_memory
from .substep import StepRatio

IMPLS = ("eager", "c")
log = logging.getLogger("sweep")


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a positive finite number, got {plain(value)!r}")
    return float(value)


def _count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {plain(value)!r}")
    return int(value)


def _compiled_available() -> bool:
    try:
        from .c import library_available
    except ImportError:
        return False
    return library_available()


def _compiled_unavailable_message() -> str:
    """Why impl='c' cannot run here (not built, or built but failing to load) and how to build it."""
    reason = "the compiled back-end is not built in this installation"
    try:
        from .c import load_error
    except ImportError as exc:
        reason = f"the compiled back-end's Python module fails to import ({exc})"
    else:
        reason = load_error() or reason
    return (f"impl='c': {reason}; reinstall with `pip install -e .` (needs a C compiler) "
            "or use impl='eager'")


_warned_fallback = False
_logged_off_cpu = False


def choose_impl(impl: str | None, device: torch.device, available: Sequence[str] = IMPLS) -> str:
    """The back-end that runs on ``device``: ``impl`` itself when given, else ``'c'`` on the CPU where it is
    built and ``'eager'`` elsewhere. ``available`` are the back-ends with a stepper for the equation and
    dimension (see :mod:`sweep.propagator.registry`); ``impl=None`` picks among them.

    The equation's device decides, since every call's models must be on it. ``impl=None`` falling back
    to ``'eager'`` warns once when the compiled back-end is not built (a slower run that the user can fix)
    and logs one INFO line on logger ``'sweep'`` when the device is not the CPU (nothing to fix: the C
    kernels are CPU code).

    Raises
    ------
    ValueError
        ``impl='c'`` with a device other than the CPU; an ``impl`` not in ``available``.
    RuntimeError
        ``impl='c'`` and the compiled back-end is not built or fails to load.
    """
    global _warned_fallback, _logged_off_cpu
    if impl is not None and impl not in available:
        raise ValueError(f"impl={impl!r} has no stepper for this equation and dimension; available: {list(available)}")
    if impl == "c":
        if device.type != "cpu":
            raise ValueError(f"impl='c' runs on the CPU only, but the equation's device is {device}; use "
                             "impl='eager', or impl=None to choose by device")
        if not _compiled_available():
            raise RuntimeError(_compiled_unavailable_message())
        return "c"
    if impl is not None:
        return impl
    if device.type != "cpu":
        if not _logged_off_cpu:
            log.info("impl=None on device %s: the compiled back-end runs on the CPU only; using impl='eager'", device)
            _logged_off_cpu = True
        return "eager"
    if "c" not in available:
        return "eager"
    if _compiled_available():
        return "c"
    if not _warned_fallback:
        warnings.warn("the compiled back-end (impl='c') is not available; using impl='eager', which is slower",
                      stacklevel=3)
        _warned_fallback = True
    return "eager"


class PropTorch:
    r"""Differentiable wave propagation of ``equation`` on a (nz, nx) or (nz, ny, nx) grid.

    Discretisation: leapfrog in time, centred differences of ``space_order`` in space, C-PML of ``abcn``
    cells outside the physical grid (the model is edge-replicated into it, with no gradient through the
    padding). The wavelet ``f`` drives :math:`p_{tt} - v^2 \nabla^2 p = v^2 f(t) \delta(\mathbf{x}-\mathbf{x}_s)`
    with the delta spread over one cell (``1/dh^2`` in 2-D, ``1/dh^3`` in 3-D): the recorded pressure is ``f``
    convolved with the 2-D Green's function :math:`H(t - r/v) / (2\pi\sqrt{t^2 - r^2/v^2})`, or the 3-D one
    :math:`\delta(t - r/v) / (4\pi r)`. Sample ``n`` of the data is the
    field at ``t = n dt``; wavelet sample ``n`` enters the step from ``n`` to ``n+1``.

    Parameters
    ----------
    equation : Acoustic or Acoustic3D
    shape : (int, int) or (int, int, int)
        Physical grid (nz, nx) for ``Acoustic``, (nz, ny, nx) for ``Acoustic3D``; axis 0 is depth. An axis
        with absorbing faces needs at least ``space_order // 2`` cells per such face.
    dh : float
        Grid spacing, m. dt : float, time step, s: the wavelet's and the data's sample interval. nt : int,
        number of time steps (of data samples, with ``substep``).
    abcn : int
        Absorbing cells on each face (not on top with ``free_surface``).
    free_surface : bool
        Pressure-release top: the field vanishes on the rows above row 0.
    space_order : {2, 4, 6, 8}
    source_type, receiver_type : str or list of str, optional
        Field names or aliases; default the equation's.
    impl : {'eager', 'c'}, optional
        Back-end. Default: ``'c'`` when the equation's device is the CPU and the compiled back-end is
        built; ``'eager'`` on any other device (one INFO line on logger ``'sweep'``: the C kernels are CPU
        code) or when it is not built (a one-time warning). ``solver.impl`` is the back-end every call runs.
    use_ckpt : bool, optional
        ``True``: chunk checkpointing with ``ckpt_chunks``; ``False``: full storage; ``None``: the
        back-end's default (chunk checkpointing).
    ckpt_chunks : int
        Chunk length in time steps.
    memory : MemoryOptions, optional
        The canonical strategy choice; conflicting explicit choices raise ValueError.
    eager_options : EagerOptions, cuda_options : CUDAOptions
    pml_freq : float, optional
        Frequency (Hz) of the C-PML frequency shift; default the peak frequency of each call's wavelet.
        The absorbing layer then depends on the wavelet, held fixed in the gradient: pass ``pml_freq``
        for data exactly linear in the wavelet.
    pml_vmax : float, optional
        Velocity (m/s) that sets the C-PML damping ``d0``; default the peak of each call's velocity
        model. Given, the absorbing layer no longer depends on the model at all. The stability check
        uses the model's own peak velocity either way.
    substep : None, 'auto' or int
        Time sub-stepping. None (default): the solver steps at ``dt``, and a ``dt`` above the stability
        limit is an error (naming this option). An int r >= 1: ``r`` internal steps of ``dt / r`` per data
        sample. ``'auto'``: the smallest stable r, fixed from ``pml_vmax`` when given, else from the first
        call's model, and kept: a later call whose model needs a larger r raises (an inversion never
        changes its discretisation). With r > 1 each call upsamples the wavelet band-limited to the
        internal rate and downsamples the receivers anti-aliased to ``dt`` (:mod:`sweep.resampling`), both
        inside the differentiable call: the wavelet's and the models' gradients flow through them. Memory
        strategies (and ``ckpt_chunks``, Revolve's steps, boundary saving's strips) count internal steps.
        :attr:`step_ratio` and the memory report say which r a call used.
    memory_guard : bool
        Before each call allocates anything that grows with the problem, compare its prediction
        (:meth:`estimate_memory`'s: the strategy's tracked peak per location plus the call's other
        arrays) with what is available now where each buffer would live: host RAM (the smaller of
        ``MemAvailable`` and the cgroup's headroom; the compute device's memory too on a CPU), the free
        memory of a CUDA device, the free space of the disk directory; raise
        :class:`~sweep.memory.InsufficientMemoryError` (a ``MemoryError``) naming the bytes by
        location, what is available and the fastest exact strategy that fits, when a location needs
        more than is available. Default True; False skips the check. The prediction is made once per
        call shape and cached; availability is read at every call (about 0.1 ms). It is a number read
        now, not a reservation: processes sharing a node all see the same memory.

    Gradient
    --------
    The gradient is that of the discrete forward model with respect to the physical model (the grid's shape) and
    the wavelet, holding fixed (i) the model's edge-replicated copy in the padding, which carries no
    gradient (this is what makes boundary saving exact), and (ii) the absorbing layer's profile, whose
    damping comes from the model's peak velocity (or ``pml_vmax``) and whose frequency shift from the
    wavelet's peak frequency (or ``pml_freq``). A finite-difference check therefore agrees only when
    (a) the physical cells the padding copies are held fixed: with ``abcn > 0``, the outermost ring
    (2-D: first and last columns, last row, and also the first row unless ``free_surface``, whose top is
    not padded; 3-D: likewise the outermost cells of every face); (b) the perturbation leaves the peak velocity unchanged, or ``pml_vmax`` is given; and
    (c) for a wavelet check, ``pml_freq`` is given.
    """

    def __init__(self, equation: Acoustic, shape: Sequence[int], dh: float, dt: float, nt: int, *,
                 abcn: int = 20, free_surface: bool = False, space_order: int = 4,
                 source_type: str | Sequence[str] | None = None, receiver_type: str | Sequence[str] | None = None,
                 impl: str | None = None, use_ckpt: bool | None = None, ckpt_chunks: int = 100,
                 memory: MemoryOptions | None = None, eager_options: EagerOptions | None = None,
                 cuda_options: CUDAOptions | None = None, pml_freq: float | None = None,
                 pml_vmax: float | None = None, substep: int | str | None = None,
                 memory_guard: bool = True) -> None:
        if not isinstance(equation, Acoustic):
            raise TypeError(f"equation must be an Acoustic or Acoustic3D, got {type(equation).__name__}")
        axes = AXIS_NAMES[equation.ndim]
        expected = "(" + ", ".join(f"n{a}" for a in axes) + ")"
        if not (isinstance(shape, (tuple, list)) and len(shape) == equation.ndim):
            other = "" if not isinstance(shape, (tuple, list)) or len(shape) not in AXIS_NAMES else \
                f" ({len(shape)} axes: a {len(shape)}-D grid needs {'Acoustic3D' if len(shape) == 3 else 'Acoustic'})"
            raise ValueError(f"shape must be {expected} for {type(equation).__name__}, got {plain(shape)!r}{other}")
        self.shape = tuple(_count(f"shape[{i}] (n{a})", n, 1) for i, (a, n) in enumerate(zip(axes, shape)))
        self.dh, self.dt = _positive("dh", dh), _positive("dt", dt)
        self.nt = _count("nt", nt, 1)
        self.abcn = _count("abcn", abcn, 0)
        if not isinstance(free_surface, bool):
            raise ValueError(f"free_surface must be a bool, got {plain(free_surface)!r}")
        self.space_order = check_space_order(space_order)
        self.radius = stencil_radius(self.space_order)
        self.equation = equation
        self.source_fields = equation.resolve_fields(source_type, equation.default_source_fields, "source_type")
        self.receiver_fields = equation.resolve_fields(receiver_type, equation.default_receiver_fields, "receiver_type")
        if impl is not None and impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS} or None, got {impl!r}")
        if use_ckpt is not None and not isinstance(use_ckpt, bool):
            raise ValueError(f"use_ckpt must be True, False or None, got {plain(use_ckpt)!r}")
        self.ckpt_chunks = _count("ckpt_chunks", ckpt_chunks, 1)
        for name, value, kind in (("memory", memory, MemoryOptions), ("eager_options", eager_options, EagerOptions),
                                  ("cuda_options", cuda_options, CUDAOptions)):
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{name} must be a {kind.__name__} or None, got {type(value).__name__}")
        self.pml_freq = None if pml_freq is None else _positive("pml_freq", pml_freq)
        self.pml_vmax = None if pml_vmax is None else _positive("pml_vmax", pml_vmax)
        self.eager_options = eager_options or EagerOptions()
        self.impl = choose_impl(impl, equation.device, impls(equation.name, equation.ndim))
        self.cuda_options = cuda_options or CUDAOptions()
        self.memory = resolve_memory(self.impl, memory, use_ckpt, self.ckpt_chunks, cuda_options)
        if not isinstance(memory_guard, bool):
            raise ValueError(f"memory_guard must be a bool, got {memory_guard!r}")
        self.memory_guard = memory_guard
        self._schedule = make_schedule(self.memory)  # None for strategy='auto': planned per call shape
        self._plans: dict = {}  # strategy='auto': call shape -> (Plan, schedule)
        self._predictions: dict = {}  # the guard's: (call shape, gradient flags) -> predicted report
        self.grid = PaddedGrid(shape=self.shape, abcn=self.abcn, free_surface=free_surface)
        thin = self.grid.thinnest_axis(self.radius)
        if thin is not None:
            raise ValueError(f"shape {self.shape}: axis {thin} has {self.shape[axes.index(thin)]} cells, fewer than the "
                             f"{self.radius} cells per absorbing face that space_order={self.space_order} needs "
                             "beside each layer; use a larger grid, a lower space_order or abcn=0")
        self._last_report: MemoryReport | None = None
        self._ratio = StepRatio(substep, self.dt, self.max_stable_dt, self.pml_vmax)

    @property
    def free_surface(self) -> bool:
        return self.grid.free_surface

    @property
    def step_ratio(self) -> int | None:
        """Internal steps per data sample (1 without sub-stepping); None while ``substep='auto'`` waits for
        its first call to fix it."""
        return self._ratio.ratio

    def max_stable_dt(self, vmax: float) -> float:
        """Largest stable time step (s) on this grid for peak velocity ``vmax`` (m/s)."""
        return self.equation.max_stable_dt(vmax, self.dh, self.space_order)

    def _make_stepper(self, problem, models):
        cls = stepper_class(self.equation.name, self.equation.ndim, self.impl)
        options = {"use_compile": self.eager_options.use_compile} if self.impl == "eager" else {}
        return cls(problem, models, image_interval=self.memory.gradient_interval, **options)

    def _prepare(self, wavelet, sources, receivers, models):
        """Validated inputs of one call: (models, problem, wavelet with its autograd link, stepper)."""
        names = [s.name for s in self.equation.MODEL_SPECS]
        models = check_models(models, names, self.shape, self.equation.device)
        self.equation.check_model_values(models)
        vp = models[0]
        vmax = self.equation.stability_velocity(models, self.space_order)
        ratio = self._ratio.for_model(vmax)
        hint = self._ratio.hint(vmax) if self._ratio.substep is None else ""
        problem, wav = build_problem(grid=self.grid, dh=self.dh, dt=self.dt, nt=self.nt,
                                     space_order=self.space_order, max_stable_dt=self.max_stable_dt(vmax),
                                     velocity=vp, wavelet=wavelet, sources=sources, receivers=receivers,
                                     pml_freq=self.pml_freq, pml_vmax=self.pml_vmax, ratio=ratio, unstable_hint=hint)
        return models, problem, wav, self._make_stepper(problem, models)

    @staticmethod
    def _call_shape(problem) -> tuple:
        """What a prediction or a plan depends on besides the propagator's own settings."""
        return (problem.nshots, problem.nrec, problem.nsrc, problem.dtype, str(problem.device))

    @staticmethod
    def _needs(wav: torch.Tensor, models: Sequence[torch.Tensor]) -> tuple[bool, bool]:
        """(wavelet gradient, model gradient) as autograd will ask for them in this call."""
        grad = torch.is_grad_enabled()
        return grad and wav.requires_grad, grad and any(m.requires_grad for m in models)

    def _schedule_for(self, stepper, problem) -> tuple[object, str | None]:
        """The call's schedule; for strategy='auto' the plan for this call shape (cached) and its reason."""
        if self._schedule is not None:
            return self._schedule, None
        key = self._call_shape(problem)
        if key not in self._plans:
            from .planner import plan

            chosen = plan(self.memory, stepper, problem.nshots, problem.nrec, problem.device,
                          self._other_bytes(problem, stepper, True, True))
            self._plans[key] = (chosen, make_schedule(chosen.memory))
        chosen, schedule = self._plans[key]
        return schedule, chosen.reason

    def _other_bytes(self, problem, stepper, need_wavelet: bool, need_model: bool) -> int:
        """The call's arrays outside the strategy's buffers, bytes: receiver data (and its gradient),
        gradient accumulators and the padded model; without a gradient, the one forward state."""
        item = torch.empty((), dtype=problem.dtype).element_size()
        # The record at the internal rate, and with sub-stepping the data downsampled from it.
        steps = stepper.nt + (self.nt if stepper.nt != self.nt else 0)
        data = problem.nshots * steps * problem.nrec * item
        padded = stepper.model_bytes()
        if need_wavelet or need_model:
            grads = (math.prod(stepper.snapshot_shape) * item if need_model else 0) + \
                (problem.wavelet.numel() * item if need_wavelet else 0)
            return 2 * data + padded + grads
        return data + padded + math.prod(state_layout(stepper)[0]) * item

    def _predict(self, problem, stepper, schedule, need_wavelet: bool, need_model: bool) -> MemoryReport:
        """The call's predicted report: the schedule run dry, plus the call's other arrays. The one path
        behind :meth:`estimate_memory` and the memory guard."""
        report = predict(stepper, schedule, problem.nshots, problem.nrec, need_wavelet, need_model)
        report.other_bytes = self._other_bytes(problem, stepper, need_wavelet, need_model)
        return report

    def _guard(self, problem, stepper, schedule, need_wavelet: bool, need_model: bool) -> None:
        """Raise InsufficientMemoryError if the call's prediction exceeds what is available (see
        ``memory_guard``). The prediction is cached per call shape: an FWI loop pays its dry run once."""
        key = (self._call_shape(problem), need_wavelet, need_model)
        if key not in self._predictions:
            self._predictions[key] = self._predict(problem, stepper, schedule, need_wavelet, need_model)
        report = self._predictions[key]
        separate = problem.device.type != "cpu"  # a CPU's 'device' memory is host RAM
        disk_dir = getattr(schedule, "disk_dir", None)
        places = {"host": available.host_memory()}  # read at every call: it changes
        if separate:
            places["device"] = available.device_memory(problem.device)
        if report.peak_bytes.get("disk"):
            places["disk"] = available.disk_space(disk_dir)
            if places["disk"].nbytes < report.peak_bytes["disk"]:
                # A directory that takes no files at all (a read-only or pseudo file system, which
                # reports 0 bytes free) is refused as such, as the store would when creating one.
                os.rmdir(new_private_dir(disk_dir, "BoundaryOptions" if isinstance(schedule, BoundarySaving)
                                         else "CkptOptions"))

        def suggest() -> str:
            if not (need_wavelet or need_model):
                return ("a call without gradient keeps nothing for a backward pass, so no memory strategy "
                        "makes it smaller: propagate fewer shots per call")
            from .planner import suggest as fastest_fitting

            memory = places["device" if separate else "host"]
            budget = None if memory is None else memory.nbytes - report.other_bytes
            return fastest_fitting(stepper, problem.nshots, problem.nrec, budget,
                                   available.disk_space(disk_dir).nbytes, disk_dir)

        check_fits(report, places, separate, suggest)

    def __call__(self, wavelet, sources, receivers, models: Sequence[torch.Tensor]) -> torch.Tensor:
        """Propagate and record.

        Parameters
        ----------
        wavelet : (nt,), (nshots, nt) or (nshots, nsrc, nt), numpy or torch
            Source time function(s), one sample per time step.
        sources : int (nshots, ndim) or (nshots, nsrc, ndim)
            Grid indices of the physical grid: ``[x, z]`` (column, row) in 2-D, ``[x, y, z]`` in 3-D.
        receivers : int (nshots, nrec, ndim)
            Grid indices, likewise.
        models : list of float32/float64 tensors of the grid's shape in ``equation.MODEL_SPECS`` order
            Gradients flow to those that require grad (and to the wavelet if it does).

        Returns
        -------
        torch.Tensor, (nshots, nt, nrec, ncomp), the models' dtype and device.

        Raises
        ------
        sweep.memory.InsufficientMemoryError
            With ``memory_guard`` (the default), before anything that grows with the problem is
            allocated, when the call's prediction exceeds what is available (see the class docstring).
        """
        models, problem, wav, stepper = self._prepare(wavelet, sources, receivers, models)
        schedule, reason = self._schedule_for(stepper, problem)
        if self.memory_guard:
            self._guard(problem, stepper, schedule, *self._needs(wav, models))
        report = MemoryReport(strategy=schedule.name)
        if reason:
            report.notes.append(reason)
        self._note_sampling(report, problem)
        self._last_report = report
        data = propagate(stepper, schedule, report, problem.nshots, problem.nrec, wav, models)
        if problem.nt != self.nt:
            data = downsample(data.transpose(1, 2), problem.nt // self.nt).transpose(1, 2)
        return data.unsqueeze(-1).expand(*data.shape, len(self.receiver_fields))

    def _note_sampling(self, report: MemoryReport, problem) -> None:
        """Notes on time sampling: with gradient sampling, which steps are imaged; with sub-stepping, r and the
        internal step (the report's step counts are internal)."""
        k = self.memory.gradient_interval
        if k > 1:
            report.notes.append(f"gradient sampling: the model gradient images every {k}th of the {problem.nt} steps "
                                f"(weighted {k}; the snapshots of the others are not kept): an approximation, the "
                                "wavelet gradient stays exact")
        if problem.nt != self.nt:
            report.notes.append(f"time sub-stepping: {problem.nt // self.nt} internal steps of {problem.dt:.6g} s per "
                                f"data sample of {self.dt:g} s ({self._ratio.source}); {problem.nt} internal steps, "
                                "which the step counts and the strategies' steps count")

    def estimate_memory(self, wavelet, sources, receivers, models: Sequence[torch.Tensor],
                        gradient: bool | None = None) -> MemoryReport:
        """The memory report the call with these arguments would produce, forward and backward, without
        propagating (same arguments as a call; nothing is computed, allocated or written).

        The call's own schedule runs on a shape-only stepper in a workspace of ``'meta'`` tensors, so
        the predicted buffers, stored bytes (by location, dtype and role), tracked peaks and step counts
        equal the measured report's wherever sizes do not depend on the data (every lossless strategy,
        store and codec); data-dependent sizes are predicted as upper bounds. Disk buffers have no path
        (no file is created). ``process_bytes_estimate`` adds the call's other arrays (data and its
        gradient, gradient accumulators, the padded model) to the tracked peak. The memory guard
        compares this very prediction with what is available.

        Parameters
        ----------
        gradient : bool, optional
            None (default): as the call would, a gradient for the inputs that require grad (none under
            ``torch.no_grad()``, and then the report is strategy ``'none'`` with a note saying why).
            True: the call with a model gradient (and a wavelet gradient if the wavelet requires grad),
            whatever the models' ``requires_grad`` and the grad mode. False: a call without gradient.
        """
        if gradient is not None and not isinstance(gradient, bool):
            raise ValueError(f"gradient must be None, True or False, got {gradient!r}")
        models, problem, wav, stepper = self._prepare(wavelet, sources, receivers, models)
        schedule, reason = self._schedule_for(stepper, problem)
        need_wavelet, need_model = self._needs(wav, models)
        if gradient is not None:
            need_wavelet, need_model = gradient and wav.requires_grad, gradient
        report = self._predict(problem, stepper, schedule, need_wavelet, need_model)
        if reason:
            report.notes.append(reason)
        self._note_sampling(report, problem)
        if not (need_wavelet or need_model):
            why = ("gradient=False" if gradient is False else
                   "grad mode is off (torch.no_grad())" if not torch.is_grad_enabled() else
                   "neither the models nor the wavelet require grad")
            report.notes.append(f"no gradient: {why}, so the call only propagates forward and keeps nothing for a "
                                f"backward pass (strategy {schedule.name} is not used); "
                                "estimate_memory(..., gradient=True) predicts the call with a model gradient")
        return report

    def memory_report(self) -> MemoryReport:
        """Storage footprint (every buffer, by location and dtype) and step counts of the last call;
        the backward pass's replays and buffers are added to it when it runs."""
        if self._last_report is None:
            raise RuntimeError("memory_report(): the propagator has not been called yet")
        return self._last_report
