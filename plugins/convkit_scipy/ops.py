"""``scipy.signal`` kernels of the ``scipy`` backend."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import scipy.signal

from convkit.algorithms.direct import dilate, reverse_conj
from convkit.algorithms.fft import oa_blocks
from convkit.padding import pad_numpy
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """The layer operation by ``scipy.signal.correlate(method="direct")``.

    Correlating a sample's ``(Cg, *P)`` group with one ``(Cg, *E)`` kernel in ``valid``
    mode sums over the channels (the channel axis has equal sizes, so one position
    remains); strides are taken from the stride-1 result, dilation by a kernel with
    zeros between taps. SciPy conjugates its second argument, so complex kernels are
    conjugated first to cancel it.
    """
    g = spec.groups
    cg, og = spec.in_channels // g, spec.out_channels // g
    xp = pad_numpy(x, spec.padding, spec.padding_mode)
    kernel = dilate(np, weight, spec.dilation)
    if np.iscomplexobj(kernel):
        kernel = np.conj(kernel)
    keep: tuple[Any, ...] = (0, *(slice(None, None, st) for st in spec.stride))
    out = np.empty(spec.output_shape, dtype=x.dtype)
    for n, o in itertools.product(range(spec.batch), range(spec.out_channels)):
        group = o // og
        y = scipy.signal.correlate(
            xp[n, group * cg : (group + 1) * cg], kernel[o], mode="valid", method="direct"
        )
        out[n, o] = y[keep]
    if bias is not None:
        out += bias.reshape(-1, *(1,) * spec.ndim)
    return out


def convolve(in1: np.ndarray, in2: np.ndarray, spec: SignalSpec, method: str) -> np.ndarray:
    """``convolve``/``correlate`` by SciPy's own functions.

    ``fftconvolve``/``oaconvolve`` take ``axes`` and broadcast; the direct method takes
    no axes, so with ``axes`` it runs once per broadcast position.
    """
    b = reverse_conj(np, in2, spec.axes) if spec.correlate else in2
    dtype = np.result_type(in1, b)
    if method == "fft":
        if not spec.conv_axes:
            y = (in1 * b)[spec.crop]
        else:
            # SciPy's modes are convkit's (SignalSpec follows them), axes included
            fn = scipy.signal.oaconvolve if oa_blocks(spec) else scipy.signal.fftconvolve
            y = fn(in1, b, mode=spec.mode, axes=list(spec.axes))
        if dtype.kind in "iu":
            y = np.round(y)
        return y.astype(dtype, copy=False)
    outer = [
        i
        for i in range(spec.ndim)
        if i not in spec.conv_axes and max(spec.shape1[i], spec.shape2[i]) > 1
    ]
    if spec.axes == tuple(range(spec.ndim)) or not outer:
        y = scipy.signal.convolve(in1, b, mode="full", method="direct")
        return np.asarray(y[spec.crop], dtype=dtype)
    out = np.empty(spec.output_shape, dtype=dtype)
    inner = tuple(spec.crop[i] for i in range(spec.ndim) if i not in outer)
    for position in itertools.product(
        *(range(spec.crop[i].start, spec.crop[i].stop) for i in outer)
    ):
        at = dict(zip(outer, position, strict=True))
        pick1 = tuple(
            (at[i] if spec.shape1[i] > 1 else 0) if i in at else slice(None)
            for i in range(spec.ndim)
        )
        pick2 = tuple(
            (at[i] if spec.shape2[i] > 1 else 0) if i in at else slice(None)
            for i in range(spec.ndim)
        )
        where = tuple(
            at[i] - spec.crop[i].start if i in at else slice(None) for i in range(spec.ndim)
        )
        full = scipy.signal.convolve(in1[pick1], b[pick2], mode="full", method="direct")
        out[where] = full[inner]
    return out
