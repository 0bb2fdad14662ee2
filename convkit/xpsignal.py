"""Convolution algorithms written once against the Python array API standard.

A backend passes its array namespace (``numpy``, ``array_api_compat.torch``, ...) and,
optionally, its FFT module; the same code then runs on its arrays and devices:

- :func:`direct_convolve`: ``convolve`` as one grouped ``conv`` call of the backend;
- :func:`fft_convolve`: ``convolve`` by one FFT over the convolved axes, or by
  overlap-add when one input is much longer than the other;
- :func:`fft_conv`: the ``conv`` layer operation with the channel sum done per frequency.

Integers are computed in float64 and rounded back, so callers decide when that is exact
(:func:`integer_exact`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from convkit.padding import array_device as _device
from convkit.padding import pad_adjoint
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec

FLOAT64_EXACT = 2**53
"""Integers of magnitude below this are exact in float64."""


def next_fast_len(n: int, real: bool = True) -> int:
    """The smallest length >= ``n`` that FFT libraries transform fastest (5-smooth)."""
    import scipy.fft

    return int(scipy.fft.next_fast_len(n, real=real))


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


def _isdtype(xp: Any, x: Any, kind: str) -> bool:
    return bool(xp.isdtype(x.dtype, kind))


def reverse_conj(xp: Any, a: Any, axes: Sequence[int]) -> Any:
    """``a`` reversed along ``axes`` and conjugated (what ``correlate`` applies to in2)."""
    if axes:
        a = xp.flip(a, axis=tuple(axes))
    return xp.conj(a) if _isdtype(xp, a, "complex floating") else a


# -- direct: convolve as one grouped conv ------------------------------------------


def direct_convolve(
    xp: Any, conv: Callable[[Any, Any, ConvSpec], Any], in1: Any, in2: Any, spec: SignalSpec
) -> Any:
    """``convolve`` computed by ``conv(x, w, convspec)``, the backend's layer operation.

    Axes that only ``in1`` spans become the batch, axes both span (equal sizes) become
    groups, axes only ``in2`` spans become output channels per group, and the convolved
    axes the spatial ones, with the kernel flipped (convolution is correlation with a
    reversed kernel) and padded for the mode.
    """
    b = reverse_conj(xp, in2, spec.axes) if spec.correlate else in2
    a = in1
    if not spec.conv_axes:
        return (a * b)[spec.crop]
    if spec.swapped:
        a, b = b, a
    s1, s2 = tuple(a.shape), tuple(b.shape)
    nd = len(s1)
    conv_axes = spec.conv_axes
    other = [i for i in range(nd) if i not in conv_axes]
    batch = [i for i in other if s1[i] > 1 and s2[i] == 1]
    paired = [i for i in other if s1[i] > 1 and s2[i] > 1]
    outer = [i for i in other if s1[i] == 1 and s2[i] > 1]
    ones = [i for i in other if s1[i] == 1 and s2[i] == 1]
    size = math.prod
    x = xp.permute_dims(a, (*batch, *paired, *conv_axes, *outer, *ones))
    x = xp.reshape(
        x, (size(s1[i] for i in batch), size(s1[i] for i in paired), *(s1[i] for i in conv_axes))
    )
    w = xp.flip(b, axis=conv_axes)
    w = xp.permute_dims(w, (*paired, *outer, *conv_axes, *batch, *ones))
    groups = size(s2[i] for i in paired)
    w = xp.reshape(w, (groups * size(s2[i] for i in outer), 1, *(s2[i] for i in conv_axes)))

    full = spec.full_shape
    start = [sl.start for sl in spec.crop]
    padding = []
    for ax in conv_axes:
        k = s2[ax]
        out = spec.output_shape[ax]
        lo = k - 1 - start[ax]
        padding.append((lo, out + k - 1 - lo - s1[ax]))
    cspec = ConvSpec.build(tuple(x.shape), tuple(w.shape), padding=padding, groups=groups)
    y = conv(x, w, cspec)  # (N, G * O, *S_out)
    y = xp.reshape(
        y,
        (
            *(s1[i] for i in batch),
            *(s1[i] for i in paired),
            *(s2[i] for i in outer),
            *cspec.output_size,
        ),
    )
    order = [*batch, *paired, *outer, *conv_axes]
    y = xp.permute_dims(y, tuple(order.index(i) for i in sorted(order)))
    y = xp.reshape(y, tuple(spec.output_shape[i] if i in conv_axes else full[i] for i in range(nd)))
    # 'same' centres broadcast axes too (SciPy's rule); a no-op elsewhere
    return y[tuple(spec.crop[i] if i not in conv_axes else slice(None) for i in range(nd))]


# -- FFT: whole or overlap-add -------------------------------------------------------


def oa_blocks(spec: SignalSpec, min_ratio: float = 4.0) -> dict[int, int]:
    """Block lengths for overlap-add along each convolved axis where one input is at
    least ``min_ratio`` times longer than the other and blocking lowers the FFT cost;
    empty when one transform of the whole is cheaper."""
    blocks = {}
    for ax in spec.conv_axes:
        n, k = sorted((spec.shape1[ax], spec.shape2[ax]), reverse=True)
        if n < min_ratio * k:
            continue
        whole = next_fast_len(n + k - 1)
        best, best_cost = None, whole * math.log2(whole) / n
        block = 1 << max(0, (k - 1).bit_length())
        while block < n:
            length = next_fast_len(block + k - 1)
            cost = length * math.log2(length) / block
            if cost < best_cost:
                best, best_cost = block, cost
            block *= 2
        if best is not None:
            blocks[ax] = best
    if not blocks:
        return blocks
    # the per-axis choices must also win for the whole N-d transform
    whole = math.prod(next_fast_len(spec.shape1[ax] + spec.shape2[ax] - 1) for ax in spec.conv_axes)
    points, count = 1, 1
    for ax in spec.conv_axes:
        n, k = sorted((spec.shape1[ax], spec.shape2[ax]), reverse=True)
        if ax in blocks:
            points *= next_fast_len(blocks[ax] + k - 1)
            count *= -(-n // blocks[ax])
        else:
            points *= next_fast_len(n + k - 1)
    if count * points * math.log2(points) >= whole * math.log2(whole):
        return {}
    return blocks


def fft_convolve(
    xp: Any, in1: Any, in2: Any, spec: SignalSpec, fft: Any = None, overlap_add: bool = True
) -> Any:
    """``convolve`` through the FFT, by overlap-add where :func:`oa_blocks` finds it
    cheaper. Integer inputs are computed in float64 and rounded back."""
    fft = xp.fft if fft is None else fft
    b = reverse_conj(xp, in2, spec.axes) if spec.correlate else in2
    a = in1
    dtype = a.dtype
    # integers are transformed in float64; with no axis to transform, the product is
    # exact in their own dtype (wrapping as integers do)
    integer = _isdtype(xp, a, "integral") and bool(spec.conv_axes)
    if integer:
        a, b = xp.astype(a, xp.float64), xp.astype(b, xp.float64)
    if not spec.conv_axes:
        full = a * b
    else:
        blocks = oa_blocks(spec) if overlap_add else {}
        full = _oa_full(xp, fft, a, b, spec.conv_axes, blocks)
    y = full[spec.crop]
    if integer:
        y = round_to_integers(xp, y, dtype)
    return y


def _pad_axis(xp: Any, a: Any, axis: int, length: int) -> Any:
    """``a`` zero-extended along ``axis`` to ``length``."""
    extra = length - a.shape[axis]
    if extra <= 0:
        return a
    shape = list(a.shape)
    shape[axis] = extra
    zeros = xp.zeros(tuple(shape), dtype=a.dtype, device=_device(a))
    return xp.concat([a, zeros], axis=axis)


def _oa_full(
    xp: Any, fft: Any, a: Any, b: Any, conv_axes: Sequence[int], blocks: dict[int, int]
) -> Any:
    """The ``full`` convolution over ``conv_axes``; axes in ``blocks`` by overlap-add."""
    lengths = {ax: (a.shape[ax], b.shape[ax]) for ax in conv_axes}
    # block the longer input along each blocked axis: (.., n, ..) -> (.., nb, B, ..)
    axis_of = {ax: ax for ax in conv_axes}  # where each convolved axis is now
    block_dims = []  # (position of the block-count dim, axis)
    for ax in sorted(blocks):
        block = blocks[ax]
        pos = axis_of[ax]
        n, k = lengths[ax]
        long_is_a = n >= k
        longer, shorter = (a, b) if long_is_a else (b, a)
        nb = -(-max(n, k) // block)
        longer = _pad_axis(xp, longer, pos, nb * block)
        shape = list(longer.shape)
        longer = xp.reshape(longer, (*shape[:pos], nb, block, *shape[pos + 1 :]))
        sshape = list(shorter.shape)
        shorter = xp.reshape(shorter, (*sshape[:pos], 1, *sshape[pos:]))
        a, b = (longer, shorter) if long_is_a else (shorter, longer)
        for other, where in axis_of.items():
            if where >= pos:
                axis_of[other] = where + 1
        block_dims.append((pos, ax))
    axes = [axis_of[ax] for ax in conv_axes]
    sizes = [a.shape[p] + b.shape[p] - 1 for p in axes]
    fast = [next_fast_len(s, real=not _isdtype(xp, a, "complex floating")) for s in sizes]
    if _isdtype(xp, a, "complex floating") or _isdtype(xp, b, "complex floating"):
        y = fft.ifftn(
            fft.fftn(a, s=fast, axes=axes) * fft.fftn(b, s=fast, axes=axes), s=fast, axes=axes
        )
    else:
        y = fft.irfftn(
            fft.rfftn(a, s=fast, axes=axes) * fft.rfftn(b, s=fast, axes=axes), s=fast, axes=axes
        )
    y = y[
        tuple(slice(0, sizes[axes.index(i)]) if i in axes else slice(None) for i in range(y.ndim))
    ]
    # overlap-add, innermost blocking first so earlier positions stay valid
    for pos, ax in reversed(block_dims):
        n, k = lengths[ax]
        block = blocks[ax]
        y = _overlap_add(xp, y, pos, block, max(n, k) + min(n, k) - 1)
    return y


def _overlap_add(xp: Any, y: Any, pos: int, block: int, length: int) -> Any:
    """Fold ``(.., nb, M, ..)`` (blocks of ``M = block + tail`` samples at ``pos``) into
    ``(.., length, ..)`` by adding each block's tail onto the next block's head."""
    nb, m = y.shape[pos], y.shape[pos + 1]
    tail = m - block
    assert tail <= block, "overlap-add needs blocks at least as long as the kernel"
    lead = (slice(None),) * pos
    heads = y[(*lead, slice(None), slice(0, block))]
    tails = _pad_axis(xp, y[(*lead, slice(None), slice(block, m))], pos + 1, block)
    shape = list(y.shape)
    flat = (*shape[:pos], nb * block, *shape[pos + 2 :])
    heads = _pad_axis(xp, xp.reshape(heads, flat), pos, (nb + 1) * block)
    tails = xp.reshape(tails, flat)
    zeros_shape = list(flat)
    zeros_shape[pos] = block
    tails = xp.concat(
        [xp.zeros(tuple(zeros_shape), dtype=y.dtype, device=_device(y)), tails], axis=pos
    )
    out = heads + tails
    return out[(*lead, slice(0, length))]


# -- padding ------------------------------------------------------------------------


# -- conv's FFT method ---------------------------------------------------------------


def dilate(xp: Any, w: Any, dilation: Sequence[int]) -> Any:
    """Insert ``dilation - 1`` zeros between the samples of the axes 2, 3, ... (the taps
    of a ``(C_out, Cg, *K)`` kernel, or the positions of an ``(N, C, *S)`` signal)."""
    for i, dl in enumerate(dilation):
        if dl == 1:
            continue
        ax = 2 + i
        k = w.shape[ax]
        w = xp.expand_dims(w, axis=ax + 1)  # (.., K, 1, ..)
        shape = list(w.shape)
        shape[ax + 1] = dl - 1
        w = xp.concat([w, xp.zeros(tuple(shape), dtype=w.dtype, device=_device(w))], axis=ax + 1)
        shape = list(w.shape)
        w = xp.reshape(w, (*shape[:ax], k * dl, *shape[ax + 2 :]))
        w = w[(*(slice(None),) * ax, slice(0, (k - 1) * dl + 1))]
    return w


def fft_conv(
    xp: Any,
    xpad: Any,
    w: Any,
    bias: Any | None,
    spec: ConvSpec,
    fft: Any = None,
    workspace_bytes: int = 64 << 20,
) -> Any:
    """The layer operation on an already padded input ``(N, C, *P)`` by FFT.

    Cross-correlation is convolution with the flipped, dilated kernel; a circular
    convolution of length ``L >= P`` leaves the valid outputs (positions ``E - 1 ..
    P - 1``) untouched, so no extra zero padding is needed. The channel sum is a matrix
    product per frequency and group; the result is cropped to the strided positions.
    The batch is processed in chunks whose spectra stay under ``workspace_bytes``.
    """
    fft = xp.fft if fft is None else fft
    d, g = spec.ndim, spec.groups
    cg, og = spec.in_channels // g, spec.out_channels // g
    axes = tuple(range(2, 2 + d))
    cplx = _isdtype(xp, xpad, "complex floating")
    forward = fft.fftn if cplx else fft.rfftn
    lengths = [next_fast_len(p, real=not cplx) for p in spec.padded_size]
    kernel = xp.flip(dilate(xp, w, spec.dilation), axis=axes)
    wf = forward(kernel, s=lengths, axes=axes)  # (C_out, Cg, *F)
    freq = tuple(wf.shape[2:])
    nfreq = math.prod(freq)
    wf = xp.permute_dims(xp.reshape(wf, (g, og, cg, nfreq)), (3, 0, 2, 1))  # (F, G, Cg, Og)
    keep = (
        slice(None),
        slice(None),
        *(
            slice(e - 1, p, st)
            for e, p, st in zip(spec.kernel_extent, spec.padded_size, spec.stride, strict=True)
        ),
    )
    if spec.batch == 0:
        return xp.zeros(spec.output_shape, dtype=xpad.dtype, device=_device(xpad))
    itemsize = 16 if cplx or xpad.dtype == xp.float64 else 8
    step = max(1, workspace_bytes // max(1, spec.in_channels * nfreq * itemsize))
    parts = []
    for n0 in range(0, spec.batch, step):
        chunk = xpad[n0 : n0 + step]
        nb = chunk.shape[0]
        xf = forward(chunk, s=lengths, axes=axes)
        xf = xp.permute_dims(xp.reshape(xf, (nb, g, cg, nfreq)), (3, 1, 0, 2))  # (F, G, n, Cg)
        yf = xp.matmul(xf, wf)  # (F, G, n, Og)
        yf = xp.reshape(xp.permute_dims(yf, (2, 1, 3, 0)), (nb, g * og, *freq))
        y = fft.ifftn(yf, s=lengths, axes=axes) if cplx else fft.irfftn(yf, s=lengths, axes=axes)
        parts.append(y[keep])
    out = parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
    out = xp.astype(out, xpad.dtype)
    if bias is not None:
        out = out + xp.reshape(bias, (-1, *(1,) * d))
    return out


# -- conv's gradients, from its forward operation -----------------------------------

ConvFn = Callable[[Any, Any, ConvSpec], Any]
"""``conv(x, w, spec)``: a backend's forward layer operation, without bias."""


def conv_input_grad(xp: Any, conv: ConvFn, grad_out: Any, w: Any, spec: ConvSpec) -> Any:
    """Gradient of ``conv`` with respect to its *padded* input: a transposed convolution.

    ``xpad[p]`` feeds ``y[i]`` through tap ``a`` where ``p = i*stride + a*dilation``, so
    the gradient spreads ``grad_out`` back the same way: dilate ``grad_out`` by the
    stride, pad it by ``E - 1`` (plus the rows the forward pass never reached), and
    correlate it with the kernel flipped and its in/out channels swapped per group.
    ``grad_out`` may cover fewer positions than ``spec.output_size`` (a transposed
    convolution with a large ``output_padding`` is the adjoint of such a cropped conv).
    Returns ``(N, C_in, *P)``.
    """
    g = spec.groups
    cg, og = spec.in_channels // g, spec.out_channels // g
    d = spec.ndim
    kernel = spec.kernel_size
    wt = xp.reshape(w, (g, og, cg, *kernel))
    wt = xp.permute_dims(wt, (0, 2, 1, *range(3, 3 + d)))
    wt = xp.flip(xp.reshape(wt, (spec.in_channels, og, *kernel)), axis=tuple(range(2, 2 + d)))
    gyd = dilate(xp, grad_out, spec.stride)  # zeros between samples, as the stride left
    pads = []
    for p, o, st, e in zip(
        spec.padded_size, tuple(grad_out.shape[2:]), spec.stride, spec.kernel_extent, strict=True
    ):
        unreached = p - ((o - 1) * st + e)
        pads.append((e - 1, e - 1 + unreached))
    cspec = ConvSpec.build(
        tuple(gyd.shape), tuple(wt.shape), padding=pads, dilation=spec.dilation, groups=g
    )
    return conv(gyd, wt, cspec)


def unpad_adjoint(xp: Any, grad_pad: Any, spec: ConvSpec) -> Any:
    """The adjoint of ``spec``'s padding (:func:`convkit.padding.pad_adjoint`): fold the
    gradient of each padded sample onto the input sample it copied. Returns
    ``(N, C, *S)``."""
    return pad_adjoint(xp, grad_pad, spec.padding, spec.input_size, spec.padding_mode)


def conv_weight_grad(xp: Any, conv: ConvFn, xpad: Any, grad_out: Any, spec: ConvSpec) -> Any:
    """Gradient of ``conv`` with respect to its weight: a correlation of the padded
    input with ``grad_out``, batch and channels exchanged.

    ``dw[o, c, a] = sum_{n, i} gy[n, o, i] xpad[n, c, i*stride + a*dilation]`` is a
    ``conv`` whose batch is the input channels of a group, whose channels are the
    (group, sample) pairs, with stride and dilation exchanged. Returns
    ``(C_out, C_in // groups, *K)``.
    """
    g = spec.groups
    cg, og = spec.in_channels // g, spec.out_channels // g
    n, d = spec.batch, spec.ndim
    spatial = tuple(range(3, 3 + d))
    if n == 0:
        return xp.zeros(
            (spec.out_channels, cg, *spec.kernel_size), dtype=xpad.dtype, device=_device(xpad)
        )
    xs = xp.reshape(xpad, (n, g, cg, *spec.padded_size))
    xs = xp.reshape(xp.permute_dims(xs, (2, 1, 0, *spatial)), (cg, g * n, *spec.padded_size))
    ws = xp.reshape(grad_out, (n, g, og, *spec.output_size))
    ws = xp.reshape(xp.permute_dims(ws, (1, 2, 0, *spatial)), (g * og, n, *spec.output_size))
    cspec = ConvSpec.build(
        tuple(xs.shape), tuple(ws.shape), stride=spec.dilation, dilation=spec.stride, groups=g
    )
    dw = conv(xs, ws, cspec)  # (Cg, C_out, *K') with K' >= K
    dw = dw[(slice(None), slice(None), *(slice(0, k) for k in spec.kernel_size))]
    return xp.permute_dims(dw, (1, 0, *range(2, 2 + d)))


def conv_vjp(
    xp: Any,
    conv: ConvFn,
    pad: Callable[[Any], Any],
    x: Any,
    w: Any,
    grad_out: Any,
    spec: ConvSpec,
    bias: bool,
) -> tuple[Any, Any, Any | None]:
    """``(grad_x, grad_weight, grad_bias)`` of ``conv`` at ``(x, w)`` for ``grad_out``,
    all through the forward operation ``conv`` (``pad`` pads ``x`` as ``spec`` says)."""
    grad_x = unpad_adjoint(xp, conv_input_grad(xp, conv, grad_out, w, spec), spec)
    grad_w = conv_weight_grad(xp, conv, pad(x), grad_out, spec)
    grad_b = xp.sum(grad_out, axis=(0, *range(2, 2 + spec.ndim))) if bias else None
    return grad_x, grad_w, grad_b
