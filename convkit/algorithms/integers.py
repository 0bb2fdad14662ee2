"""Integers through floating arithmetic: when float64 computes a sum of integer products
exactly, the largest magnitude in an array without overflow, and rounding back with the
wrap-around of integer arithmetic."""

from __future__ import annotations

import math
from typing import Any

FLOAT64_EXACT = 2**53
"""Integers of magnitude below this are exact in float64."""


def integer_exact(
    max1: int | float, max2: int | float, taps: int, bound: int | float = FLOAT64_EXACT
) -> bool:
    """Whether every partial sum of a convolution of integers with these magnitudes stays
    below ``bound`` (then float64 computes it exactly; SciPy's test for FFT uses 2**52).

    Pass the magnitudes as Python ints (:func:`max_magnitude`): the product is then exact
    at any size. Floats work too (the bound is a power of two, so rounding never carries
    a product across it); a negative value is taken as the magnitude it stands for (an
    ``abs`` that wrapped around at ``-2**63``).

    >>> integer_exact(255, 255, 1025)
    True
    >>> integer_exact(2**63, 1, 2)  # int64's minimum: far beyond float64's exact range
    False
    """
    return abs(max1) * abs(max2) * taps < bound


def max_magnitude(xp: Any, a: Any) -> int:
    """The largest ``|a|`` of an integer (or bool) array, as a Python int: taken from
    its minimum and maximum, so it cannot overflow (``abs(-2**63)`` wraps around in
    int64). 0 for an empty array.

    >>> import numpy as np
    >>> max_magnitude(np, np.array([-2**63, 3]))
    9223372036854775808
    """
    if math.prod(a.shape) == 0:
        return 0
    try:
        low, high = xp.min(a), xp.max(a)
    except (NotImplementedError, RuntimeError):  # torch: no min/max for uint16/32/64
        wide = xp.astype(a, xp.float64)  # rounding cannot move a value across 2**53
        low, high = xp.min(wide), xp.max(wide)
    return max(abs(int(low)), abs(int(high)))


def round_to_integers(xp: Any, y: Any, dtype: Any) -> Any:
    """An integer-valued float result ``y`` rounded and cast to the integer ``dtype``,
    through (u)int64 so that values outside ``dtype``'s range wrap around (two's
    complement), as an integer computation in ``dtype`` gives; a direct float-to-int8
    cast of such values is undefined. ``dtype`` may be ``bool`` (nonzero is true).

    >>> import numpy as np
    >>> round_to_integers(np, np.array([127.0, 128.0, -129.2]), np.int8)
    array([ 127, -128,  127], dtype=int8)
    """
    y = xp.round(y)
    if dtype == xp.bool:
        return y != 0
    wide = xp.uint64 if xp.isdtype(dtype, "unsigned integer") else xp.int64
    return xp.astype(xp.astype(y, wide), dtype)
