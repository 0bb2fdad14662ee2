"""NumPy kernels of the ``numpy`` backend.

im2col with a bounded workspace: the input is padded once; each chunk of output
positions gathers its receptive fields tap by tap into a column buffer of at most
:data:`WORKSPACE_BYTES`, laid out ``(G, Cg, *K, positions)``, and one batched matrix
product ``(G, Og, Cg*K) @ (G, Cg*K, positions)`` writes the chunk of the output, which
stays in ``(N, C_out, *O)`` order. Python loops run over kernel taps and chunks, never
over output positions.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from convkit.padding import pad_numpy
from convkit.spec import ConvSpec

WORKSPACE_BYTES = 4 << 20
"""Upper bound on the column buffer of one chunk, in bytes (measured: 1-4 MiB chunks
stay in cache and beat larger ones on the CNN benchmark)."""


def _chunks(spec: ConvSpec, itemsize: int) -> list[tuple[int, int, int, int]]:
    """``(n0, n1, o0, o1)`` blocks of samples and of the first output dim, each with a
    column buffer under the workspace bound. Either several whole samples, or a range
    of the first output dim of one sample."""
    n, out_size = spec.batch, spec.output_size
    row_bytes = spec.in_channels * math.prod(spec.kernel_size) * itemsize
    positions = max(1, WORKSPACE_BYTES // row_bytes)
    per_sample = math.prod(out_size)
    if per_sample <= positions:
        step = positions // per_sample
        return [(n0, min(n, n0 + step), 0, out_size[0]) for n0 in range(0, n, step)]
    rest = per_sample // out_size[0]
    step = max(1, positions // rest)
    return [
        (n0, n0 + 1, o0, min(out_size[0], o0 + step))
        for n0 in range(n)
        for o0 in range(0, out_size[0], step)
    ]


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """Cross-correlation of a batched input; see :meth:`convkit.Backend.conv`."""
    g = spec.groups
    cg, og = spec.in_channels // g, spec.out_channels // g
    kernel, out_size = spec.kernel_size, spec.output_size
    taps = math.prod(kernel)
    xp = pad_numpy(x, spec.padding, spec.padding_mode)
    wm = weight.reshape(g, og, cg * taps)
    out = np.empty(spec.output_shape, dtype=x.dtype)

    chunks = _chunks(spec, x.itemsize)
    rest = math.prod(out_size[1:])
    largest = max(((n1 - n0) * (o1 - o0) for n0, n1, o0, o1 in chunks), default=0)
    buffer = np.empty(spec.in_channels * taps * largest * rest, dtype=x.dtype)
    for n0, n1, o0, o1 in chunks:
        nb, block = n1 - n0, (o1 - o0, *out_size[1:])
        cols = buffer[: spec.in_channels * taps * nb * math.prod(block)]
        cols = cols.reshape(g, cg, *kernel, nb, *block)
        for tap in itertools.product(*(range(k) for k in kernel)):
            src: list[slice] = [slice(n0, n1), slice(None)]
            for i, (a, st, dl) in enumerate(zip(tap, spec.stride, spec.dilation, strict=True)):
                start = a * dl + st * (o0 if i == 0 else 0)
                src.append(slice(start, start + (block[i] - 1) * st + 1, st))
            window = xp[tuple(src)].reshape(nb, g, cg, *block)
            where: tuple[Any, ...] = (slice(None), slice(None), *tap)
            cols[where] = np.moveaxis(window, 0, 2)
        cols2 = cols.reshape(g, cg * taps, -1)
        if nb == 1 and g == 1:  # the common case: one plain 2-d product into the output
            np.matmul(wm[0], cols2[0], out=out[n0, :, o0:o1].reshape(og, -1))
        elif nb == 1:
            np.matmul(wm, cols2, out=out[n0, :, o0:o1].reshape(g, og, -1))
        else:
            y = np.matmul(wm, cols2).reshape(g * og, nb, *block)
            out[n0:n1] = np.moveaxis(y, 1, 0)
    if bias is not None:
        out += bias.reshape(-1, *(1,) * spec.ndim)
    return out
