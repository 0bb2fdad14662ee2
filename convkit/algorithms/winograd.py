"""Winograd's minimal filtering for 3-tap kernels, on any array-API namespace: the conv
layer operation for kernels of size 3 (every spatial dimension), stride 1 and dilation 1,
by ``F(m, 3)`` with ``m`` outputs per tile and dimension (:func:`winograd_conv`).

Each dimension is cut into tiles of ``m`` outputs, read from ``m + 2`` inputs. With
``B^T`` (input transform), ``G`` (kernel transform) and ``A^T`` (output transform) from
the Toom-Cook construction at ``m + 1`` finite points and infinity
(:func:`winograd_matrices`), one tile's output is ``A^T [(G w) * (B^T d)]`` per
dimension; in ``d`` dimensions the transforms are the Kronecker powers of the 1-d ones,
so each transform is one matrix product over all tiles and channels, and the channel sum
is a batched matrix product per transformed position and group. Tiles are gathered and
written back with strided slices, a chunk of a few MiB at a time.

``F(2, 3)`` is within a few times the error of direct summation; ``F(4, 3)`` does fewer
operations and loses about a digit in float32 (:data:`ERROR_BOUND`, :func:`error_bound`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, Final

import numpy as np

from convkit.padding import array_device as _device
from convkit.padding import pad as _pad
from convkit.spec import ConvSpec

Matrix = list[list[Fraction]]

POINTS: Final[dict[int, tuple[Fraction, ...]]] = {
    2: (Fraction(0), Fraction(1), Fraction(-1)),
    4: (Fraction(0), Fraction(1), Fraction(-1), Fraction(1, 2), Fraction(-2)),
}
"""The finite interpolation points per tile size ``m`` (infinity is always the last). For
``F(4, 3)``, ``0, ±1, 1/2, -2`` had about a third of the float32 error of ``0, ±1, ±1/2``
or ``0, ±1, ±2`` and less than the other sets tried (``benchmarks/winograd_error.py``)."""

ERROR_BOUND: Final[dict[tuple[int, str, int], float]] = {
    (2, "float32", 1): 2e-6,
    (2, "float32", 2): 2e-6,
    (4, "float32", 1): 5e-6,
    (4, "float32", 2): 1e-5,
    (2, "float64", 1): 4e-15,
    (2, "float64", 2): 4e-15,
    (4, "float64", 1): 1e-14,
    (4, "float64", 2): 3e-14,
}
"""``(tile, dtype, ndim)`` -> a bound on ``max|err| / max|y|`` against the exact result,
for up to :data:`BOUND_CHANNELS` input channels per group: the worst measured over 20
random normal draws per channel count (1 to 512), rounded up. The worst seen at 512
channels: F(2,3) 1.0e-6 (float32), 2.3e-15 (float64); F(4,3) 3.1e-6 (1-d) and 7.4e-6
(2-d) in float32, 1.4e-14 in float64 (``benchmarks/winograd_error.py``). The error grows
about as the square root of the channel sum's length."""

BOUND_CHANNELS: Final = 512

TILES: Final = (2, 4)

WORKSPACE_BYTES: Final = 4 << 20
"""The transformed tiles of one chunk take about this many bytes (the tiles, their
products and the output transform each take a buffer of that order)."""


def _solve_transpose(v: Matrix) -> Matrix:
    """``V^{-T}`` of a square matrix of fractions, by Gauss-Jordan elimination."""
    n = len(v)
    a = [[v[j][i] for j in range(n)] + [Fraction(int(i == k)) for k in range(n)] for i in range(n)]
    for col in range(n):
        piv = next(r for r in range(col, n) if a[r][col] != 0)
        a[col], a[piv] = a[piv], a[col]
        a[col] = [e / a[col][col] for e in a[col]]
        for r in range(n):
            if r != col and a[r][col] != 0:
                f = a[r][col]
                a[r] = [e - f * p for e, p in zip(a[r], a[col], strict=True)]
    return [row[n:] for row in a]


def _vandermonde(points: Sequence[Fraction], cols: int) -> Matrix:
    """Rows ``(p^0 .. p^(cols-1))`` per finite point, then ``e_(cols-1)`` for infinity."""
    rows = [[p**i for i in range(cols)] for p in points]
    return [*rows, [Fraction(int(i == cols - 1)) for i in range(cols)]]


@functools.lru_cache(maxsize=16)
def winograd_matrices(
    tile: int, points: tuple[Fraction, ...] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The float64 transforms ``(B^T, G, A^T)`` of ``F(tile, 3)`` at ``points`` (the
    ``tile + 1`` finite points; default :data:`POINTS`), infinity last.

    They satisfy ``A^T [(G w) * (B^T d)] = (sum_k w[k] d[i + k])_i`` for any kernel ``w``
    of 3 and tile ``d`` of ``tile + 2`` samples. Computed exactly (fractions); each row of
    ``B^T`` is scaled to small integers and the matching row of ``G`` divided to match.

    >>> bt, g, at = winograd_matrices(2)
    >>> d, w = np.arange(4.0), np.array([1.0, 2.0, -1.0])
    >>> (at @ ((g @ w) * (bt @ d))).tolist()
    [0.0, 2.0]
    """
    if tile < 1:
        raise ValueError(f"tile={tile!r} must be a positive number of outputs per tile")
    pts = tuple(Fraction(p) for p in (POINTS.get(tile) if points is None else points) or ())
    if len(pts) != tile + 1 or len(set(pts)) != len(pts):
        raise ValueError(
            f"points={points!r} must be {tile + 1} distinct finite points for tile={tile}"
        )
    alpha = tile + 2
    bt = _solve_transpose(_vandermonde(pts, alpha))  # B^T = V^{-T}
    g = _vandermonde(pts, 3)
    for j, row in enumerate(bt):
        scale = Fraction(math.lcm(*(e.denominator for e in row)), 1)
        scale /= math.gcd(*(e.numerator for e in row)) or 1
        bt[j] = [e * scale for e in row]
        g[j] = [e / scale for e in g[j]]
    at = [list(col) for col in zip(*_vandermonde(pts, tile), strict=True)]  # A^T = V_h^T
    out = [np.array([[float(e) for e in row] for row in m]) for m in (bt, g, at)]
    for m in out:
        m.setflags(write=False)
    return out[0], out[1], out[2]


@functools.lru_cache(maxsize=16)
def _kron_matrices(
    tile: int, ndim: int, points: tuple[Fraction, ...] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``ndim``-fold Kronecker powers of :func:`winograd_matrices`."""
    out = []
    for m in winograd_matrices(tile, points):
        k = np.ones((1, 1))
        for _ in range(ndim):
            k = np.kron(k, m)
        out.append(np.ascontiguousarray(k))
    return out[0], out[1], out[2]


def applies(spec: ConvSpec) -> bool:
    """Whether :func:`winograd_conv` computes ``spec`` (and is worth it): every kernel
    size 3, stride 1, dilation 1, and 1 or 2 spatial dimensions. Any padding, padding
    mode and groups. :func:`winograd_conv` also computes 3-d convolutions, but there its
    Kronecker transforms (216 x 216 for ``F(4, 3)``) cost more than they save.

    >>> applies(ConvSpec.build((1, 4, 8, 8), (4, 4, 3, 3), padding=1))
    True
    >>> applies(ConvSpec.build((1, 4, 8, 8), (4, 4, 3, 3), stride=2))
    False
    """
    return (
        spec.ndim in (1, 2)
        and all(k == 3 for k in spec.kernel_size)
        and all(s == 1 for s in spec.stride)
        and all(d == 1 for d in spec.dilation)
    )


def error_bound(tile: int, dtype: str, ndim: int = 2, channels: int = BOUND_CHANNELS) -> float:
    """The bound on ``max|err| / max|y|`` of :func:`winograd_conv` with ``F(tile, 3)``
    in ``dtype`` (``"float32"``, ``"float64"``; complex as their real parts) over
    ``ndim`` spatial dimensions with ``channels`` input channels per group: the measured
    :data:`ERROR_BOUND` up to :data:`BOUND_CHANNELS`, grown as ``sqrt(channels / 512)``
    beyond (the rate measured from 64 to 512 channels).

    >>> error_bound(2, "float32") <= 1e-5 < error_bound(4, "float32", channels=2048)
    True
    """
    name = {"complex64": "float32", "complex128": "float64"}.get(str(dtype), str(dtype))
    key = (tile, name, ndim)
    if key not in ERROR_BOUND:
        raise ValueError(
            f"no measured error bound for tile={tile!r}, dtype={dtype!r}, ndim={ndim!r}; "
            f"expected tile in {TILES}, dtype float32/float64, ndim 1 or 2"
        )
    if channels < 1:
        raise ValueError(f"channels={channels!r} must be a positive channel count")
    return ERROR_BOUND[key] * math.sqrt(max(1.0, channels / BOUND_CHANNELS))


def _check(x: Any, weight: Any, spec: ConvSpec, tile: int) -> None:
    if tile not in TILES:
        raise ValueError(f"tile={tile!r} is not supported; expected one of {TILES}")
    if any(k != 3 for k in spec.kernel_size) or any(s != 1 for s in spec.stride):
        raise ValueError(
            f"winograd_conv needs kernel_size 3 and stride 1 in every dimension; got "
            f"kernel_size={spec.kernel_size}, stride={spec.stride}"
        )
    if any(d != 1 for d in spec.dilation):
        raise ValueError(f"winograd_conv needs dilation 1; got dilation={spec.dilation}")
    if tuple(x.shape) != (spec.batch, spec.in_channels, *spec.input_size):
        raise ValueError(f"x.shape={tuple(x.shape)} does not match the spec's input shape")
    if tuple(weight.shape) != spec.weight_shape:
        raise ValueError(f"weight.shape={tuple(weight.shape)} != expected {spec.weight_shape}")


def _padded(
    xp: Any, x: Any, spec: ConvSpec, tiles: Sequence[int], tile: int, pad: Callable | None
) -> Any:
    """``x`` padded as ``spec`` says, plus zeros on the high side up to ``tiles * tile + 2``."""
    extra = [t * tile + 2 - p for t, p in zip(tiles, spec.padded_size, strict=True)]
    if pad is None and spec.padding_mode == "zeros":
        widths = [(lo, hi + e) for (lo, hi), e in zip(spec.padding, extra, strict=True)]
        return _pad(xp, x, widths, "zeros")
    xpad = _pad(xp, x, spec.padding, spec.padding_mode) if pad is None else pad(x)
    return _pad(xp, xpad, [(0, e) for e in extra], "zeros")


def _weight_transform(xp: Any, weight: Any, gg: np.ndarray, spec: ConvSpec, dtype: Any) -> Any:
    """``U = kron(G) w`` as ``(alpha^d, groups, Og, Cg)``, in float64 then ``dtype``."""
    g = spec.groups
    og, cg = spec.out_channels // g, spec.in_channels // g
    wide = xp.complex128 if xp.isdtype(weight.dtype, "complex floating") else xp.float64
    w = xp.reshape(xp.astype(weight, wide), (spec.out_channels * cg, gg.shape[1]))
    u = xp.matmul(xp.asarray(gg, dtype=wide, device=_device(weight)), xp.permute_dims(w, (1, 0)))
    return xp.astype(xp.reshape(u, (gg.shape[0], g, og, cg)), dtype)


def _plan(
    spec: ConvSpec, tiles: Sequence[int], alpha: int, itemsize: int, budget: int
) -> tuple[int, int]:
    """``(images, rows)`` per chunk: the most tiles whose transformed tiles fit ``budget``
    bytes, whole images when one fits, else rows of tiles (first spatial axis) of one."""
    per_tile = alpha ** len(tiles) * max(spec.in_channels, spec.out_channels) * itemsize
    fit = max(1, budget // per_tile)
    per_image = math.prod(tiles)
    if per_image <= fit:
        return min(spec.batch, fit // per_image), tiles[0]
    return 1, max(1, fit // math.prod(tiles[1:]))


def _chunk(
    xp: Any, xc: Any, bb: Any, u: Any, aa: Any, bias: Any | None, tiles: Sequence[int], tile: int
) -> Any:
    """The output tiles of one chunk ``xc`` ``(n, C, *padded)`` covering ``tiles``, by
    the transforms ``bb``, ``aa``, the transformed kernel ``u`` and ``bias`` ``(C_out,
    1)``: ``(tile^d, C_out, n, *tiles)``, one slab per position in the tile."""
    d, n, c = len(tiles), xc.shape[0], xc.shape[1]
    a, g, og, cg = u.shape
    order = (1, 0, *range(2, 2 + d))  # (C, n, *tiles): channels outermost
    views = []
    for pos in np.ndindex(*(tile + 2,) * d):
        sl = tuple(slice(p, p + tile * (t - 1) + 1, tile) for p, t in zip(pos, tiles, strict=True))
        views.append(xp.permute_dims(xc[(slice(None), slice(None), *sl)], order))
    count = n * math.prod(tiles)
    dd = xp.reshape(xp.stack(views, axis=0), (a, c * count))
    v = xp.reshape(xp.matmul(bb, dd), (a, g, cg, count))
    m = xp.matmul(u, v) if cg > 1 else u * v  # (A, G, Og, T); depthwise: a broadcast product
    y = xp.reshape(xp.matmul(aa, xp.reshape(m, (a, g * og * count))), (tile**d, g * og, count))
    if bias is not None:
        y = y + bias
    return xp.reshape(y, (tile**d, g * og, n, *tiles))


def _scatter(xp: Any, out: Any, y: Any, n0: int, row0: int, tile: int) -> None:
    """Write the slabs ``y`` of :func:`_chunk` into ``out`` from image ``n0`` and output
    row ``row0``: in one copy where the chunk's tiles lie inside the output, else each
    position ``p`` of the tile to ``out[..., row0 + p :: tile, ...]``, cropped."""
    d = y.ndim - 3
    n, tiles = y.shape[2], y.shape[3:]
    size = tuple(out.shape[2:])
    offset = (row0, *(0,) * (d - 1))
    if all(o + t * tile <= s for o, t, s in zip(offset, tiles, size, strict=True)):
        # no crop: one copy, into the output's rows viewed as (tiles, positions) pairs
        rows = (slice(o, o + t * tile) for o, t in zip(offset, tiles, strict=True))
        split = (n, y.shape[1], *(k for t in tiles for k in (t, tile)))
        dest = xp.reshape(out[(slice(n0, n0 + n), slice(None), *rows)], split, copy=False)
        slabs = xp.reshape(y, (*(tile,) * d, y.shape[1], n, *tiles))
        perm = (d + 1, d, *(ax for i in range(d) for ax in (d + 2 + i, i)))
        dest[...] = xp.permute_dims(slabs, perm)
        return
    for k, pos in enumerate(np.ndindex(*(tile,) * d)):
        starts = [o + p for o, p in zip(offset, pos, strict=True)]
        counts = [
            min(t, -(-(s_out - s) // tile)) for t, s, s_out in zip(tiles, starts, size, strict=True)
        ]
        if min(counts) <= 0:
            continue
        src = y[(k, slice(None), slice(None), *(slice(0, c) for c in counts))]
        dest = tuple(
            slice(s, s + tile * (c - 1) + 1, tile) for s, c in zip(starts, counts, strict=True)
        )
        out[(slice(n0, n0 + n), slice(None), *dest)] = xp.permute_dims(
            src, (1, 0, *range(2, 2 + d))
        )


def winograd_conv(
    xp: Any,
    x: Any,
    weight: Any,
    bias: Any | None,
    spec: ConvSpec,
    *,
    tile: int = 4,
    pad: Callable[[Any], Any] | None = None,
    points: tuple[Fraction, ...] | None = None,
    workspace_bytes: int = WORKSPACE_BYTES,
) -> Any:
    """The layer operation ``y[n, o, i] = b[o] + sum_{c, a} w[o, c, a] xpad[n, g*Cg + c,
    i + a]`` for 3-tap kernels, stride 1, dilation 1, by Winograd's ``F(tile, 3)``.

    ``x`` is the *unpadded* input ``(N, C_in, *S)``; ``pad(x)`` pads it as ``spec`` says
    (default: :func:`convkit.padding.pad` in ``spec.padding_mode``). Zeros are added on
    the high side so whole tiles cover the output. The kernel transform is computed in
    float64 and rounded once to ``x.dtype``. Tiles are processed in chunks (whole images,
    else rows of tiles of one) whose transformed tiles take about ``workspace_bytes``;
    each chunk's tiles are gathered with one strided slice per position in the input
    tile and written to the output with one per position in the output tile (item
    assignment: arrays must be mutable, as NumPy's and torch's are). ``points``: the
    finite interpolation points (default :data:`POINTS`). Floating and complex dtypes
    only.

    >>> x = np.arange(10.0).reshape(1, 1, 10)
    >>> spec = ConvSpec.build(x.shape, (1, 1, 3), padding=1)
    >>> winograd_conv(np, x, np.ones((1, 1, 3)), None, spec).round(9).tolist()
    [[[1.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 21.0, 24.0, 17.0]]]
    """
    _check(x, weight, spec, tile)
    if not xp.isdtype(x.dtype, ("real floating", "complex floating")):
        raise TypeError(f"winograd_conv computes in floating dtypes; got x.dtype={x.dtype}")
    dev = _device(x)
    if spec.batch == 0:
        return xp.zeros(spec.output_shape, dtype=x.dtype, device=dev)
    d = spec.ndim
    bb, gg, aa = _kron_matrices(tile, d, points)
    bb, aa = (xp.asarray(m, dtype=x.dtype, device=dev) for m in (bb, aa))
    u = _weight_transform(xp, weight, gg, spec, x.dtype)
    tiles = [-(-o // tile) for o in spec.output_size]
    xpad = _padded(xp, x, spec, tiles, tile, pad)
    itemsize = {xp.float64: 8, xp.complex64: 8, xp.complex128: 16}.get(x.dtype, 4)
    images, rows = _plan(spec, tiles, tile + 2, itemsize, workspace_bytes)
    bias_c = None if bias is None else xp.reshape(bias, (-1, 1))
    out = xp.empty(spec.output_shape, dtype=x.dtype, device=dev)
    for n0 in range(0, spec.batch, images):
        for r0 in range(0, tiles[0], rows):
            rt = min(rows, tiles[0] - r0)
            xc = xpad[n0 : min(spec.batch, n0 + images), :, r0 * tile : (r0 + rt) * tile + 2, ...]
            y = _chunk(xp, xc, bb, u, aa, bias_c, [rt, *tiles[1:]], tile)
            _scatter(xp, out, y, n0, r0 * tile, tile)
    return out
