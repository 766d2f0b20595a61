"""Loading of the compiled kernels' shared library (``_sweep_acoustic*.so``, built by ``setup.py``) with ctypes.

The library is looked for once per process; on failure the reason is kept for :func:`load_error` and every
``impl='c'`` entry point raises with it. Kernel signatures are declared by the steppers that call them
(:mod:`sweep.propagator.c.stepper`), next to the ctypes mirror of their problem struct.
"""
from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.util
from pathlib import Path

__all__ = ["RunStats", "build_instructions", "code_path", "fma_peak", "library_available", "load", "load_error"]

_LIB_NAME = "_sweep_acoustic"
_ABI_VERSION = 8  # must match sweep_abi_version() in acoustic.c
_PACKAGE = __name__.rpartition(".")[0]  # sweep.propagator.c, where the extension module lives


class RunStats(ctypes.Structure):
    """Mirror of ``sweep_run_stats`` in pool.h: seconds of wall and CPU time, most threads used."""

    _fields_ = [("wall", ctypes.c_double), ("cpu", ctypes.c_double), ("threads", ctypes.c_int64)]


_lib: ctypes.CDLL | None = None
_error: str | None = None
_tried = False


def build_instructions() -> str:
    """How to get the compiled back-end (for error messages)."""
    return ("reinstall sweep from its source tree with `pip install -e .` (or `pip install .`); the build "
            "needs a C compiler (gcc or clang). Or use impl='eager'")


def _find_library() -> Path | None:
    """The built ``_sweep_acoustic`` shared library next to this file, or wherever the import system
    (e.g. an editable install's finder) places it."""
    here = Path(__file__).resolve().parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"{_LIB_NAME}{suffix}"
        if candidate.is_file():
            return candidate
    try:
        spec = importlib.util.find_spec(f"{_PACKAGE}.{_LIB_NAME}")
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def _declare(lib: ctypes.CDLL) -> None:
    lib.sweep_code_path.argtypes = []
    lib.sweep_code_path.restype = ctypes.c_char_p
    lib.sweep_fma_peak.argtypes = [ctypes.c_int, ctypes.c_int64]
    lib.sweep_fma_peak.restype = ctypes.c_double
    lib.sweep_test_fail_allocs.argtypes = [ctypes.c_int]
    lib.sweep_test_fail_allocs.restype = None


def load() -> ctypes.CDLL | None:
    """The library, loaded once; None (the reason in :func:`load_error`) when it is missing or unusable."""
    global _lib, _error, _tried
    if _tried:
        return _lib
    _tried = True
    path = _find_library()
    if path is None:
        _error = (f"the compiled library {_LIB_NAME}*.so was not built (not found in "
                  f"{Path(__file__).resolve().parent})")
        return None
    try:
        lib = ctypes.CDLL(str(path))
        version = lib.sweep_abi_version()
        if version != _ABI_VERSION:
            _error = f"{path} is a stale build (ABI version {version}, expected {_ABI_VERSION})"
            return None
        _declare(lib)
    except (OSError, AttributeError) as exc:
        _error = f"{path} exists but failed to load: {exc}"
        return None
    _lib = lib
    return _lib


def require() -> ctypes.CDLL:
    """The library, or RuntimeError saying why it is unavailable and how to build it."""
    lib = load()
    if lib is None:
        raise RuntimeError(f"impl='c' is not available: {_error}; {build_instructions()}")
    return lib


def library_available() -> bool:
    """Whether the compiled kernels are built and load; never raises."""
    try:
        return load() is not None
    except Exception as exc:  # a broken install must fall back, not crash the import of sweep
        global _error
        _error = f"loading the compiled library raised {type(exc).__name__}: {exc}"
        return False


def load_error() -> str | None:
    """Why the compiled back-end is unavailable, or None when it loads."""
    library_available()
    return _error


def code_path() -> str | None:
    """The kernels' code path: ``'native (avx2)'`` etc. for the default ``-march=native`` build; for a
    portable build (``SWEEP_PORTABLE=1``) the one picked at run time, ``'avx512'``, ``'avx2'`` or
    ``'baseline'`` (``SWEEP_ISA=avx2|baseline`` forces a lower one). None when the library is not built."""
    lib = load() if library_available() else None
    return None if lib is None else lib.sweep_code_path().decode()


def fma_peak(threads: int, iters: int = 20_000_000) -> float:
    """Measured peak float32 FMA throughput (flop/s) of the kernels' code path on ``threads`` threads: a
    short microbenchmark of independent vector FMA chains (about ``iters`` x 12 FMAs per thread)."""
    lib = load()
    if lib is None:
        raise RuntimeError(f"impl='c' is not available: {_error}")
    return float(lib.sweep_fma_peak(int(threads), int(iters)))


def _inject_allocation_failures(count: int) -> None:
    """Test hook: the next ``count`` kernel calls fail as if out of memory (0 turns it off)."""
    lib = load()
    if lib is None:
        raise RuntimeError(f"impl='c' is not available: {_error}")
    lib.sweep_test_fail_allocs(int(count))
