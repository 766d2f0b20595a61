"""Predicting a call's footprint without propagating: the call's own schedule, run on a stepper that
only knows shapes, in a workspace whose tensors live on the ``'meta'`` device and whose disk stores
create no files. Every buffer is allocated, tracked and released by the same code as in a real run,
so the predicted report matches the measured one buffer for buffer wherever sizes do not depend on
the data (lossless codecs; data-dependent codecs predict an upper bound)."""
from __future__ import annotations

import torch

from .driver import reverse
from .protocol import Stepper, state_layout
from .report import MemoryReport
from .schedules import Schedule
from .store import Workspace


class ShapeOnlyStepper:
    """``stepper``'s shapes with no-op steps: what a schedule needs to allocate what it would.

    The state's shape and dtype come from the stepper's ``state_shape`` and ``dtype``, so nothing that
    grows with the problem is allocated; a stepper without them is asked for one ``initial()`` state.
    """

    def __init__(self, stepper: Stepper) -> None:
        self._stepper = stepper
        self.state_shape, self.dtype = state_layout(stepper)

    def __getattr__(self, name: str):
        # Shapes and layout attributes (nt, snapshot_shape, strip_shape, rebuild_shape, ...) are the
        # real stepper's; every method below that would compute is a no-op.
        return getattr(self._stepper, name)

    def initial(self) -> torch.Tensor:
        return torch.empty(self.state_shape, dtype=self.dtype, device="meta")

    def advance(self, state, n0, n1, record=None, keep=None, strips=None) -> None:
        pass

    def save_fields(self, state, out) -> None:
        pass

    def retreat(self, fields, strips, n0, n1, keep) -> None:
        pass

    def begin_adjoint(self, need_wavelet: bool, need_model: bool) -> None:
        pass

    def adjoint(self, adj_state, kept, n0, n1, grad_record) -> None:
        pass

    def end_adjoint(self):
        return None, []


def predict(stepper: Stepper, schedule: Schedule, nshots: int, nrec: int, need_wavelet: bool,
            need_model: bool) -> MemoryReport:
    """The report a call with ``stepper`` and ``schedule`` would produce, forward and backward, with the
    gradients of the wavelet and/or the models as flagged; ``report.predicted`` is True."""
    report = MemoryReport(strategy=schedule.name, predicted=True)
    if not (need_wavelet or need_model):
        report.strategy = "none"
        report.forward_steps += stepper.nt
        return report
    dry = stepper if isinstance(stepper, ShapeOnlyStepper) else ShapeOnlyStepper(stepper)
    record = torch.empty((nshots, stepper.nt, nrec), dtype=dry.dtype, device="meta")
    ws = Workspace(report, torch.device("meta"), dry=True)
    try:
        tape = schedule.forward(dry, ws, record)
        reverse(dry, schedule, ws, tape, record, need_wavelet, need_model)
    finally:
        ws.close()
    return report
