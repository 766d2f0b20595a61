"""The memory guard: a call's predicted footprint against what is available where it would live.

Physics-free: it compares a predicted :class:`~sweep.memory.report.MemoryReport` with
:class:`~sweep.memory.available.Available` numbers; what to suggest instead is the caller's
(``PropTorch`` asks the planner).
"""
from __future__ import annotations

from typing import Callable

from .available import Available
from .report import MemoryReport

MIB = 2**20


class InsufficientMemoryError(MemoryError):
    """A call whose predicted footprint exceeds what is available, raised before the call allocates
    anything that grows with the problem.

    Attributes
    ----------
    needed : dict of str to int
        Predicted bytes per place (``'host'``, ``'device'`` for a CUDA device, ``'disk'``).
    available : dict of str to Available
        What was available in each of those places when the call was made.
    suggestion : str
        The fastest exact strategy that fits what is available, or the smallest footprint there is.
    """

    def __init__(self, message: str, needed: dict[str, int], available: dict[str, Available],
                 suggestion: str) -> None:
        super().__init__(message)
        self.needed, self.available, self.suggestion = needed, available, suggestion

    def __reduce__(self):
        # Rebuilt whole when it crosses a process boundary (multiprocessing pickles exceptions).
        return type(self), (str(self), self.needed, self.available, self.suggestion)


def needed_bytes(report: MemoryReport, separate_device: bool) -> dict[str, int]:
    """Predicted bytes per place: the tracked peak per location plus the call's other arrays
    (``report.other_bytes``, which live on the compute device).

    Parameters
    ----------
    report : MemoryReport
        A prediction (``PropTorch.estimate_memory``'s).
    separate_device : bool
        The compute device has its own memory (CUDA): ``'device'`` and ``'host'`` are counted apart.
        Otherwise (a CPU) they are one RAM: ``'host'`` is ``report.process_bytes_estimate``, the peak of
        both together plus the other arrays.
    """
    if separate_device:
        needed = {"device": report.peak_bytes.get("device", 0) + report.other_bytes,
                  "host": report.peak_bytes.get("host", 0)}
    else:
        needed = {"host": report.process_bytes_estimate}
    needed["disk"] = report.peak_bytes.get("disk", 0)
    return {place: nbytes for place, nbytes in needed.items() if nbytes}


def _mib(nbytes: int) -> str:
    return f"{nbytes / MIB:,.2f} MiB"


def check_fits(report: MemoryReport, available: dict[str, Available | None], separate_device: bool,
               suggest: Callable[[], str]) -> None:
    """Raise :class:`InsufficientMemoryError` when a place needs more than is available there.

    The call may use all of what is available: only ``needed > available`` is refused (see
    :func:`needed_bytes` for ``needed``). A place whose availability is unknown (None, or absent) is
    not checked. ``suggest()`` is asked only when something does not fit; its line ends the message.
    """
    needed = needed_bytes(report, separate_device)
    short = [p for p, n in needed.items() if available.get(p) is not None and n > available[p].nbytes]
    if not short:
        return
    carrier = "device" if separate_device else "host"  # where the call's other arrays live
    lines = [f"this call needs more memory than is available (predicted for strategy {report.strategy}; "
             "PropTorch(memory_guard=False) skips this check):"]
    for place, nbytes in needed.items():
        found = available.get(place)
        have = "not checked" if found is None else f"available {_mib(found.nbytes)} ({found.source})"
        parts = (f" = tracked peak {_mib(nbytes - report.other_bytes)} + the call's other arrays "
                 f"{_mib(report.other_bytes)}" if place == carrier and report.other_bytes else "")
        lines.append(f"  {place}: predicted {_mib(nbytes)}{parts}; {have}{'  <- too large' if place in short else ''}")
    suggestion = suggest()
    lines.append(f"  {suggestion}")
    raise InsufficientMemoryError("\n".join(lines), needed, {p: a for p, a in available.items() if a is not None},
                                  suggestion)
