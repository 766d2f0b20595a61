"""The physics-free driver: runs a schedule inside one ``torch.autograd.Function``."""
from __future__ import annotations

import torch

from .protocol import Stepper
from .report import MemoryReport
from .schedules import Schedule, new_adjoint
from .store import Tape, Workspace


def _new_record(stepper: Stepper, like: torch.Tensor, nshots: int, nrec: int) -> torch.Tensor:
    return torch.zeros((nshots, stepper.nt, nrec), dtype=like.dtype, device=like.device)


def reverse(stepper: Stepper, schedule: Schedule, ws: Workspace, tape: Tape, grad_record: torch.Tensor,
            need_wavelet: bool, need_model: bool) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
    """The backward pass: the schedule's reverse part, or, when only the wavelet needs a gradient, one
    adjoint sweep (it needs no forward values: nothing is replayed). Returns ``stepper.end_adjoint()``."""
    stepper.begin_adjoint(need_wavelet=need_wavelet, need_model=need_model)
    if need_model:
        schedule.backward(stepper, ws, tape, grad_record)
    else:
        adj = new_adjoint(stepper, ws)
        stepper.adjoint(adj, None, 0, stepper.nt, grad_record)
        ws.report.adjoint_steps += stepper.nt
        ws.free(adj)
    return stepper.end_adjoint()


class _Propagate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, stepper, schedule, report, shape, wavelet, *models):  # type: ignore[override]
        ws = Workspace(report, wavelet.device)
        record = _new_record(stepper, wavelet, *shape)
        try:
            tape = schedule.forward(stepper, ws, record)
        except BaseException:  # an error or an interrupt leaves nothing behind
            ws.close()
            raise
        # In-memory stores travel as saved tensors: autograd frees them after a backward pass that does
        # not retain the graph. Files stay with the workspace, removed when it closes or is collected.
        ctx.save_for_backward(*tape.tensors())
        tape.detach()
        ctx.run = (stepper, schedule, ws, tape)
        return record

    @staticmethod
    def backward(ctx, grad_record):  # type: ignore[override]
        stepper, schedule, ws, tape = ctx.run
        need_wavelet = ctx.needs_input_grad[4]
        need_models = ctx.needs_input_grad[5:]
        need_model = any(need_models)
        if ws.closed and tape.on_disk and need_model:
            raise RuntimeError(f"a second backward pass through a propagation with strategy {schedule.name!r}: its "
                               "files on disk were removed after the first backward pass, so it cannot run again; "
                               "keep the data in memory (storage 'device' or 'cpu') to use retain_graph=True")
        tape.attach(ctx.saved_tensors)
        try:
            grad_wavelet, grad_models = reverse(stepper, schedule, ws, tape, grad_record.contiguous(), need_wavelet,
                                                need_model)
        finally:
            tape.detach()
            ws.close()
        grad_models = [g if need else None for g, need in zip(grad_models, need_models)]
        return (None, None, None, None, grad_wavelet if need_wavelet else None, *grad_models)


def propagate(stepper: Stepper, schedule: Schedule, report: MemoryReport, nshots: int, nrec: int,
              wavelet: torch.Tensor, models: list[torch.Tensor]) -> torch.Tensor:
    """Run ``stepper`` for ``stepper.nt`` steps; returns receiver data (nshots, nt, nrec).

    When autograd needs a gradient (grad mode on and the wavelet or a model requires grad), ``schedule``
    keeps what its reverse part needs and ``backward`` runs that reverse part; otherwise nothing is stored.
    """
    needs_grad = torch.is_grad_enabled() and (wavelet.requires_grad or any(m.requires_grad for m in models))
    if not needs_grad:
        report.strategy = "none"
        record = _new_record(stepper, wavelet, nshots, nrec)
        stepper.advance(stepper.initial(), 0, stepper.nt, record=record)
        report.forward_steps += stepper.nt
        return record
    report.strategy = schedule.name
    return _Propagate.apply(stepper, schedule, report, (nshots, nrec), wavelet, *models)
