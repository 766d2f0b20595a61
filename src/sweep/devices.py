"""Which compute devices this torch build can use, checked before anything is created on one."""
from __future__ import annotations

import torch

__all__ = ["DeviceUnavailableError", "require_device"]


class DeviceUnavailableError(RuntimeError):
    """A device was asked for that this torch build or machine cannot provide."""


def require_device(device: torch.device | str | None, argument: str = "device") -> torch.device:
    """``torch.device(device)`` (CPU for None), after checking that this process can use it.

    Parameters
    ----------
    device : torch.device, str or None
        E.g. ``'cpu'``, ``'cuda'``, ``'cuda:1'``.
    argument : str
        The argument's name, for the error message.

    Raises
    ------
    ValueError
        ``device`` is not a device name torch knows.
    DeviceUnavailableError
        CUDA (or another accelerator) was asked for and this torch build has none, no device is visible,
        or the index is out of range. One line, saying which and what to use instead.
    """
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{argument}={device!r} is not a device torch knows ({exc})") from None
    if dev.type == "cpu" or dev.type == "meta":
        return dev
    if dev.type == "cuda":
        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            raise DeviceUnavailableError(
                f"{argument}={str(dev)!r}: CUDA is not available in this torch build ({torch.__version__}, built "
                "without CUDA); use device='cpu', or install a CUDA build of torch")
        count = torch.cuda.device_count()
        if count == 0 or not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"{argument}={str(dev)!r}: this torch build has CUDA but no CUDA device is visible (no GPU, a "
                "driver problem, or CUDA_VISIBLE_DEVICES empty); use device='cpu'")
        if dev.index is not None and dev.index >= count:
            raise DeviceUnavailableError(
                f"{argument}={str(dev)!r}: only {count} CUDA device(s) are visible (cuda:0 .. cuda:{count - 1})")
        return dev
    backend = getattr(torch, dev.type, None)
    available = getattr(backend, "is_available", None)
    if callable(available) and not available():
        raise DeviceUnavailableError(f"{argument}={str(dev)!r}: {dev.type} is not available in this torch build "
                                     "or machine; use device='cpu'")
    return dev
