"""Padding modes: their names, their aliases, and where each padded sample comes from.

convkit names five padding modes. Libraries disagree on what ``reflect`` means, so the
table below is the contract (``a b c d`` padded by two on each side):

=============  ====================  ==============  =================  ==============
convkit        result                NumPy ``pad``   SciPy ``ndimage``  PyTorch
=============  ====================  ==============  =================  ==============
``zeros``      ``0 0 a b c d 0 0``   ``constant``    ``constant``       ``zeros``
``reflect``    ``c b a b c d c b``   ``reflect``     ``mirror``         ``reflect``
``symmetric``  ``b a a b c d d c``   ``symmetric``   ``reflect``        (none)
``replicate``  ``a a a b c d d d``   ``edge``        ``nearest``        ``replicate``
``circular``   ``c d a b c d a b``   ``wrap``        ``wrap``           ``circular``
=============  ====================  ==============  =================  ==============

Unambiguous aliases are accepted: ``constant`` → zeros, ``edge``/``nearest`` →
replicate, ``wrap`` → circular, ``mirror`` → reflect. Any width is allowed, also wider
than the input; the result then follows ``numpy.pad`` (the pattern keeps repeating).

A non-zero mode is a gather: every padded position reads one input position.
:func:`pad_indices` gives that map, so any array library with a ``take`` can pad in
every mode, and the adjoint of padding (needed for gradients) is a scatter-add over the
same map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

PADDING_MODES: Final = ("zeros", "reflect", "symmetric", "replicate", "circular")

PADDING_MODE_ALIASES: Final = {
    "constant": "zeros",
    "edge": "replicate",
    "nearest": "replicate",
    "wrap": "circular",
    "mirror": "reflect",
}

_NUMPY_MODE: Final = {
    "zeros": "constant",
    "reflect": "reflect",
    "symmetric": "symmetric",
    "replicate": "edge",
    "circular": "wrap",
}


def canonical_padding_mode(mode: object) -> str:
    """Return convkit's name for a padding mode, resolving the aliases.

    >>> canonical_padding_mode("edge")
    'replicate'
    >>> canonical_padding_mode("reflect")
    'reflect'
    """
    if isinstance(mode, str):
        if mode in PADDING_MODES:
            return mode
        if mode in PADDING_MODE_ALIASES:
            return PADDING_MODE_ALIASES[mode]
    valid = ", ".join(repr(m) for m in PADDING_MODES)
    aliases = ", ".join(f"{a!r} ({m})" for a, m in PADDING_MODE_ALIASES.items())
    raise ValueError(
        f"padding_mode={mode!r} is not a padding mode; expected one of {valid} "
        f"or an alias: {aliases}"
    )


def pad_indices(size: int, low: int, high: int, mode: str) -> np.ndarray:
    """Map each position of a padded axis to the input position it copies.

    Returns an ``int64`` array of length ``low + size + high``. For ``mode="zeros"``
    padded positions are ``-1`` (they read no input). Widths larger than ``size``
    follow ``numpy.pad``.

    >>> pad_indices(4, 2, 2, "reflect").tolist()
    [2, 1, 0, 1, 2, 3, 2, 1]
    >>> pad_indices(4, 2, 2, "circular").tolist()
    [2, 3, 0, 1, 2, 3, 0, 1]
    >>> pad_indices(3, 1, 1, "zeros").tolist()
    [-1, 0, 1, 2, -1]
    """
    if size < 1:
        raise ValueError(f"cannot pad an axis of size {size}; expected size >= 1")
    if low < 0 or high < 0:
        raise ValueError(f"padding widths must be >= 0, got ({low}, {high})")
    p = np.arange(-low, size + high, dtype=np.int64)
    if mode == "zeros":
        return np.where((p >= 0) & (p < size), p, -1)
    if mode == "replicate":
        return np.clip(p, 0, size - 1)
    if mode == "circular":
        return np.mod(p, size)
    if mode == "symmetric":
        q = np.mod(p, 2 * size)
        return np.where(q < size, q, 2 * size - 1 - q)
    if mode == "reflect":
        if size == 1:
            return np.zeros_like(p)
        period = 2 * (size - 1)
        q = np.mod(p, period)
        return np.where(q < size, q, period - q)
    raise ValueError(canonical_padding_mode(mode))  # unknown mode: a clear message


def pad_numpy(x: np.ndarray, pads: Sequence[tuple[int, int]], mode: str) -> np.ndarray:
    """Pad the trailing ``len(pads)`` axes of a NumPy array in a convkit padding mode.

    >>> pad_numpy(np.arange(4.0), [(2, 2)], "symmetric").tolist()
    [1.0, 0.0, 0.0, 1.0, 2.0, 3.0, 3.0, 2.0]
    """
    if not any(lo or hi for lo, hi in pads):
        return x
    width = [(0, 0)] * (x.ndim - len(pads)) + [tuple(p) for p in pads]
    kwargs: dict[str, Any] = {}
    if mode == "reflect":
        # numpy's default reflect_type="even" is convkit's reflect.
        kwargs["reflect_type"] = "even"
    return np.pad(x, width, mode=_NUMPY_MODE[mode], **kwargs)  # type: ignore[call-overload]
