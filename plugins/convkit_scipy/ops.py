"""``scipy.fft`` kernels of the ``scipy`` backend.

Cross-correlation with a kernel is convolution with the flipped kernel. A circular
convolution of length ``L >= P`` (the padded size) leaves the valid outputs, at
positions ``E - 1 .. P - 1`` for a dilated kernel extent ``E``, untouched by wrap-around,
so the transforms need no extra zero padding beyond ``P``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.fft

from convkit.padding import pad_numpy
from convkit.spec import ConvSpec

WORKSPACE_BYTES = 64 << 20
"""Upper bound on the input spectrum of one batch chunk, in bytes."""


def dilate(weight: np.ndarray, dilation: tuple[int, ...]) -> np.ndarray:
    """Insert ``dilation - 1`` zeros between kernel taps along each spatial axis."""
    if all(dl == 1 for dl in dilation):
        return weight
    kernel = weight.shape[2:]
    extent = tuple((k - 1) * dl + 1 for k, dl in zip(kernel, dilation, strict=True))
    out = np.zeros((*weight.shape[:2], *extent), dtype=weight.dtype)
    taps: tuple[Any, ...] = (Ellipsis, *(slice(None, None, dl) for dl in dilation))
    out[taps] = weight
    return out


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """Cross-correlation of a batched input; see :meth:`convkit.Backend.conv`."""
    d, g = spec.ndim, spec.groups
    cg, og = spec.in_channels // g, spec.out_channels // g
    axes = tuple(range(2, 2 + d))
    complex_input = np.iscomplexobj(x)
    forward = scipy.fft.fftn if complex_input else scipy.fft.rfftn
    inverse = scipy.fft.ifftn if complex_input else scipy.fft.irfftn
    lengths = [scipy.fft.next_fast_len(p, real=not complex_input) for p in spec.padded_size]

    flip: tuple[Any, ...] = (Ellipsis, *(slice(None, None, -1),) * d)
    kernel = dilate(weight, spec.dilation)[flip]
    wf = forward(kernel, s=lengths, axes=axes, workers=-1)  # (C_out, Cg, *F)
    freq = wf.shape[2:]
    # (*F, G, Cg, Og): one matrix per frequency and group
    wf = np.moveaxis(wf.reshape(g, og, cg, -1), 3, 0).transpose(0, 1, 3, 2)

    keep = tuple(
        slice(e - 1, p, st)
        for e, p, st in zip(spec.kernel_extent, spec.padded_size, spec.stride, strict=True)
    )
    out = np.empty(spec.output_shape, dtype=x.dtype)
    sample_bytes = spec.in_channels * math.prod(freq) * 2 * x.itemsize
    step = max(1, WORKSPACE_BYTES // max(1, sample_bytes))
    for n0 in range(0, spec.batch, step):
        xp = pad_numpy(x[n0 : n0 + step], spec.padding, spec.padding_mode)
        xf = forward(xp, s=lengths, axes=axes, workers=-1)  # (n, C, *F)
        nb = xf.shape[0]
        xf = np.moveaxis(xf.reshape(nb, g, cg, -1), 3, 0).transpose(0, 2, 1, 3)  # (F, G, n, Cg)
        yf = np.matmul(xf, wf)  # (F, G, n, Og)
        yf = np.moveaxis(yf.transpose(0, 2, 1, 3), 0, -1).reshape(nb, g * og, *freq)
        y = inverse(yf, s=lengths, axes=axes, workers=-1)
        out[n0 : n0 + nb] = y[(slice(None), slice(None), *keep)]
    if bias is not None:
        out += bias.reshape(-1, *(1,) * d)
    return out
