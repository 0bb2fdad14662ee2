"""Chunk-wise ``conv`` of Dask arrays: pad the whole array's outer boundary, plan chunks
that hold the halo and start on the stride, add a one-sided halo, and run a *valid*
``conv`` on every block with a local backend.

Along each spatial axis the padded array (length ``P``) is cut at boundaries
``b_0 = 0 < b_1 < ... < b_m = P`` that are multiples of the stride, every piece at least
``E - 1`` long (``E = (K - 1) * dilation + 1``, the kernel extent) and the last at
least ``E``. Block ``j`` is piece ``j`` extended to the right by the ``E - 1`` samples
that follow it; a valid, strided ``conv`` of that block gives exactly the outputs whose
window starts in piece ``j``: ``(b_{j+1} - b_j) / stride`` of them, and
``(P - b_m-1 - E) // stride + 1`` for the last. The padding mode is applied once, to
the whole array, so chunk seams never see it.

Along the channel axis the chunks are cut on group boundaries, so each block holds
whole groups and needs only their slice of the weights. The batch axis is left as it
is. The weights travel as one task of the graph, which every block depends on: a
distributed scheduler sends them to each worker once.
"""

from __future__ import annotations

import functools
import math
import string
import uuid
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph

from convkit.padding import pad_indices
from convkit.spec import ConvSpec

IN_MEMORY_PREFIX = "convkit-from-numpy-"
"""Graph-layer name prefix of Dask arrays wrapped around an in-memory NumPy array."""

STORE_PREFIX = "convkit-from-store-"
"""Graph-layer name prefix of Dask arrays wrapped around an on-disk array (a NumPy
memmap, a Zarr array)."""


def asarray(obj: Any, chunks: Any) -> da.Array:
    """A Dask array over ``obj`` (a NumPy array, a memmap or a Zarr array), read chunk by
    chunk; its graph layer is named so :func:`from_memory` can tell where it came from.

    >>> asarray(np.arange(6.0), 4).chunks
    ((4, 2),)
    """
    in_memory = isinstance(obj, np.ndarray) and not isinstance(obj, np.memmap)
    prefix = IN_MEMORY_PREFIX if in_memory else STORE_PREFIX
    return da.from_array(obj, chunks=chunks, name=prefix + uuid.uuid4().hex)


def from_memory(a: da.Array) -> bool:
    """Whether ``a`` is computed from an array the caller passed in memory (then its
    result is not bigger than what the caller already holds).

    >>> from_memory(asarray(np.ones(3), 2)), from_memory(da.ones(3))
    (True, False)
    """
    return any(str(name).startswith(IN_MEMORY_PREFIX) for name in a.dask.layers)


def constant(value: np.ndarray, what: str) -> da.Array:
    """``value`` as a one-chunk Dask array held by a single task of the graph (not a
    ``from_array`` layer, which graph optimisation may fuse into every consumer).

    >>> constant(np.ones((2, 3)), "w").chunks
    ((2,), (3,))
    """
    name = f"convkit-{what}-{uuid.uuid4().hex}"
    key: Any = (name, *(0,) * value.ndim)
    graph = HighLevelGraph.from_collections(name, {key: value}, dependencies=())
    return da.Array(graph, name, chunks=tuple((n,) for n in value.shape), dtype=value.dtype)


def pad(x: da.Array, padding: Sequence[tuple[int, int]], mode: str) -> da.Array:
    """Pad the trailing ``len(padding)`` axes of the *whole* array in a convkit padding
    mode (any width): zeros are concatenated, every other mode gathers the border from
    the positions :func:`convkit.padding.pad_indices` names (``circular`` from the far
    end of the whole axis, never from a neighbouring chunk).

    >>> pad(da.arange(4.0, chunks=2), [(2, 2)], "reflect").compute().tolist()
    [2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0]
    """
    first = x.ndim - len(padding)
    for i, (lo, hi) in enumerate(padding):
        if not (lo or hi):
            continue
        ax = first + i
        size = x.shape[ax]
        parts = []
        if mode == "zeros":
            for width in (lo, hi):
                chunks = list(x.chunks)
                chunks[ax] = (width,)
                shape = tuple(sum(c) for c in chunks)
                parts.append(da.zeros(shape, dtype=x.dtype, chunks=tuple(chunks)))
        else:
            index = pad_indices(size, lo, hi, mode)
            lead = (slice(None),) * ax
            parts = [x[(*lead, index[:lo])], x[(*lead, index[lo + size :])]]
        pieces = [p for p in (parts[0], x, parts[1]) if p.shape[ax] > 0]
        x = da.concatenate(pieces, axis=ax)
    return x


def plan_axis(
    chunks: Sequence[int], low: int, padded: int, stride: int, extent: int
) -> tuple[int, ...]:
    """Chunk sizes for one padded spatial axis: boundaries of the input's chunks (moved
    by the low padding ``low``) rounded down to the stride, dropped where a piece would
    be shorter than the halo ``extent - 1`` or the last one shorter than ``extent``.

    >>> plan_axis((4, 4, 4), 1, 14, 1, 3)
    (5, 4, 5)
    >>> plan_axis((4, 4, 4), 0, 12, 3, 3)   # boundaries on the stride
    (3, 3, 6)
    >>> plan_axis((1,) * 8, 0, 8, 1, 4)   # chunks smaller than the halo merge
    (3, 5)
    """
    minimum = max(extent - 1, 1)
    kept = [0]
    for b in np.cumsum(chunks)[:-1] + low:
        b = int(b) // stride * stride
        if b - kept[-1] >= minimum and padded - b >= max(minimum, extent):
            kept.append(b)
    kept.append(padded)
    return tuple(int(n) for n in np.diff(kept))


def plan_channels(chunks: Sequence[int], group_size: int) -> tuple[int, ...]:
    """Channel chunk sizes cut only on group boundaries (multiples of ``group_size``).

    >>> plan_channels((3, 3, 2), 2)
    (2, 4, 2)
    >>> plan_channels((1, 1, 1), 3)
    (3,)
    """
    total = int(sum(chunks))
    kept = [0]
    for b in np.cumsum(chunks)[:-1]:
        b = int(b) // group_size * group_size
        if b > kept[-1]:
            kept.append(b)
    kept.append(total)
    return tuple(int(n) for n in np.diff(kept))


def _outputs(pieces: Sequence[int], stride: int, extent: int) -> tuple[int, ...]:
    """Outputs per block: one per stride step of every piece but the last, whose count
    is that of a valid ``conv`` of it."""
    *head, last = pieces
    return (*(n // stride for n in head), (last - extent) // stride + 1)


def conv(
    x: da.Array,
    weight: np.ndarray,
    bias: np.ndarray | None,
    spec: ConvSpec,
    *,
    inner: str,
) -> da.Array:
    """``conv`` of a batched Dask array ``x`` with NumPy ``weight`` and ``bias``, block by
    block on the local backend ``inner``, by the method ``spec.method``. Returns a lazy
    Dask array of ``spec.output_shape``.

    >>> x = da.arange(10.0, chunks=3).reshape(1, 1, 10)
    >>> w = np.array([[[1.0, 0.0, -1.0]]])
    >>> spec = ConvSpec.build((1, 1, 10), w.shape, stride=2, padding=1, padding_mode="reflect")
    >>> conv(x, w, None, spec, inner="numpy").compute().tolist()
    [[[0.0, -2.0, -2.0, -2.0, -2.0]]]
    """
    dtype = np.dtype(x.dtype)
    if 0 in spec.output_shape:
        return da.zeros(spec.output_shape, dtype=dtype)
    d = spec.ndim
    g = spec.groups
    cg, og = spec.in_channels // g, spec.out_channels // g
    xp = pad(x, spec.padding, spec.padding_mode)
    spatial = [
        plan_axis(x.chunks[2 + i], spec.padding[i][0], spec.padded_size[i], st, e)
        for i, (st, e) in enumerate(zip(spec.stride, spec.kernel_extent, strict=True))
    ]
    channels = plan_channels(x.chunks[1], cg)
    target = (x.chunks[0], channels, *spatial)
    # no intermediate chunks larger than the largest target chunk (dask's planner may
    # otherwise merge whole rows of chunks, up to its default chunk size)
    largest = math.prod(max(c, default=1) for c in target) * dtype.itemsize
    xp = xp.rechunk(target, block_size_limit=largest, method="tasks")
    depth: dict[int, Any] = {0: 0, 1: 0}
    for i, (pieces, e) in enumerate(zip(spatial, spec.kernel_extent, strict=True)):
        depth[2 + i] = (0, e - 1) if len(pieces) > 1 and e > 1 else 0
    if any(v != 0 for v in depth.values()):
        xp = da.overlap.overlap(xp, depth=depth, boundary="none", allow_rechunk=False)

    letters = string.ascii_letters
    out_ind = letters[: 2 + d]
    w_ind = letters[2 + d : 2 * (2 + d)]
    channel_index = da.arange(spec.in_channels, chunks=(channels,))
    args: list[Any] = [
        xp,
        out_ind,
        channel_index,
        out_ind[1],
        constant(weight, "weight"),
        w_ind,
    ]
    args += [None, None] if bias is None else [constant(bias, "bias"), w_ind[0]]
    adjust: dict[str, Any] = {out_ind[1]: tuple(n // cg * og for n in channels)}
    for i, (pieces, st, e) in enumerate(zip(spatial, spec.stride, spec.kernel_extent, strict=True)):
        adjust[out_ind[2 + i]] = _outputs(pieces, st, e)
    return da.blockwise(
        _block,
        out_ind,
        *args,
        token="convkit-conv",
        adjust_chunks=adjust,
        dtype=dtype,
        meta=np.empty((0,) * (2 + d), dtype=dtype),
        concatenate=True,
        group_size=cg,
        group_outputs=og,
        stride=spec.stride,
        dilation=spec.dilation,
        method=spec.method,
        inner=inner,
    )


def _block(
    x: np.ndarray,
    channel_index: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    *,
    group_size: int,
    group_outputs: int,
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    method: str,
    inner: str,
) -> np.ndarray:
    """One block: a valid ``conv`` of the groups the block holds, computed directly by
    the local backend ``inner`` (``name`` or ``name:device``, checked when the graph was
    built; ``"auto"``: :func:`block_backend`). No selection or planning runs per block;
    the result is checked as the core checks any backend's."""
    from convkit import checks
    from convkit.dispatch import BackendError
    from convkit.selection import parse_backend

    first = int(channel_index[0]) // group_size
    groups = x.shape[1] // group_size
    rows = slice(first * group_outputs, (first + groups) * group_outputs)
    w = weight[rows]
    b = None if bias is None else bias[rows]
    spec = ConvSpec.build(
        x.shape,
        w.shape,
        None if b is None else b.shape,
        stride=stride,
        dilation=dilation,
        groups=groups,
        method=method,
    )
    dtype = np.dtype(x.dtype).name
    if inner == "auto":
        inner = block_backend(x.shape, w.shape, dtype, stride, dilation, groups)
    name, options = parse_backend(inner, "inner")
    backend = checks.registered_backend(name)
    xb, wb = backend.asarray(x, dtype, options), backend.asarray(w, dtype, options)
    bb = None if b is None else backend.asarray(b, dtype, options)
    y = np.asarray(backend.to_numpy(backend.conv(xb, wb, bb, spec, options)))
    if y.shape != spec.output_shape or y.dtype != np.dtype(dtype):
        raise BackendError(
            f"backend {name!r} returned a block with shape {y.shape} and dtype {y.dtype}; "
            f"expected shape {spec.output_shape} and dtype {dtype}"
        )
    return y


@functools.cache
def block_backend(
    shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    dtype: str,
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> str:
    """The backend ``auto`` picks for a block of this shape on this worker, planned once
    per shape in each worker process (the workers' libraries decide, not the client's)."""
    from convkit import ops

    zeros = np.zeros((), dtype=dtype)
    choice = ops.choose_conv_method(  # "auto" explicitly: never the ambient selection
        np.broadcast_to(zeros, shape),
        np.broadcast_to(zeros, w_shape),
        stride=stride,
        dilation=dilation,
        groups=groups,
        backend="auto",
    )
    return choice.backend
