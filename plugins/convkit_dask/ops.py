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

import dataclasses
import functools
import math
import string
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph

from convkit.padding import pad_adjoint, pad_indices
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


def plan_axis(bounds: Sequence[int], padded: int, stride: int, extent: int) -> tuple[int, ...]:
    """Piece sizes for one padded spatial axis of length ``padded``: the candidate
    boundaries ``bounds`` (positions of the padded axis) rounded down to the stride,
    dropped where a piece would be shorter than the halo ``extent - 1`` or the last one
    shorter than ``extent``.

    A boundary at padded position ``b`` is an output boundary at ``b / stride``: for a
    ``conv`` the candidates are the input's chunk boundaries, so a stride-1 ``"same"``
    convolution keeps the input's chunks in its output.

    >>> plan_axis((4, 8), 14, 1, 3)
    (4, 4, 6)
    >>> plan_axis((4, 8), 12, 3, 3)   # boundaries on the stride
    (3, 3, 6)
    >>> plan_axis(range(1, 8), 8, 1, 4)   # pieces shorter than the halo merge
    (3, 5)
    """
    minimum = max(extent - 1, 1)
    kept = [0]
    for b in bounds:
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


def _inner_bounds(chunks: Sequence[int]) -> list[int]:
    return [int(b) for b in np.cumsum(chunks)[:-1]]


@dataclasses.dataclass(frozen=True)
class Blocks:
    """How a ``conv`` (``spec``) is cut into blocks: the batch chunks, the input channel
    chunks (whole groups), and the pieces of every padded spatial axis; block ``j`` of an
    axis is its piece with the ``halo`` samples that follow it (none for the last)."""

    spec: ConvSpec
    batch: tuple[int, ...]
    channels: tuple[int, ...]
    spatial: tuple[tuple[int, ...], ...]

    @classmethod
    def for_input(cls, chunks: Sequence[Sequence[int]], spec: ConvSpec) -> Blocks:
        """Blocks along the chunks of an input ``(N, C_in, *S)``: pieces end where the
        input's chunks end (so a stride-1 ``"same"`` output keeps them).

        >>> spec = ConvSpec.build((1, 1, 12), (1, 1, 3), padding=1)
        >>> Blocks.for_input(((1,), (1,), (4, 4, 4)), spec).spatial
        ((4, 4, 6),)
        """
        spatial = tuple(
            plan_axis(_inner_bounds(chunks[2 + i]), p, st, e)
            for i, (p, st, e) in enumerate(
                zip(spec.padded_size, spec.stride, spec.kernel_extent, strict=True)
            )
        )
        channels = plan_channels(chunks[1], spec.in_channels // spec.groups)
        return cls(spec, tuple(chunks[0]), channels, spatial)

    @classmethod
    def for_output(cls, chunks: Sequence[Sequence[int]], spec: ConvSpec) -> Blocks:
        """Blocks along the chunks of an output ``(N, C_out, *O)`` (the input of a
        transposed convolution).

        >>> spec = ConvSpec.build((1, 1, 12), (1, 1, 3), stride=2)
        >>> Blocks.for_output(((1,), (1,), (2, 3)), spec).spatial
        ((4, 8),)
        """
        spatial = tuple(
            plan_axis([b * st for b in _inner_bounds(chunks[2 + i])], p, st, e)
            for i, (p, st, e) in enumerate(
                zip(spec.padded_size, spec.stride, spec.kernel_extent, strict=True)
            )
        )
        cg, og = spec.in_channels // spec.groups, spec.out_channels // spec.groups
        channels = tuple(n // og * cg for n in plan_channels(chunks[1], og))
        return cls(spec, tuple(chunks[0]), channels, spatial)

    @property
    def halo(self) -> tuple[int, ...]:
        """Samples each block but the last reads beyond its piece, per spatial axis."""
        return tuple(
            e - 1 if len(pieces) > 1 else 0
            for pieces, e in zip(self.spatial, self.spec.kernel_extent, strict=True)
        )

    @property
    def block_chunks(self) -> tuple[tuple[int, ...], ...]:
        """Chunks of the blocks: each piece with its halo (the last without)."""
        spatial = tuple(
            (*(n + h for n in pieces[:-1]), pieces[-1])
            for pieces, h in zip(self.spatial, self.halo, strict=True)
        )
        return (self.batch, self.channels, *spatial)

    @property
    def output_chunks(self) -> tuple[tuple[int, ...], ...]:
        """Chunks of the output: the outputs whose windows start in each piece."""
        spec = self.spec
        cg, og = spec.in_channels // spec.groups, spec.out_channels // spec.groups
        spatial = tuple(
            _outputs(pieces, st, e)
            for pieces, st, e in zip(self.spatial, spec.stride, spec.kernel_extent, strict=True)
        )
        return (self.batch, tuple(n // cg * og for n in self.channels), *spatial)

    def of(self, x: da.Array) -> da.Array:
        """The blocks of ``x``: padded as the whole array, cut into pieces, each piece
        extended by the halo from its neighbours.

        The padded array is cut ``shift`` samples after each piece's start (the low
        padding, at most the halo) and extended by ``shift`` samples from the left
        neighbour and ``halo - shift`` from the right one: the same blocks, but where a
        piece ends on an input chunk's end (stride 1, chunks longer than the halo) the
        cuts fall on the input's own chunk boundaries, so only the two border chunks
        are rechunked (they take in the padding)."""
        spec = self.spec
        xp = pad(x, spec.padding, spec.padding_mode)
        shifts = [
            _shift(pieces, lo, h)
            for pieces, (lo, _), h in zip(self.spatial, spec.padding, self.halo, strict=True)
        ]
        target = (
            self.batch,
            self.channels,
            *(_shifted(p, s) for p, s in zip(self.spatial, shifts, strict=True)),
        )
        # no intermediate chunks larger than the largest target chunk (dask's planner may
        # otherwise merge whole rows of chunks, up to its default chunk size)
        largest = math.prod(max(c, default=1) for c in target) * np.dtype(x.dtype).itemsize
        xp = xp.rechunk(target, block_size_limit=largest, method="tasks")
        depth: dict[int, Any] = {0: 0, 1: 0}
        for i, (h, s) in enumerate(zip(self.halo, shifts, strict=True)):
            depth[2 + i] = (s, h - s) if h else 0
        if any(v != 0 for v in depth.values()):
            xp = da.overlap.overlap(xp, depth=depth, boundary="none", allow_rechunk=False)
        return xp

    def channel_index(self) -> da.Array:
        """Each input channel's index, chunked as the blocks' channels: a block reads
        its first group from it."""
        return da.arange(self.spec.in_channels, chunks=(self.channels,))

    def scatter(self, blocks: da.Array) -> da.Array:
        """The adjoint of :meth:`of`: gradients of the blocks (``block_chunks``) added up
        where blocks overlap, then folded through the padding's adjoint onto
        ``(N, C_in, *S)``."""
        g = blocks
        for i, (pieces, h) in enumerate(zip(self.spatial, self.halo, strict=True)):
            if h:
                g = _overlap_add(g, 2 + i, pieces, h)
        spec = self.spec
        return pad_adjoint(namespace(), g, spec.padding, spec.input_size, spec.padding_mode)


def _shift(pieces: Sequence[int], low: int, halo: int) -> int:
    """How far :meth:`Blocks.of` may move the cuts of one axis: the low padding, at most
    the halo, and at most what leaves the last piece (shortened by the shift) at least
    as long as the samples the overlap takes from it (``max(shift, halo - shift)``).

    >>> _shift((10, 10, 1), 4, 4)   # a causal kernel of 5, the last piece short
    0
    >>> _shift((10, 10, 7), 2, 4)
    2
    """
    shift = min(low, halo)
    while shift and pieces[-1] - shift < max(shift, halo - shift):
        shift -= 1
    return shift


def _shifted(pieces: Sequence[int], shift: int) -> tuple[int, ...]:
    """Pieces with every inner boundary moved ``shift`` samples later.

    >>> _shifted((4, 4, 6), 1)
    (5, 4, 5)
    """
    if len(pieces) == 1 or not shift:
        return tuple(pieces)
    return (pieces[0] + shift, *pieces[1:-1], pieces[-1] - shift)


def namespace() -> Any:
    """The array-API namespace of Dask arrays (``array_api_compat``'s wrapper).

    >>> namespace().__name__
    'array_api_compat.dask.array'
    """
    import array_api_compat.dask.array as xp

    return xp


def _overlap_add(g: da.Array, ax: int, pieces: Sequence[int], halo: int) -> da.Array:
    """Along ``ax``, add the last ``halo`` samples of each block (but the last, which
    has none) onto the start of the next block, keeping ``pieces``."""
    lead = (slice(None),) * ax
    heads = g.blocks[(*lead, slice(0, len(pieces) - 1))]
    tails = heads.map_blocks(
        lambda b: b[(*lead, slice(b.shape[ax] - halo, None))],
        chunks=tuple((halo,) * len(c) if i == ax else c for i, c in enumerate(heads.chunks)),
        dtype=g.dtype,
    )
    zero_chunks = tuple((halo,) if i == ax else c for i, c in enumerate(g.chunks))
    first = da.zeros(tuple(sum(c) for c in zero_chunks), dtype=g.dtype, chunks=zero_chunks)
    incoming = da.concatenate([first, tails], axis=ax)  # block j: the tail of block j - 1
    letters = string.ascii_letters[: g.ndim]
    return da.blockwise(
        _add_incoming,
        letters,
        g,
        letters,
        incoming,
        letters,
        da.asarray(np.asarray(pieces), chunks=1),
        letters[ax],
        align_arrays=False,
        adjust_chunks={letters[ax]: tuple(pieces)},
        dtype=g.dtype,
        meta=np.empty((0,) * g.ndim, dtype=g.dtype),
        ax=ax,
    )


def _add_incoming(
    block: np.ndarray, incoming: np.ndarray, piece: np.ndarray, *, ax: int
) -> np.ndarray:
    """The block's own ``piece`` samples along ``ax``, with ``incoming`` (the halo of
    the block before it) added at the start."""
    lead = (slice(None),) * ax
    out = np.array(block[(*lead, slice(0, int(piece[0])))], copy=True)
    out[(*lead, slice(0, incoming.shape[ax]))] += incoming
    return out


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
    precision: str = "highest",
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
    plan = Blocks.for_input(x.chunks, spec)
    letters = string.ascii_letters
    out_ind = letters[: 2 + d]
    w_ind = letters[2 + d : 2 * (2 + d)]
    args: list[Any] = [
        plan.of(x),
        out_ind,
        plan.channel_index(),
        out_ind[1],
        constant(weight, "weight"),
        w_ind,
    ]
    args += [None, None] if bias is None else [constant(bias, "bias"), w_ind[0]]
    adjust = dict(zip(out_ind[1:], plan.output_chunks[1:], strict=True))
    return da.blockwise(
        _block,
        out_ind,
        *args,
        token="convkit-conv",
        adjust_chunks=adjust,
        dtype=dtype,
        meta=np.empty((0,) * (2 + d), dtype=dtype),
        concatenate=True,
        group_size=spec.in_channels // spec.groups,
        group_outputs=spec.out_channels // spec.groups,
        stride=spec.stride,
        dilation=spec.dilation,
        method=spec.method,
        inner=inner,
        precision=precision,
    )


def conv_vjp(
    x: da.Array,
    weight: np.ndarray,
    grad_out: da.Array,
    spec: ConvSpec,
    bias: bool,
    *,
    inner: str,
    precision: str = "highest",
) -> tuple[da.Array, da.Array, da.Array | None]:
    """``(grad_x, grad_weight, grad_bias)`` of :func:`conv`, all lazy, each its own
    graph (so that computing the small weight gradient now and the input gradient later,
    chunk by chunk, does not run either twice):

    - ``grad_x``: the transposed convolution of ``grad_out`` (:func:`_transposed`), in
      ``x``'s chunks;
    - ``grad_weight``: each block of ``x`` (with its halo, as :func:`conv` cuts it) and
      the chunk of ``grad_out`` it produced go through the local backend's ``conv_vjp``;
      the partial gradients are summed by a tree reduction;
    - ``grad_bias``: ``grad_out`` summed over the batch and positions.

    Neither ``x`` nor ``grad_out`` is ever gathered into one array.

    >>> x = da.arange(10.0, chunks=3).reshape(1, 1, 10)
    >>> w = np.array([[[1.0, 0.0, -1.0]]])
    >>> spec = ConvSpec.build((1, 1, 10), w.shape, padding=1, padding_mode="reflect")
    >>> gx, gw, gb = conv_vjp(x, w, da.ones((1, 1, 10), chunks=4), spec, True, inner="numpy")
    >>> gx.compute().tolist()  # y sums xpad[0:10] - xpad[2:12]; xpad = [1, 0..9, 8]
    [[[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -1.0]]]
    >>> gw.compute().tolist(), gb.compute().tolist()  # sums of xpad[0:10], [1:11], [2:12]
    ([[[37.0, 45.0, 53.0]]], [10.0])
    """
    dtype = np.dtype(x.dtype)
    d = spec.ndim
    spatial = tuple(range(2, 2 + d))
    grad_b = grad_out.sum(axis=(0, *spatial)).astype(dtype) if bias else None
    if 0 in spec.output_shape or 0 in spec.input_size:
        gx = da.zeros(x.shape, dtype=dtype, chunks=x.chunks)
        return gx, da.zeros(weight.shape, dtype=dtype), grad_b
    plan = Blocks.for_input(x.chunks, spec)
    gy = grad_out.rechunk(plan.output_chunks)
    grad_x = _transposed(gy, weight, plan, inner, precision).rechunk(x.chunks)
    ind = string.ascii_letters[: 2 + d]
    w_ind = string.ascii_letters[2 + d : 2 * (2 + d)]
    cg = spec.in_channels // spec.groups
    partial = da.blockwise(
        _weight_block,
        ind + w_ind[1:],
        plan.of(x),
        ind,
        gy,
        ind,
        plan.channel_index(),
        ind[1],
        constant(weight, "weight"),
        w_ind,
        token="convkit-weight-grad",
        align_arrays=False,
        concatenate=True,
        new_axes={w_ind[1]: cg, **{w_ind[2 + i]: k for i, k in enumerate(spec.kernel_size)}},
        adjust_chunks={
            ind[0]: (1,) * len(plan.batch),
            ind[1]: plan.output_chunks[1],
            **{ind[2 + i]: (1,) * len(p) for i, p in enumerate(plan.spatial)},
        },
        dtype=dtype,
        meta=np.empty((0,) * (3 + 2 * d), dtype=dtype),
        group_size=cg,
        group_outputs=spec.out_channels // spec.groups,
        stride=spec.stride,
        dilation=spec.dilation,
        inner=inner,
        precision=precision,
    )
    grad_w = partial.sum(axis=(0, *spatial))
    return grad_x, grad_w, grad_b


def conv_transpose(
    x: da.Array,
    weight: np.ndarray,
    bias: np.ndarray | None,
    spec: ConvSpec,
    *,
    inner: str,
    precision: str = "highest",
) -> da.Array:
    """The adjoint of :func:`conv` with respect to its input, lazy: ``spec`` describes
    the forward ``conv`` whose output has ``x``'s shape (or fewer positions, as a large
    ``output_padding`` asks); see :func:`_transposed`.

    >>> spec = ConvSpec.build((1, 1, 6), (1, 1, 2), stride=2)
    >>> y = conv_transpose(da.ones((1, 1, 3), chunks=1), np.array([[[1.0, 2.0]]]), None, spec,
    ...                    inner="numpy")
    >>> y.compute().tolist()
    [[[1.0, 2.0, 1.0, 2.0, 1.0, 2.0]]]
    """
    short = [o - s for o, s in zip(spec.output_size, x.shape[2:], strict=True)]
    if any(short):
        x = da.pad(x, [(0, 0), (0, 0), *((0, m) for m in short)])
    if 0 in spec.output_shape or 0 in spec.input_size:
        return da.zeros((spec.batch, spec.in_channels, *spec.input_size), dtype=x.dtype)
    plan = Blocks.for_output(x.chunks, spec)
    y = _transposed(x.rechunk(plan.output_chunks), weight, plan, inner, precision)
    if bias is not None:
        y = y + constant(bias.reshape(-1, *(1,) * spec.ndim), "bias")
    return y


def _transposed(
    x: da.Array, weight: np.ndarray, plan: Blocks, inner: str, precision: str
) -> da.Array:
    """The transposed convolution of ``x`` (chunked as ``plan.output_chunks``): each
    chunk goes through the local backend's ``conv_transpose`` into a block of the padded
    input (its piece and halo), and the blocks are added where they overlap and folded
    through the padding's adjoint (:meth:`Blocks.scatter`)."""
    spec = plan.spec
    d = spec.ndim
    ind = string.ascii_letters[: 2 + d]
    w_ind = string.ascii_letters[2 + d : 2 * (2 + d)]
    block_chunks = plan.block_chunks
    args: list[Any] = [x, ind, plan.channel_index(), ind[1]]
    for i, sizes in enumerate(block_chunks[2:]):  # each block's input length
        args += [da.asarray(np.asarray(sizes), chunks=1), ind[2 + i]]
    args += [constant(weight, "weight"), w_ind]
    blocks = da.blockwise(
        _transpose_block,
        ind,
        *args,
        token="convkit-conv-transpose",
        align_arrays=False,
        concatenate=True,
        adjust_chunks=dict(zip(ind[1:], block_chunks[1:], strict=True)),
        dtype=x.dtype,
        meta=np.empty((0,) * (2 + d), dtype=x.dtype),
        group_size=spec.in_channels // spec.groups,
        group_outputs=spec.out_channels // spec.groups,
        stride=spec.stride,
        dilation=spec.dilation,
        inner=inner,
        precision=precision,
    )
    return plan.scatter(blocks)


def _local(
    inner: str,
    op: str,
    spec: ConvSpec,
    precision: str,
    call: Callable[[Any, list[Any], dict[str, Any]], Any],
    arrays: Sequence[np.ndarray | None],
    what: str,
    expected: tuple[int, ...],
) -> np.ndarray:
    """``call(backend, converted, options)`` on the local backend that computes a block
    of ``spec`` (``inner``, or for ``"auto"`` :func:`block_backend`'s choice for ``op``),
    with ``arrays`` converted to it (``None`` stays) and the call's ``precision`` in its
    options; the result as a NumPy array, checked as the core checks any backend's."""
    from convkit import checks
    from convkit.selection import parse_backend

    dtype = np.dtype(next(a for a in arrays if a is not None).dtype).name
    if inner == "auto":
        x_shape = (spec.batch, spec.in_channels, *spec.input_size)
        inner = block_backend(
            x_shape, spec.weight_shape, dtype, spec.stride, spec.dilation, spec.groups, op
        )
    name, options = parse_backend(inner, "inner")
    backend = checks.registered_backend(name)
    options = {**options, "precision": precision}
    converted = [None if a is None else backend.asarray(a, dtype, options) for a in arrays]
    y = np.asarray(backend.to_numpy(call(backend, converted, options)))
    _check_block(backend.name, what, y, expected, dtype)
    return y


def _group_rows(
    channel_index: np.ndarray, channels: int, group_size: int, group_outputs: int
) -> tuple[slice, int]:
    """The weight rows of the groups a block holds (its input channels start at
    ``channel_index[0]``, ``channels`` of them), and how many groups that is."""
    first = int(channel_index[0]) // group_size
    groups = channels // group_size
    return slice(first * group_outputs, (first + groups) * group_outputs), groups


def _weight_block(
    x: np.ndarray,
    grad_out: np.ndarray,
    channel_index: np.ndarray,
    weight: np.ndarray,
    *,
    group_size: int,
    group_outputs: int,
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    inner: str,
    precision: str,
) -> np.ndarray:
    """One block's part of the weight gradient, ``(1, O_b, 1, ..., Cg, *K)``, by the
    local backend's ``conv_vjp`` of the block (with its halo) and the outputs it made."""
    rows, groups = _group_rows(channel_index, x.shape[1], group_size, group_outputs)
    w = weight[rows]
    spec = ConvSpec.build(x.shape, w.shape, stride=stride, dilation=dilation, groups=groups)

    def weight_gradient(backend: Any, arrays: list[Any], options: dict[str, Any]) -> Any:
        return backend.conv_vjp(*arrays, spec, False, options)[1]

    arrays = [x, w, grad_out]
    gw = _local(
        inner, "conv_vjp", spec, precision, weight_gradient, arrays, "weight gradient", w.shape
    )
    return gw.reshape(1, gw.shape[0], *(1,) * spec.ndim, *gw.shape[1:])


def _transpose_block(
    x: np.ndarray,
    channel_index: np.ndarray,
    *args: np.ndarray,
    group_size: int,
    group_outputs: int,
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    inner: str,
    precision: str,
) -> np.ndarray:
    """One chunk of a transposed convolution's input: the gradient of the block of the
    padded forward input (its length per axis in ``args``, then the weights) whose
    valid ``conv`` gave the chunk ``x``."""
    *sizes, weight = args
    rows, groups = _group_rows(
        channel_index, x.shape[1] // group_outputs * group_size, group_size, group_outputs
    )
    w = weight[rows]
    shape = (x.shape[0], groups * group_size, *(int(s[0]) for s in sizes))
    spec = ConvSpec.build(shape, w.shape, stride=stride, dilation=dilation, groups=groups)

    def transpose(backend: Any, arrays: list[Any], options: dict[str, Any]) -> Any:
        return backend.conv_transpose(*arrays, None, spec, options)

    return _local(inner, "conv_vjp", spec, precision, transpose, [x, w], "transposed block", shape)


def _check_block(
    name: str, what: str, a: np.ndarray | None, shape: tuple[int, ...], dtype: str
) -> None:
    from convkit.dispatch import BackendError

    if a is None or a.shape != tuple(shape) or a.dtype != np.dtype(dtype):
        got = "nothing" if a is None else f"shape {a.shape} and dtype {a.dtype}"
        raise BackendError(
            f"backend {name!r} returned a {what} with {got}; expected shape {tuple(shape)} "
            f"and dtype {dtype}"
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
    precision: str,
) -> np.ndarray:
    """One block: a valid ``conv`` of the groups the block holds, computed directly by
    the local backend ``inner`` (``name`` or ``name:device``, checked when the graph was
    built; ``"auto"``: :func:`block_backend`). No selection or planning runs per block;
    the result is checked as the core checks any backend's."""
    rows, groups = _group_rows(channel_index, x.shape[1], group_size, group_outputs)
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

    def forward(backend: Any, arrays: list[Any], options: dict[str, Any]) -> Any:
        return backend.conv(*arrays, spec, options)

    return _local(inner, "conv", spec, precision, forward, [x, w, b], "block", spec.output_shape)


@functools.cache
def block_backend(
    shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    dtype: str,
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
    op: str = "conv",
) -> str:
    """The backend ``auto`` picks for ``op`` (``"conv"`` or ``"conv_vjp"``) on a block
    of this shape on this worker, planned once per shape in each worker process (the
    workers' libraries decide, not the client's)."""
    from convkit import ops

    choice = ops.explain(  # "auto" explicitly: never the ambient selection
        shape,
        w_shape,
        op=op,
        dtype=dtype,
        stride=stride,
        dilation=dilation,
        groups=groups,
        backend="auto",
    )
    return choice.backend
