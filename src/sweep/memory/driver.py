"""The physics-free driver: runs a schedule inside one ``torch.autograd.Function``."""
from __future__ import annotations

import torch

from .protocol import Stepper
from .report import MemoryReport
from .store import DeviceStore


def _new_record(stepper: Stepper, like: torch.Tensor, nshots: int, nrec: int) -> torch.Tensor:
    return torch.zeros((nshots, stepper.nt, nrec), dtype=like.dtype, device=like.device)


class _Propagate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, stepper, schedule, report, shape, wavelet, *models):  # type: ignore[override]
        store = DeviceStore(report)
        record = _new_record(stepper, wavelet, *shape)
        tape = schedule.forward(stepper, store, record)
        # Saved tensors follow autograd's lifetime rules: freed after a backward without retain_graph.
        ctx.save_for_backward(*tape)
        ctx.run = (stepper, schedule, store)
        return record

    @staticmethod
    def backward(ctx, grad_record):  # type: ignore[override]
        stepper, schedule, store = ctx.run
        tape = ctx.saved_tensors
        need_wavelet = ctx.needs_input_grad[4]
        need_models = ctx.needs_input_grad[5:]
        stepper.begin_adjoint(need_wavelet=need_wavelet, need_model=any(need_models))
        schedule.backward(stepper, store, tape, grad_record.contiguous())
        grad_wavelet, grad_models = stepper.end_adjoint()
        grad_models = [g if need else None for g, need in zip(grad_models, need_models)]
        return (None, None, None, None, grad_wavelet if need_wavelet else None, *grad_models)


def propagate(stepper: Stepper, schedule: object, report: MemoryReport, nshots: int, nrec: int,
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
