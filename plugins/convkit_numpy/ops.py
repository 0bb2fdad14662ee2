"""NumPy kernels of the ``numpy`` backend.

im2col with a bounded workspace: the input is padded once; each chunk of output
positions gathers its receptive fields tap by tap into a column buffer of at most
:data:`WORKSPACE_BYTES`, laid out ``(G, Cg, *K, positions)``, and one batched matrix
product ``(G, Og, Cg*K) @ (G, Cg*K, positions)`` writes the chunk of the output, which
stays in ``(N, C_out, *O)`` order. Python loops run over kernel taps and chunks, never
over output positions.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from convkit.padding import pad_numpy
from convkit.spec import ConvSpec
from convkit.threads import cores, current

WORKSPACE_BYTES = 4 << 20
"""Upper bound on the column buffer of one chunk, in bytes (measured: 1-4 MiB chunks
stay in cache and beat larger ones on the CNN benchmark)."""


REUSE_BYTES = 32 << 20
"""Scratch arrays (the padded input, the column buffer) up to this size are taken from a
process-wide pool and returned to it after the call; larger ones are allocated per
call."""

POOL_BYTES = 64 << 20
"""The most scratch memory the pool keeps between calls, over all threads: whatever a
burst of concurrent calls allocated beyond it is freed when they return."""

_pool: list[np.ndarray] = []  # free buffers (uint8), smallest first
_pool_lock = threading.Lock()

Scratch = Callable[[tuple[int, ...], np.dtype], np.ndarray]
"""Hands out a scratch array of a shape and dtype for the current call."""


@contextlib.contextmanager
def _scratch() -> Iterator[Scratch]:
    """Scratch arrays for one call, reused across calls: fresh multi-megabyte
    allocations cost a page fault per 4 KiB on first touch, which is a large share of a
    small convolution's time. The buffers go back to the pool when the call ends, and
    the pool keeps at most :data:`POOL_BYTES`, so threads that have finished hold no
    memory of their own."""
    taken: list[np.ndarray] = []

    def get(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes > REUSE_BYTES:
            return np.empty(shape, dtype=dtype)
        buf = None
        with _pool_lock:
            for i, free in enumerate(_pool):
                if free.nbytes >= nbytes:
                    buf = _pool.pop(i)
                    break
        if buf is None:
            buf = np.empty(max(nbytes, WORKSPACE_BYTES), dtype=np.uint8)
        taken.append(buf)
        return buf[:nbytes].view(dtype).reshape(shape)

    try:
        yield get
    finally:
        with _pool_lock:
            _pool.extend(taken)
            _pool.sort(key=lambda b: b.nbytes)
            while sum(b.nbytes for b in _pool) > POOL_BYTES:
                _pool.pop(0)  # keep the large buffers: they serve every size


def _padded(x: np.ndarray, spec: ConvSpec, scratch: Scratch) -> np.ndarray:
    """``x`` padded as ``spec`` says; zero padding goes into a reused scratch array."""
    if spec.padding_mode != "zeros" or not spec.has_padding:
        return pad_numpy(x, spec.padding, spec.padding_mode)
    out = scratch((*x.shape[:2], *spec.padded_size), x.dtype)
    lead = (slice(None), slice(None))
    for i, ((lo, _), n) in enumerate(zip(spec.padding, spec.input_size, strict=True)):
        before = (slice(None),) * i
        out[(*lead, *before, slice(0, lo))] = 0  # only the border; the rest is overwritten
        out[(*lead, *before, slice(lo + n, None))] = 0
    inner = tuple(
        slice(lo, lo + n) for (lo, _), n in zip(spec.padding, spec.input_size, strict=True)
    )
    out[(*lead, *inner)] = x
    return out


Block = tuple[int, int, tuple[int, ...], tuple[int, ...]]
"""Samples ``n0:n1`` and, per output dimension, positions ``starts[i]:stops[i]``."""


def _chunks(spec: ConvSpec, itemsize: int) -> list[Block]:
    """Blocks of output positions whose column buffers stay under the workspace bound
    (a single position is the smallest block): several whole samples when they fit,
    else parts of one sample, cut along the leading output dimensions first."""
    n, out_size = spec.batch, spec.output_size
    row_bytes = spec.in_channels * math.prod(spec.kernel_size) * itemsize
    budget = max(1, WORKSPACE_BYTES // row_bytes)
    whole = tuple(0 for _ in out_size)
    per_sample = math.prod(out_size)
    if per_sample <= budget:
        step = budget // per_sample
        return [(n0, min(n, n0 + step), whole, out_size) for n0 in range(0, n, step)]
    block = list(out_size)
    for i in range(len(block)):
        inner = math.prod(block[i + 1 :])
        if math.prod(block) <= budget:
            break
        block[i] = max(1, budget // inner) if inner <= budget else 1
    grids = [range(0, size, b) for size, b in zip(out_size, block, strict=True)]
    return [
        (
            n0,
            n0 + 1,
            starts,
            tuple(min(s + b, size) for s, b, size in zip(starts, block, out_size, strict=True)),
        )
        for n0 in range(n)
        for starts in itertools.product(*grids)
    ]


def conv(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    spec: ConvSpec,
) -> np.ndarray:
    """Cross-correlation of a batched input; see :meth:`convkit.Backend.conv`.

    Calls with fewer output positions than kernel taps (a weight gradient, whose
    "kernel" is the output gradient) loop over the positions, one matrix product each;
    depthwise calls (one input and one output channel per group) take
    :func:`depthwise`; the rest im2col and matrix products. Each of these loops in
    Python over the smaller of positions and taps."""
    with _scratch() as scratch:
        if math.prod(spec.output_size) < math.prod(spec.kernel_size):
            return _by_position(x, weight, bias, spec, scratch)
        if spec.in_channels == spec.groups == spec.out_channels:
            return _depthwise(x, weight, bias, spec, scratch)
        return _im2col(x, weight, bias, spec, scratch)


def _by_position(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, scratch: Scratch
) -> np.ndarray:
    """One batched matrix product per output position: the receptive field of every
    sample, ``(G, N, Cg*K)``, against the weights, ``(G, Cg*K, Og)``."""
    g, n = spec.groups, spec.batch
    cg, og = spec.in_channels // g, spec.out_channels // g
    taps = math.prod(spec.kernel_size)
    xp = _padded(x, spec, scratch)
    wt = np.swapaxes(weight.reshape(g, og, cg * taps), 1, 2)
    out = np.empty(spec.output_shape, dtype=x.dtype)
    for pos in itertools.product(*(range(m) for m in spec.output_size)):
        field = tuple(
            slice(i * st, i * st + (k - 1) * dl + 1, dl)
            for i, st, dl, k in zip(pos, spec.stride, spec.dilation, spec.kernel_size, strict=True)
        )
        window = xp[(slice(None), slice(None), *field)].reshape(n, g, cg * taps)
        y = np.matmul(np.swapaxes(window, 0, 1), wt)  # (G, N, Og)
        where: tuple[Any, ...] = (slice(None), slice(None), *pos)
        out[where] = np.swapaxes(y, 0, 1).reshape(n, g * og)
    if bias is not None:
        out += bias.reshape(-1, *(1,) * spec.ndim)
    return out


def _im2col(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, scratch: Scratch
) -> np.ndarray:
    g = spec.groups
    cg, og = spec.in_channels // g, spec.out_channels // g
    kernel, out_size = spec.kernel_size, spec.output_size
    taps = math.prod(kernel)
    xp = _padded(x, spec, scratch)
    wm = weight.reshape(g, og, cg * taps)
    out = np.empty(spec.output_shape, dtype=x.dtype)

    chunks = _chunks(spec, x.itemsize)
    largest = max(
        (
            (n1 - n0) * math.prod(b - a for a, b in zip(lo, hi, strict=True))
            for n0, n1, lo, hi in chunks
        ),
        default=0,
    )
    buffer = scratch((spec.in_channels * taps * largest,), x.dtype)
    for n0, n1, lo, hi in chunks:
        nb, block = n1 - n0, tuple(b - a for a, b in zip(lo, hi, strict=True))
        cols = buffer[: spec.in_channels * taps * nb * math.prod(block)]
        cols = cols.reshape(g, cg, *kernel, nb, *block)
        for tap in itertools.product(*(range(k) for k in kernel)):
            src: list[slice] = [slice(n0, n1), slice(None)]
            for a, st, dl, start, length in zip(
                tap, spec.stride, spec.dilation, lo, block, strict=True
            ):
                first = a * dl + st * start
                src.append(slice(first, first + (length - 1) * st + 1, st))
            window = xp[tuple(src)].reshape(nb, g, cg, *block)
            where: tuple[Any, ...] = (slice(None), slice(None), *tap)
            cols[where] = np.moveaxis(window, 0, 2)
        cols2 = cols.reshape(g, cg * taps, -1)
        region = (slice(n0, n1), slice(None), *(slice(a, b) for a, b in zip(lo, hi, strict=True)))
        # a block cut only along the first output dim is one contiguous run of the output
        contiguous = nb == 1 and block[1:] == out_size[1:]
        if contiguous and g == 1:  # the common case: one plain 2-d product into the output
            np.matmul(wm[0], cols2[0], out=out[region][0].reshape(og, -1))
        elif contiguous:
            np.matmul(wm, cols2, out=out[region][0].reshape(g, og, -1))
        else:
            y = np.matmul(wm, cols2).reshape(g * og, nb, *block)
            out[region] = np.moveaxis(y, 1, 0)
    if bias is not None:
        out += bias.reshape(-1, *(1,) * spec.ndim)
    return out


DEPTHWISE_BLOCK_BYTES = 1 << 20
"""Size of the slab of output channels one task of :func:`depthwise` keeps in cache."""

_pools: dict[int, ThreadPoolExecutor] = {}


def depthwise(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    spec: ConvSpec,
    threads: int | None = None,
) -> np.ndarray:
    """A depthwise layer (``groups == C_in == C_out``) as memory-bound work: no matrix
    product to feed, so each output slab (one sample, a few channels, sized to stay in
    cache) accumulates its kernel taps one multiply-add at a time, each tap scaling a
    shifted view of the padded input by one weight per channel. Slabs are spread over
    ``threads`` threads, by default the call's ``threads`` setting, else every core (NumPy releases the GIL in these
    loops; the pool is convkit's own, so no library's thread count changes)."""
    with _scratch() as scratch:
        return _depthwise(x, weight, bias, spec, scratch, threads)


def _depthwise(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    spec: ConvSpec,
    scratch: Scratch,
    threads: int | None = None,
) -> np.ndarray:
    xp = _padded(x, spec, scratch)
    out = np.empty(spec.output_shape, dtype=x.dtype)
    n, c = spec.batch, spec.out_channels
    per_channel = math.prod(spec.output_size) * x.itemsize
    step = max(1, min(c, DEPTHWISE_BLOCK_BYTES // max(per_channel, 1)))
    slabs = [(i, c0, min(c, c0 + step)) for i in range(n) for c0 in range(0, c, step)]
    taps = list(itertools.product(*(range(k) for k in spec.kernel_size)))
    w = weight.reshape(c, len(taps))

    def run(part: list[tuple[int, int, int]]) -> None:
        tmp = np.empty((step, *spec.output_size), dtype=x.dtype)
        for i, c0, c1 in part:
            acc, scratch = out[i, c0:c1], tmp[: c1 - c0]
            for t, tap in enumerate(taps):
                src = tuple(
                    slice(a * dl, a * dl + (m - 1) * st + 1, st)
                    for a, dl, st, m in zip(
                        tap, spec.dilation, spec.stride, spec.output_size, strict=True
                    )
                )
                scale = w[c0:c1, t].reshape(-1, *(1,) * spec.ndim)
                where: tuple[Any, ...] = (i, slice(c0, c1), *src)
                if t == 0:
                    np.multiply(xp[where], scale, out=acc)
                else:
                    np.multiply(xp[where], scale, out=scratch)
                    acc += scratch

    workers = max(1, min(threads or current() or cores(), len(slabs)))
    if workers == 1:
        run(slabs)
    else:
        pool = _pools.get(workers) or _pools.setdefault(workers, ThreadPoolExecutor(workers))
        for f in [pool.submit(run, slabs[k::workers]) for k in range(workers)]:
            f.result()
    if bias is not None:
        out += bias.reshape(-1, *(1,) * spec.ndim)
    return out
