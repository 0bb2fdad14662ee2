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


# -- padding and its adjoint on any array-API library ---------------------------------


def array_device(a: Any) -> Any:
    """The device of an array: its ``.device`` (NumPy 2, torch, JAX), else
    array-api-compat's answer.

    >>> array_device(np.zeros(2))
    'cpu'
    """
    dev = getattr(a, "device", None)
    if dev is not None and not callable(dev):
        return dev
    from array_api_compat import device

    return device(a)


def pad(xp: Any, x: Any, padding: Sequence[tuple[int, int]], mode: str) -> Any:
    """Pad the trailing ``len(padding)`` axes in a convkit padding mode, any width, with
    any array-API namespace ``xp``.

    Zeros are concatenated; the other modes gather along each axis with the index maps
    of :func:`pad_indices` (``take``), so no library's own padding limits apply.
    :func:`pad_adjoint` is its adjoint.

    >>> pad(np, np.arange(3.0), [(2, 1)], "reflect").tolist()
    [2.0, 1.0, 0.0, 1.0, 2.0, 1.0]
    """
    first = x.ndim - len(padding)
    for i, (lo, hi) in enumerate(padding):
        if not (lo or hi):
            continue
        ax = first + i
        if mode == "zeros":
            shape = list(x.shape)
            parts = []
            for width in (lo, hi):
                shape[ax] = width
                parts.append(xp.zeros(tuple(shape), dtype=x.dtype, device=array_device(x)))
            x = xp.concat([parts[0], x, parts[1]], axis=ax)
        else:
            index = xp.asarray(pad_indices(x.shape[ax], lo, hi, mode), device=array_device(x))
            x = xp.take(x, index, axis=ax)
    return x


def pad_adjoint(
    xp: Any, g: Any, padding: Sequence[tuple[int, int]], size: Sequence[int], mode: str
) -> Any:
    """The adjoint of :func:`pad`: the gradient ``g`` of a padded array folded back onto
    the unpadded one (``size`` along the trailing axes), each padded sample's gradient
    added to the input sample it copied (nothing, for zeros).

    Along each axis the padded border is a few runs of consecutive input positions,
    ascending, descending, or one position repeated (see :func:`pad_indices`): each run
    is one slice of ``g``, flipped or summed, added to a slice of the input. Time and
    memory are linear in the padded size, whatever the width.

    >>> g = np.arange(8.0)  # the gradient of pad(x, [(2, 2)], "reflect") for 4 samples
    >>> pad_adjoint(np, g, [(2, 2)], [4], "reflect").tolist()
    [2.0, 11.0, 10.0, 5.0]
    """
    first = g.ndim - len(padding)
    for i, ((lo, hi), n) in enumerate(zip(padding, size, strict=True)):
        if not (lo or hi):
            continue
        ax = first + i
        lead = (slice(None),) * ax
        out = g[(*lead, slice(lo, lo + n), ...)]
        if mode != "zeros":
            index = pad_indices(n, lo, hi, mode)
            for p0, s0, length, step in (*_runs(index, 0, lo), *_runs(index, lo + n, lo + n + hi)):
                part = g[(*lead, slice(p0, p0 + length), ...)]
                if step == 0:
                    part = xp.sum(part, axis=ax, keepdims=True)
                elif step < 0:
                    part = xp.flip(part, axis=ax)
                start = s0 if step >= 0 else s0 - length + 1
                out = _add_at(xp, out, part, ax, start)
        g = out
    return g


def _runs(index: np.ndarray, begin: int, end: int) -> list[tuple[int, int, int, int]]:
    """The positions ``begin:end`` of a padded axis as runs ``(first position, the input
    position it copies, length, step)``, step +1, -1 or 0 (a repeated position)."""
    runs: list[tuple[int, int, int, int]] = []
    p = begin
    while p < end:
        s0 = int(index[p])
        step = int(index[p + 1]) - s0 if p + 1 < end else 0
        if step not in (-1, 0, 1):
            step = 0  # a jump: this position is a run of its own
        length = 1
        while p + length < end and int(index[p + length]) == s0 + step * length:
            length += 1
        runs.append((p, s0, length, step))
        p += length
    return runs


def _add_at(xp: Any, out: Any, part: Any, ax: int, start: int) -> Any:
    """``out`` with ``part`` added at positions ``start:start + len`` along ``ax``:
    only that slice is summed, the rest joined around it (no array of ``out``'s size
    is made for a border a few samples wide, which matters for chunked arrays)."""
    stop = start + part.shape[ax]
    lead = (slice(None),) * ax
    pieces = [
        out[(*lead, slice(0, start), ...)],
        out[(*lead, slice(start, stop), ...)] + part,
        out[(*lead, slice(stop, out.shape[ax]), ...)],
    ]
    return xp.concat([p for p in pieces if p.shape[ax]], axis=ax)
