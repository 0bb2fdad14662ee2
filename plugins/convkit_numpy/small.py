"""Small calls of the ``numpy`` backend, where Python's per-call work, not arithmetic,
sets the time: ``conv`` as one strided view, one copy and one matrix product, and 1-d
``convolve``/``correlate`` by :func:`numpy.convolve`."""

from __future__ import annotations

import math

import numpy as np

from convkit.padding import pad_numpy
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec

SMALL_COLUMNS = 1 << 14
"""The most column-matrix elements (receptive-field values over all output positions)
of a ``conv`` that :func:`conv` takes whole: under it, gathering them in one copy beats
the bounded workspace's loop over kernel taps."""


def is_small(spec: ConvSpec) -> bool:
    """Whether ``spec``'s column matrix is at most :data:`SMALL_COLUMNS` elements.

    >>> is_small(ConvSpec.build((1, 1, 16), (1, 1, 3)))
    True
    """
    cols = spec.batch * math.prod(spec.output_size) * spec.in_channels
    return 0 < cols * math.prod(spec.kernel_size) <= SMALL_COLUMNS


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """Cross-correlation of a small batched input (see :meth:`convkit.Backend.conv`):
    every receptive field read through one strided view of the padded input, copied
    once into columns ``(N, G, Cg*K, positions)`` and multiplied by the weights
    ``(G, Og, Cg*K)``.

    >>> x, w = np.arange(6.0).reshape(1, 1, 6), np.ones((1, 1, 2))
    >>> conv(x, w, None, ConvSpec.build(x.shape, w.shape, stride=2)).tolist()
    [[[1.0, 5.0, 9.0]]]
    """
    xp = pad_numpy(x, spec.padding, spec.padding_mode) if spec.has_padding else x
    if spec.ndim == 1 and x.shape[:2] == weight.shape[:2] == (1, 1) and x.dtype.kind != "c":
        # one signal, one filter: numpy.correlate, strided after (the steps are few)
        step, gap = spec.stride[0], spec.dilation[0]
        taps = weight[0, 0] if gap == 1 else _dilated(weight[0, 0], gap)
        y = np.correlate(xp[0, 0], taps)[::step].reshape(spec.output_shape)
        return y if bias is None else y + bias[0]
    xp = np.ascontiguousarray(xp)
    g = spec.groups
    cg, og = spec.in_channels // g, spec.out_channels // g
    sn, sc, *space = xp.strides
    view = np.ndarray(
        (spec.batch, g, cg, *spec.kernel_size, *spec.output_size),
        dtype=xp.dtype,
        buffer=xp,
        strides=(
            sn,
            cg * sc,
            sc,
            *(dl * s for dl, s in zip(spec.dilation, space, strict=True)),
            *(st * s for st, s in zip(spec.stride, space, strict=True)),
        ),
    )
    cols = view.reshape(spec.batch, g, cg * math.prod(spec.kernel_size), -1)
    y = np.matmul(weight.reshape(g, og, -1), cols).reshape(spec.output_shape)
    if bias is not None:
        y += bias.reshape(-1, *(1,) * spec.ndim)
    return y


def _dilated(taps: np.ndarray, gap: int) -> np.ndarray:
    """``taps`` with ``gap - 1`` zeros between neighbours."""
    out = np.zeros((len(taps) - 1) * gap + 1, dtype=taps.dtype)
    out[::gap] = taps
    return out


def convolve_1d(in1: np.ndarray, in2: np.ndarray, spec: SignalSpec) -> np.ndarray:
    """``convolve``/``correlate`` of two 1-d arrays by :func:`numpy.convolve` (the
    direct method), cropped to ``spec``'s mode.

    >>> spec = SignalSpec.build((3,), (3,), "full", correlate=True)
    >>> convolve_1d(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5]), spec).tolist()
    [0.5, 2.0, 3.5, 3.0, 0.0]
    """
    b = np.conj(in2[::-1]) if spec.correlate else in2
    return np.convolve(in1, b)[spec.crop]
