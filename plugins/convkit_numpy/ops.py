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


def _interior(spec: ConvSpec) -> tuple[slice, ...]:
    """Where the input lies in the padded input, per spatial dimension."""
    return tuple(
        slice(lo, lo + n) for (lo, _), n in zip(spec.padding, spec.input_size, strict=True)
    )


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
    out[(*lead, *_interior(spec))] = x
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


def _block_size(block: Block) -> int:
    """The number of output positions in ``block``."""
    n0, n1, lo, hi = block
    return (n1 - n0) * math.prod(b - a for a, b in zip(lo, hi, strict=True))


def _column_buffer(spec: ConvSpec, chunks: list[Block], dtype: Any, scratch: Scratch) -> np.ndarray:
    """One flat scratch buffer large enough for the columns of the largest chunk."""
    rows = spec.in_channels * math.prod(spec.kernel_size)
    return scratch((rows * max((_block_size(b) for b in chunks), default=0),), dtype)


def _tap_source(spec: ConvSpec, block: Block, tap: tuple[int, ...]) -> tuple[slice, ...]:
    """Where tap ``tap`` of the output positions in ``block`` reads the padded input:
    the samples, every channel, one strided slice per spatial dimension."""
    n0, n1, lo, hi = block
    src: list[slice] = [slice(n0, n1), slice(None)]
    for a, st, dl, start, stop in zip(tap, spec.stride, spec.dilation, lo, hi, strict=True):
        first = a * dl + st * start
        src.append(slice(first, first + (stop - start - 1) * st + 1, st))
    return tuple(src)


def _columns(xp: np.ndarray, spec: ConvSpec, block: Block, buffer: np.ndarray) -> np.ndarray:
    """The receptive fields of ``block`` gathered from the padded input ``xp`` into
    ``buffer``, tap by tap: ``(G, Cg*K, positions)``, rows ordered like the weight's
    ``(Cg, *K)`` and positions like ``(samples, *block)``."""
    g = spec.groups
    cg, kernel = spec.in_channels // g, spec.kernel_size
    n0, n1, lo, hi = block
    nb, size = n1 - n0, tuple(b - a for a, b in zip(lo, hi, strict=True))
    cols = buffer[: spec.in_channels * math.prod(kernel) * _block_size(block)]
    cols = cols.reshape(g, cg, *kernel, nb, *size)
    for tap in itertools.product(*(range(k) for k in kernel)):
        window = xp[_tap_source(spec, block, tap)].reshape(nb, g, cg, *size)
        where: tuple[Any, ...] = (slice(None), slice(None), *tap)
        cols[where] = np.moveaxis(window, 0, 2)
    return cols.reshape(g, cg * math.prod(kernel), -1)


def _tap_window(spec: ConvSpec, i: int, c0: int, c1: int, tap: tuple[int, ...]) -> tuple[Any, ...]:
    """Where tap ``tap`` of every output position of sample ``i``, channels ``c0:c1``,
    reads the padded input."""
    src = _tap_source(spec, (i, i + 1, (0,) * spec.ndim, spec.output_size), tap)
    return (i, slice(c0, c1), *src[2:])


def _im2col(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, scratch: Scratch
) -> np.ndarray:
    g = spec.groups
    og, out_size = spec.out_channels // g, spec.output_size
    xp = _padded(x, spec, scratch)
    wm = weight.reshape(g, og, -1)
    out = np.empty(spec.output_shape, dtype=x.dtype)
    chunks = _chunks(spec, x.itemsize)
    buffer = _column_buffer(spec, chunks, x.dtype, scratch)
    for n0, n1, lo, hi in chunks:
        nb, block = n1 - n0, tuple(b - a for a, b in zip(lo, hi, strict=True))
        cols2 = _columns(xp, spec, (n0, n1, lo, hi), buffer)
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

Slab = tuple[int, int, int]
"""One sample ``i`` and the channels ``c0:c1`` of a depthwise layer."""

PARALLEL_ELEMENTS = 1 << 20
"""Depthwise work of fewer multiply-adds runs in the calling thread (the pool costs more)."""


def _parallel(
    run: Callable[[list[Slab]], Any], slabs: list[Slab], threads: int | None, elements: int
) -> list[Any]:
    """``run`` on ``slabs`` dealt round-robin to ``threads`` threads (default: the call's
    setting, else every core) of convkit's own pool, unless the work is small; returns
    each thread's result. NumPy releases the GIL in its loops."""
    small = elements < PARALLEL_ELEMENTS and threads is None
    workers = max(1, min(1 if small else threads or current() or cores(), len(slabs)))
    if workers == 1:
        return [run(slabs)]
    pool = _pools.get(workers) or _pools.setdefault(workers, ThreadPoolExecutor(workers))
    return [f.result() for f in [pool.submit(run, slabs[k::workers]) for k in range(workers)]]


def _slabs(spec: ConvSpec, channel_bytes: int) -> tuple[int, list[Slab]]:
    """The channels per slab (so that a slab's ``channel_bytes`` per channel stay within
    :data:`DEPTHWISE_BLOCK_BYTES`) and the slabs covering every sample and channel."""
    n, c = spec.batch, spec.out_channels
    step = max(1, min(c, DEPTHWISE_BLOCK_BYTES // max(channel_bytes, 1)))
    return step, [(i, c0, min(c, c0 + step)) for i in range(n) for c0 in range(0, c, step)]


def _flat_grid(spec: ConvSpec) -> tuple[tuple[int, ...], int, list[int]]:
    """For stride 1, the output laid on the padded input's grid: the grid's shape, the
    length ``L`` from its first output position to its last, and each tap's offset, so
    that tap ``t`` of every output position of a flattened padded channel is the slice
    ``[offset[t], offset[t] + L)`` (the grid's extra columns are cropped afterwards)."""
    padded, out = spec.padded_size, spec.output_size
    pitch = [math.prod(padded[i + 1 :]) for i in range(spec.ndim)]
    length = sum((o - 1) * p for o, p in zip(out, pitch, strict=True)) + 1
    offsets = [
        sum(a * dl * p for a, dl, p in zip(tap, spec.dilation, pitch, strict=True))
        for tap in itertools.product(*(range(k) for k in spec.kernel_size))
    ]
    return (out[0], *padded[1:]), length, offsets


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
    shifted view of the padded input by one weight per channel. With stride 1 each tap
    is one contiguous run of the flattened padded slab (:func:`_flat_grid`), and zero
    padding is written per slab into a buffer that stays in cache. Slabs are spread over
    ``threads`` threads (:func:`_parallel`)."""
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
    kernel = _depthwise_flat if all(st == 1 for st in spec.stride) else _depthwise_strided
    out = kernel(x, weight, spec, scratch, threads)
    if bias is not None:
        out += bias.reshape(-1, *(1,) * spec.ndim)
    return out


def _depthwise_flat(
    x: np.ndarray, weight: np.ndarray, spec: ConvSpec, scratch: Scratch, threads: int | None
) -> np.ndarray:
    grid, length, offsets = _flat_grid(spec)
    out = np.empty(spec.output_shape, dtype=x.dtype)
    own_padding = spec.padding_mode == "zeros" and spec.has_padding
    xp = x if own_padding else _padded(x, spec, scratch)
    step, parts = _slabs(spec, math.prod(spec.padded_size) * x.itemsize)
    w = weight.reshape(spec.out_channels, len(offsets))
    inner = _interior(spec)
    crop = (slice(None), *(slice(0, o) for o in spec.output_size))

    def run(part: list[Slab]) -> None:
        acc = np.empty((step, math.prod(grid)), dtype=x.dtype)
        tmp = np.empty((step, length), dtype=x.dtype)
        buf = np.zeros((step, *spec.padded_size), dtype=x.dtype) if own_padding else None
        for i, c0, c1 in part:
            k = c1 - c0
            if buf is not None:
                buf[(slice(0, k), *inner)] = x[i, c0:c1]
                src = buf[:k].reshape(k, -1)
            else:
                src = xp[i, c0:c1].reshape(k, -1)
            run_acc = acc[:k, :length]
            for t, off in enumerate(offsets):
                np.multiply(
                    src[:, off : off + length], w[c0:c1, t, None], out=tmp[:k] if t else run_acc
                )
                if t:
                    run_acc += tmp[:k]
            out[i, c0:c1] = acc[:k].reshape(k, *grid)[crop]

    _parallel(run, parts, threads, out.size * len(offsets))
    return out


def _depthwise_strided(
    x: np.ndarray, weight: np.ndarray, spec: ConvSpec, scratch: Scratch, threads: int | None
) -> np.ndarray:
    xp = _padded(x, spec, scratch)
    out = np.empty(spec.output_shape, dtype=x.dtype)
    step, parts = _slabs(spec, math.prod(spec.output_size) * x.itemsize)
    taps = list(itertools.product(*(range(k) for k in spec.kernel_size)))
    w = weight.reshape(spec.out_channels, len(taps))

    def run(part: list[Slab]) -> None:
        tmp = np.empty((step, *spec.output_size), dtype=x.dtype)
        for i, c0, c1 in part:
            acc, scratch = out[i, c0:c1], tmp[: c1 - c0]
            for t, tap in enumerate(taps):
                scale = w[c0:c1, t].reshape(-1, *(1,) * spec.ndim)
                where = _tap_window(spec, i, c0, c1, tap)
                np.multiply(xp[where], scale, out=scratch if t else acc)
                if t:
                    acc += scratch

    _parallel(run, parts, threads, out.size * len(taps))
    return out
