"""The numpy backend's backward pass: ``conv``'s gradients as matrix products over the
forward's im2col columns.

For each chunk of output positions (the forward's :func:`~convkit_numpy.ops._chunks`,
so one column buffer of about :data:`~convkit_numpy.ops.WORKSPACE_BYTES`; a stride-1
chunk of whole rows is taken on the padded input's grid, a few columns wider, so that
each tap is one contiguous slice):

- weight gradient: the chunk's receptive fields are gathered into columns
  ``(G, Cg*K, P)`` exactly as the forward gathers them, and ``grad_out`` of the chunk,
  ``(G, Og, P)``, is multiplied with their transpose and added up over chunks;
- input gradient: ``W^T (G, Cg*K, Og) @ grad_out (G, Og, P)`` fills the same buffer, and
  col2im adds each tap's rows back onto the gradient of the padded input (strided
  slices, ``+=``); the padding's adjoint (:func:`convkit.padding.pad_adjoint`) folds the
  border onto ``(N, C_in, *S)``.

Depthwise layers (``groups == C_in == C_out``) skip the ``C*K`` columns: their input
gradient is the depthwise forward of ``grad_out`` with the flipped kernel (stride 1) or
one strided multiply-add per tap, their weight gradient one dot product per tap and
channel over cache-sized slabs.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from convkit.padding import pad_adjoint
from convkit.spec import ConvSpec
from convkit_numpy import ops


def conv_vjp(
    x: np.ndarray, weight: np.ndarray, grad_out: np.ndarray, spec: ConvSpec, bias: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(grad_x, grad_weight, grad_bias)`` of :func:`convkit_numpy.ops.conv` at
    ``(x, weight)`` for ``grad_out`` (``spec.output_shape``); ``grad_bias`` is ``None``
    unless ``bias``.

    >>> x, w = np.arange(5.0).reshape(1, 1, 5), np.array([[[1.0, -1.0]]])
    >>> spec = ConvSpec.build(x.shape, w.shape)
    >>> gx, gw, gb = conv_vjp(x, w, np.ones((1, 1, 4)), spec, bias=True)
    >>> gx.tolist(), gw.tolist(), gb.tolist()
    ([[[1.0, 0.0, 0.0, 0.0, -1.0]]], [[[6.0, 10.0]]], [4.0])
    """
    spatial = tuple(range(2, 2 + spec.ndim))
    grad_b = np.sum(grad_out, axis=(0, *spatial)) if bias else None
    if spec.batch == 0:
        return np.zeros_like(x), np.zeros_like(weight), grad_b
    with ops._scratch() as scratch:
        if _is_depthwise(spec):
            grad_x = _depthwise_input_grad(grad_out, weight, spec, scratch)
            grad_w = _depthwise_weight_grad(x, grad_out, spec, scratch)
        else:
            grad_x, grad_w = _by_columns(x, weight, grad_out, spec, scratch)
    return grad_x, grad_w, grad_b


def conv_transpose(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec
) -> np.ndarray:
    """The adjoint of :func:`convkit_numpy.ops.conv` with respect to its input: ``spec``
    describes the forward conv whose output ``x`` is (it may cover fewer positions, as a
    large ``output_padding`` asks); returns ``(N, C_in, *spec.input_size)``.

    >>> spec = ConvSpec.build((1, 1, 6), (1, 1, 2), stride=2)
    >>> conv_transpose(np.ones((1, 1, 3)), np.array([[[1.0, 2.0]]]), None, spec).tolist()
    [[[1.0, 2.0, 1.0, 2.0, 1.0, 2.0]]]
    """
    short = tuple(o - s for o, s in zip(spec.output_size, x.shape[2:], strict=True))
    if any(short):
        x = np.pad(x, [(0, 0), (0, 0), *((0, m) for m in short)])
    y: np.ndarray
    if spec.batch == 0:
        y = np.zeros((0, spec.in_channels, *spec.input_size), dtype=x.dtype)
    else:
        with ops._scratch() as scratch:
            if _is_depthwise(spec):
                y = _depthwise_input_grad(x, weight, spec, scratch)
            else:
                y, _ = _by_columns(None, weight, x, spec, scratch)
    if bias is not None:
        y += bias.reshape(-1, *(1,) * spec.ndim)
    return y


def _is_depthwise(spec: ConvSpec) -> bool:
    return spec.in_channels == spec.groups == spec.out_channels


def _unpad(grad_padded: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The adjoint of the padding: ``(N, C, *P)`` folded onto ``(N, C, *S)``."""
    if not spec.has_padding:
        return grad_padded
    if spec.padding_mode == "zeros":
        inner = (slice(None), slice(None), *ops._interior(spec))
        return np.ascontiguousarray(grad_padded[inner])
    folded = pad_adjoint(np, grad_padded, spec.padding, spec.input_size, spec.padding_mode)
    return np.ascontiguousarray(folded)


# -- im2col: matrix products per chunk --------------------------------------------------


def _by_columns(
    x: np.ndarray | None,
    weight: np.ndarray,
    grad_out: np.ndarray,
    spec: ConvSpec,
    scratch: ops.Scratch,
) -> tuple[np.ndarray, np.ndarray]:
    """Input and weight gradient (zero when ``x`` is not given), chunk by chunk through
    one column buffer. With stride 1 a chunk of whole rows of one sample is one run of
    the flattened padded grid (:func:`_flat_run`): each tap's columns are then one
    contiguous slice of the padded input, and col2im adds one back, ``grad_out`` laid on
    that grid with zeros in the columns off the output."""
    g = spec.groups
    og, cg, taps = spec.out_channels // g, spec.in_channels // g, math.prod(spec.kernel_size)
    dtype = grad_out.dtype
    xp = None if x is None else ops._padded(x, spec, scratch)
    weight_t = np.swapaxes(weight.reshape(g, og, -1), 1, 2)  # (G, Cg*K, Og)
    grad_w = np.zeros((g, og, cg * taps), dtype=dtype)
    grad_padded = np.zeros((spec.batch, spec.in_channels, *spec.padded_size), dtype=dtype)
    chunks = ops._chunks(spec, dtype.itemsize)
    runs = [_flat_run(spec, block) for block in chunks]
    longest = max(
        (r[1] if r else ops._block_size(b) for b, r in zip(chunks, runs, strict=True)), default=0
    )
    buffer = scratch((spec.in_channels * taps * longest,), dtype)
    rows = max((b[3][0] - b[2][0] for b, r in zip(chunks, runs, strict=True) if r), default=0)
    on_grid = np.zeros((g, og, rows, *spec.padded_size[1:]), dtype=dtype)
    offsets = ops._flat_grid(spec)[2]
    flat_x = None if xp is None else xp.reshape(spec.batch, spec.in_channels, -1)
    flat_grad = grad_padded.reshape(spec.batch, spec.in_channels, -1)
    for block, run in zip(chunks, runs, strict=True):
        n0, _, lo, hi = block
        length = run[1] if run else ops._block_size(block)
        cols = buffer[: spec.in_channels * taps * length].reshape(g, cg, taps, length)
        if run is None:
            gy = _grad_out_block(grad_out, spec, block)  # (G, Og, P)
        else:
            crop = (slice(None), slice(None), slice(0, hi[0] - lo[0]), *map(slice, hi[1:]))
            on_grid[crop] = grad_out[n0, :, lo[0] : hi[0]].reshape(on_grid[crop].shape)
            gy = on_grid.reshape(g, og, -1)[:, :, :length]
        if xp is not None and flat_x is not None:
            if run is None:
                ops._columns(xp, spec, block, buffer)
            else:
                for t, off in enumerate(offsets):
                    src = flat_x[n0, :, run[0] + off : run[0] + off + length]
                    cols[:, :, t] = src.reshape(g, cg, length)
            grad_w += np.matmul(gy, np.swapaxes(cols.reshape(g, cg * taps, length), 1, 2))
        np.matmul(weight_t, gy, out=cols.reshape(g, cg * taps, length))
        if run is None:
            _col2im(grad_padded, cols.reshape(g, cg * taps, length), spec, block)
        else:
            for t, off in enumerate(offsets):
                target = flat_grad[n0, :, run[0] + off : run[0] + off + length]
                target += cols[:, :, t].reshape(spec.in_channels, length)
    grad_x = _unpad(grad_padded, spec)
    return grad_x, grad_w.reshape(spec.out_channels, cg, *spec.kernel_size)


def _flat_run(spec: ConvSpec, block: ops.Block) -> tuple[int, int] | None:
    """With stride 1, a block of whole trailing rows of one sample is one run of the
    flattened padded grid (:func:`convkit_numpy.ops._flat_grid`): its start and length
    there; ``None`` for other blocks."""
    n0, n1, lo, hi = block
    whole = hi[1:] == spec.output_size[1:] and not any(lo[1:])
    if n1 - n0 != 1 or not whole or any(st != 1 for st in spec.stride):
        return None
    pitch = math.prod(spec.padded_size[1:])
    tail = ops._flat_grid(spec)[1] - (spec.output_size[0] - 1) * pitch
    return lo[0] * pitch, (hi[0] - lo[0] - 1) * pitch + tail


def _grad_out_block(grad_out: np.ndarray, spec: ConvSpec, block: ops.Block) -> np.ndarray:
    """``grad_out`` over ``block`` as ``(G, Og, positions)``, positions ordered like the
    columns' (a view when the block is a run of one sample)."""
    n0, n1, lo, hi = block
    g, size = spec.groups, tuple(b - a for a, b in zip(lo, hi, strict=True))
    where: tuple[Any, ...] = (slice(n0, n1), slice(None), *map(slice, lo, hi))
    region = grad_out[where]
    if n1 - n0 == 1 and size[1:] == spec.output_size[1:]:
        return region[0].reshape(g, spec.out_channels // g, -1)
    rows = region.reshape(n1 - n0, g, spec.out_channels // g, math.prod(size))
    return np.moveaxis(rows, 0, 2).reshape(g, spec.out_channels // g, -1)


def _col2im(grad_padded: np.ndarray, cols: np.ndarray, spec: ConvSpec, block: ops.Block) -> None:
    """Add each tap's rows of ``cols`` ``(G, Cg*K, positions)`` onto the positions of the
    padded input that tap read (the adjoint of :func:`convkit_numpy.ops._columns`)."""
    n0, n1, lo, hi = block
    size = tuple(b - a for a, b in zip(lo, hi, strict=True))
    c = spec.in_channels
    per_tap = cols.reshape(c, *spec.kernel_size, n1 - n0, *size)
    for tap in itertools.product(*(range(k) for k in spec.kernel_size)):
        where: tuple[Any, ...] = (slice(None), *tap)
        rows = per_tap[where]  # (C, samples, *block)
        target = grad_padded[ops._tap_source(spec, block, tap)]  # (samples, C, *block)
        target += np.moveaxis(rows, 1, 0)


# -- depthwise: one multiply-add or dot product per tap -----------------------------------


def _depthwise_input_grad(
    grad_out: np.ndarray, weight: np.ndarray, spec: ConvSpec, scratch: ops.Scratch
) -> np.ndarray:
    """With stride 1 the input gradient is the depthwise forward of ``grad_out`` with
    the flipped kernel (padded by ``E - 1``, less the zero padding where that is not
    negative, so its output is the unpadded input); otherwise one strided multiply-add
    per tap into the gradient of the padded input."""
    d = spec.ndim
    if all(st == 1 for st in spec.stride):
        flipped = np.ascontiguousarray(np.flip(weight, axis=tuple(range(2, 2 + d))))
        pads = [
            (e - 1, e - 1 + p - ((o - 1) + e))
            for e, p, o in zip(spec.kernel_extent, spec.padded_size, spec.output_size, strict=True)
        ]
        direct = spec.padding_mode == "zeros" and all(
            a >= lo and b >= hi for (a, b), (lo, hi) in zip(pads, spec.padding, strict=True)
        )
        if direct:
            pads = [(a - lo, b - hi) for (a, b), (lo, hi) in zip(pads, spec.padding, strict=True)]
        tspec = ConvSpec.build(
            grad_out.shape, weight.shape, padding=pads, dilation=spec.dilation, groups=spec.groups
        )
        grad = ops._depthwise(grad_out, flipped, None, tspec, scratch)
        return grad if direct else _unpad(grad, spec)
    grad_padded = np.zeros((spec.batch, spec.in_channels, *spec.padded_size), grad_out.dtype)
    taps = list(itertools.product(*(range(k) for k in spec.kernel_size)))
    w = weight.reshape(spec.out_channels, len(taps))
    step, parts = ops._slabs(spec, math.prod(spec.output_size) * grad_out.itemsize)

    def run(part: list[ops.Slab]) -> None:
        tmp = np.empty((step, *spec.output_size), dtype=grad_out.dtype)
        for i, c0, c1 in part:
            for t, tap in enumerate(taps):
                np.multiply(
                    grad_out[i, c0:c1], w[c0:c1, t].reshape(-1, *(1,) * d), out=tmp[: c1 - c0]
                )
                grad_padded[ops._tap_window(spec, i, c0, c1, tap)] += tmp[: c1 - c0]

    ops._parallel(
        run, parts, None, grad_out.size * len(taps)
    )  # slabs are disjoint: no two threads add to one place
    return _unpad(grad_padded, spec)


def _depthwise_weight_grad(
    x: np.ndarray, grad_out: np.ndarray, spec: ConvSpec, scratch: ops.Scratch
) -> np.ndarray:
    """``dw[c, t] = sum_{n, i} gy[n, c, i] * xpad[n, c, i*stride + t*dilation]``: one
    dot product per tap and channel, slab by slab; with stride 1 over the flattened
    padded slab (:func:`convkit_numpy.ops._flat_grid`), ``grad_out`` laid on that grid
    with zeros in its extra columns."""
    c = spec.out_channels
    taps = list(itertools.product(*(range(k) for k in spec.kernel_size)))
    flat = all(st == 1 for st in spec.stride)
    own_padding = flat and spec.padding_mode == "zeros" and spec.has_padding
    xp = x if own_padding else ops._padded(x, spec, scratch)
    grid, length, offsets = ops._flat_grid(spec)
    per_channel = math.prod(spec.padded_size if flat else spec.output_size) * x.itemsize
    step, parts = ops._slabs(spec, per_channel)
    crop = (slice(None), *(slice(0, o) for o in spec.output_size))
    inner = (slice(None), *ops._interior(spec))

    def run(part: list[ops.Slab]) -> np.ndarray:
        grad_w = np.zeros((c, len(taps)), dtype=np.float64)
        on_grid = np.zeros((step, *grid), dtype=x.dtype) if flat else None
        padded = np.zeros((step, *spec.padded_size), dtype=x.dtype) if own_padding else None
        for i, c0, c1 in part:
            k = c1 - c0
            if on_grid is None:
                for t, tap in enumerate(taps):
                    window = xp[ops._tap_window(spec, i, c0, c1, tap)].reshape(k, -1)
                    grad_w[c0:c1, t] += np.vecdot(grad_out[i, c0:c1].reshape(k, -1), window)
                continue
            on_grid[:k][crop] = grad_out[i, c0:c1]
            gy = on_grid[:k].reshape(k, -1)[:, :length]
            if padded is not None:  # zero padding written per slab, as the forward does
                padded[:k][inner] = x[i, c0:c1]
            src = (xp[i, c0:c1] if padded is None else padded[:k]).reshape(k, -1)
            for t, off in enumerate(offsets):
                grad_w[c0:c1, t] += np.vecdot(gy, src[:, off : off + length])
        return grad_w

    total = sum(ops._parallel(run, parts, None, grad_out.size * len(taps)))
    return np.asarray(total, dtype=x.dtype).reshape(c, 1, *spec.kernel_size)
