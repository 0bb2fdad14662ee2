"""The FFT methods, on any array-API namespace and FFT module: ``convolve`` by one
transform over the convolved axes or by overlap-add when one input is much longer
(:func:`fft_convolve`), and the ``conv`` layer operation with the channel sum done per
frequency (:func:`fft_conv`, :func:`conv_fft`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from convkit.algorithms.direct import dilate, isdtype, reverse_conj
from convkit.algorithms.integers import round_to_integers
from convkit.algorithms.protocol import ArrayBackend
from convkit.padding import array_device as _device
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec


def next_fast_len(n: int, real: bool = True) -> int:
    """The smallest length >= ``n`` that FFT libraries transform fastest, as
    ``scipy.fft.next_fast_len``: its only prime factors are 2, 3 and 5 for real
    transforms, up to 11 for complex ones.

    >>> next_fast_len(97), next_fast_len(1025), next_fast_len(13, real=False)
    (100, 1080, 14)
    """
    if n <= 6:
        return max(n, 1)
    primes = (5, 3) if real else (11, 7, 5, 3)
    best = 1 << (n - 1).bit_length()  # a power of two is always smooth

    def walk(i: int, p: int) -> None:
        nonlocal best
        if i == len(primes):  # the rest is the smallest power of two reaching n
            q = -(-n // p)
            best = min(best, p * (1 << (q - 1).bit_length()))
            return
        while p < best:
            walk(i + 1, p)
            p *= primes[i]

    walk(0, 1)
    return best


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
    integer = isdtype(xp, a, "integral") and bool(spec.conv_axes)
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
    fast = [next_fast_len(s, real=not isdtype(xp, a, "complex floating")) for s in sizes]
    if isdtype(xp, a, "complex floating") or isdtype(xp, b, "complex floating"):
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
    heads = y[(*lead, slice(None), slice(0, block), ...)]
    tails = _pad_axis(xp, y[(*lead, slice(None), slice(block, m), ...)], pos + 1, block)
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
    return out[(*lead, slice(0, length), ...)]


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
    cplx = isdtype(xp, xpad, "complex floating")
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
        chunk = xpad[n0 : min(spec.batch, n0 + step), ...]
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


def conv_fft(
    backend: ArrayBackend,
    x: Any,
    weight: Any,
    bias: Any | None,
    spec: ConvSpec,
    options: Mapping[str, Any],
) -> Any:
    """The FFT method of ``backend.conv``: pad, then :func:`fft_conv`.

    With one input and one output channel per group (a single-channel image or signal,
    or a depthwise layer) there is no channel sum: each channel is a correlation with
    its own kernel, so the call goes to the backend's ``convolve``, which may use
    overlap-add when the input is much longer than the kernel."""
    xp = backend.namespace()
    xpad = backend.pad(x, spec.padding, spec.padding_mode)
    if spec.in_channels == spec.groups == spec.out_channels and spec.batch > 0:
        return _per_channel(backend, xp, xpad, weight, bias, spec, options)
    return fft_conv(xp, xpad, weight, bias, spec, backend.fft_module())


def _per_channel(
    backend: ArrayBackend,
    xp: Any,
    xpad: Any,
    weight: Any,
    bias: Any | None,
    spec: ConvSpec,
    options: Mapping[str, Any],
) -> Any:
    if any(d > 1 for d in spec.dilation):
        weight = dilate(xp, weight, spec.dilation)
    kernel = xp.reshape(weight, (1, spec.out_channels, *weight.shape[2:]))
    if xp.isdtype(kernel.dtype, "complex floating"):
        kernel = xp.conj(kernel)  # correlate conjugates its second input; conv does not
    axes = tuple(range(2, 2 + spec.ndim))
    sig = SignalSpec.build(tuple(xpad.shape), tuple(kernel.shape), "valid", axes, correlate=True)
    y = backend.convolve(xpad, kernel, sig, "fft", options)
    y = y[(slice(None), slice(None), *(slice(None, None, s) for s in spec.stride))]
    if bias is not None:
        y = y + xp.reshape(bias, (-1, *(1,) * spec.ndim))
    return y
