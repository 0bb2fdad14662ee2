"""The direct method of ``conv`` on any array-API namespace: each tap of the kernel is
one strided slice of the padded input, the slices of a chunk of output rows are stacked
into columns, and one batched ``matmul`` per chunk multiplies them with the weights
(im2col), so the workspace stays within a bound whatever the input size. With one input
and one output channel per group (a single-channel filter, a depthwise layer) there is
no sum over channels for a matrix product to do: each tap is one multiply-add over a
cache-sized chunk of rows instead."""

from __future__ import annotations

import itertools
import math
from typing import Any

from convkit.padding import array_device
from convkit.spec import ConvSpec

WORKSPACE_BYTES = 64 << 20
"""About the most bytes the columns of one chunk take."""

TAP_CHUNK_BYTES = 128 << 10
"""About the bytes of output one chunk of per-tap multiply-adds works on (in cache)."""


def direct_conv(
    xp: Any,
    xpad: Any,
    w: Any,
    bias: Any | None,
    spec: ConvSpec,
    workspace_bytes: int = WORKSPACE_BYTES,
) -> Any:
    """``conv`` of an already padded input ``(N, C_in, *P)`` with ``w`` ``(C_out, Cg, *K)``
    by gathers and matrix products in ``xp`` (the array's own namespace and device).

    Columns ``(n, G, Cg*K, rows*O')`` are built for chunks of samples and of rows of
    the first output axis, each chunk's columns at most about ``workspace_bytes``.

    >>> import numpy as np
    >>> x = np.arange(6.0).reshape(1, 1, 6)
    >>> spec = ConvSpec.build(x.shape, (1, 1, 2), stride=2)
    >>> direct_conv(np, x, np.array([[[1.0, -1.0]]]), None, spec).tolist()
    [[[-1.0, -1.0, -1.0]]]
    """
    cg, og = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    if spec.batch == 0 or 0 in spec.output_size:
        return xp.zeros(spec.output_shape, dtype=xpad.dtype, device=array_device(xpad))
    y = (
        _per_tap(xp, xpad, w, spec)
        if cg == og == 1
        else _columns(xp, xpad, w, spec, workspace_bytes)
    )
    if bias is not None:
        y = y + xp.reshape(bias, (-1, *(1,) * spec.ndim))
    return y


def _columns(xp: Any, xpad: Any, w: Any, spec: ConvSpec, workspace_bytes: int) -> Any:
    """``conv`` without bias by im2col: per chunk of samples and rows, the tap slices
    stacked into columns and one batched ``matmul`` with the weights."""
    g = spec.groups
    cg, og = spec.in_channels // g, spec.out_channels // g
    out = spec.output_size
    taps = math.prod(spec.kernel_size)
    w_rows = xp.reshape(w, (g, og, cg * taps))  # (G, Og, Cg*K), channel-major like columns
    itemsize = _itemsize(xp, xpad.dtype)
    per_row = spec.in_channels * taps * math.prod(out[1:]) * itemsize  # one sample, one row
    rows = max(1, min(out[0], workspace_bytes // max(1, per_row)))
    samples = max(1, min(spec.batch, workspace_bytes // max(1, per_row * out[0])))
    parts = []
    for n0 in range(0, spec.batch, samples):
        n1 = min(spec.batch, n0 + samples)
        row_parts = []
        for r0 in range(0, out[0], rows):
            r1 = min(out[0], r0 + rows)
            size = (r1 - r0, *out[1:])
            slices = [
                xpad[_tap_index(tap, spec, r0, size, slice(n0, n1))]
                for tap in itertools.product(*(range(k) for k in spec.kernel_size))
            ]
            cols = xp.stack(slices, axis=2)  # (n, C_in, K, *size)
            cols = xp.reshape(cols, (n1 - n0, g, cg * taps, math.prod(size)))
            y = xp.matmul(w_rows, cols)  # (n, G, Og, positions)
            row_parts.append(xp.reshape(y, (n1 - n0, spec.out_channels, *size)))
        parts.append(row_parts[0] if len(row_parts) == 1 else xp.concat(row_parts, axis=2))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


def _per_tap(xp: Any, xpad: Any, w: Any, spec: ConvSpec) -> Any:
    """``conv`` with one input and one output channel per group: per chunk of output
    rows, one multiply-add of a strided slice per tap."""
    out = spec.output_size
    c = spec.out_channels
    itemsize = _itemsize(xp, xpad.dtype)
    row_bytes = spec.batch * c * math.prod(out[1:]) * itemsize
    rows = max(1, min(out[0], TAP_CHUNK_BYTES // max(1, row_bytes)))
    taps = list(itertools.product(*(range(k) for k in spec.kernel_size)))
    weights = [xp.reshape(w[(slice(None), 0, *tap)], (1, c, *(1,) * spec.ndim)) for tap in taps]
    parts = []
    for r0 in range(0, out[0], rows):
        size = (min(out[0], r0 + rows) - r0, *out[1:])
        acc = None
        for tap, wt in zip(taps, weights, strict=True):
            term = wt * xpad[_tap_index(tap, spec, r0, size, slice(None))]
            acc = term if acc is None else acc + term
        parts.append(acc)
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=2)


def _itemsize(xp: Any, dtype: Any) -> int:
    """Bytes per element of a floating or complex dtype of ``xp``."""
    size = 8 if xp.isdtype(dtype, "complex floating") else 4
    return 2 * size if dtype in (xp.float64, xp.complex128) else size


def _tap_index(
    tap: tuple[int, ...], spec: ConvSpec, r0: int, size: tuple[int, ...], samples: slice
) -> tuple[slice, ...]:
    """The index of the padded input that kernel tap ``tap`` reads for the outputs of
    rows ``r0 ..`` (``size`` positions per axis) of ``samples``: one strided slice."""
    index = [samples, slice(None)]
    for i, (a, st, dl) in enumerate(zip(tap, spec.stride, spec.dilation, strict=True)):
        start = a * dl + (r0 if i == 0 else 0) * st
        index.append(slice(start, start + (size[i] - 1) * st + 1, st))
    return tuple(index)
