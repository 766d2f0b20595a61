"""Values as error messages should show them."""
from __future__ import annotations

import math

import numpy as np


def plain(value: object) -> object:
    """``value`` with NumPy scalars and arrays (also inside lists and tuples) turned into Python numbers and
    lists, so that ``f"{plain(value)!r}"`` reads ``3`` and ``0.001``, not ``np.int64(3)`` and
    ``np.float32(0.001)``."""
    if isinstance(value, np.floating):
        # NumPy's own shortest digits (0.001), not float64's view of a float32 (0.0010000000474974513).
        return float(str(value))
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def round_down(x: float, digits: int = 6) -> float:
    """``x`` (> 0) rounded towards zero to ``digits`` significant digits, so a quoted limit is itself within it.

    The result is the float nearest that decimal (``0.0019``, not ``19 * 1e-4 = 0.0019000000000000002``), which
    is still at most ``x``: ``x`` is itself a float at or above the decimal.
    """
    exponent = math.floor(math.log10(x)) - digits + 1
    mantissa = math.floor(x / 10.0 ** exponent)
    if float(f"{mantissa + 1}e{exponent}") <= x:  # the quotient fell just short of a whole number (2.0 / 1e-5)
        mantissa += 1
    return float(f"{mantissa}e{exponent}")
