"""The direct methods, on any array-API namespace: ``convolve`` as one grouped ``conv``
call of the backend (:func:`direct_convolve`), and :func:`conv_fn`, the backend's
``conv`` as the other algorithms call it (each call by its cheaper method, with the
dilation and groups the backend does not declare rewritten)."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from convkit.algorithms import winograd
from convkit.algorithms.protocol import ArrayBackend
from convkit.costs import CostModel
from convkit.dtypes import TOLERANCE
from convkit.padding import array_device as _device
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec

ConvFn = Callable[[Any, Any, ConvSpec], Any]
"""``conv(x, w, spec)``: a backend's forward layer operation, without bias."""


def isdtype(xp: Any, x: Any, kind: str) -> bool:
    return bool(xp.isdtype(x.dtype, kind))


def reverse_conj(xp: Any, a: Any, axes: Sequence[int]) -> Any:
    """``a`` reversed along ``axes`` and conjugated (what ``correlate`` applies to in2)."""
    if axes:
        a = xp.flip(a, axis=tuple(axes))
    return xp.conj(a) if isdtype(xp, a, "complex floating") else a


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
        w = w[(*(slice(None),) * ax, slice(0, (k - 1) * dl + 1), ...)]
    return w


def conv_fn(
    backend: ArrayBackend, options: Mapping[str, Any], methods: Sequence[str] | None = None
) -> ConvFn:
    """``backend``'s ``conv`` without bias, each call by its cheaper method of
    ``methods`` (default: every method the backend declares) by :func:`cost_model`, for
    the algorithms built on it. Dilation and groups the backend does not declare are
    rewritten: a dilated kernel becomes a larger one with zeros between the taps, and a
    grouped call one call per group."""
    caps = backend.capabilities
    allowed = tuple(caps.conv_methods if methods is None else methods)
    xp = backend.namespace()
    model = cost_model(backend, options)

    def conv(x: Any, w: Any, spec: ConvSpec) -> Any:
        if not caps.dilation and any(d > 1 for d in spec.dilation):
            w = dilate(xp, w, spec.dilation)
            spec = dataclasses.replace(
                spec, kernel_size=spec.kernel_extent, dilation=(1,) * spec.ndim
            )
        if not caps.groups and spec.groups > 1:
            cg, og = spec.in_channels // spec.groups, spec.out_channels // spec.groups
            one = dataclasses.replace(spec, in_channels=cg, out_channels=og, groups=1)
            parts = [
                conv(x[:, g * cg : (g + 1) * cg, ...], w[g * og : (g + 1) * og, ...], one)
                for g in range(spec.groups)
            ]
            return xp.concat(parts, axis=1)
        method = cheapest(model, spec, backend.dtype_name(x), allowed)[0]
        return backend.conv(x, w, None, dataclasses.replace(spec, method=method), options)

    return conv


def method_costs(
    model: CostModel,
    spec: ConvSpec,
    dtype: str,
    methods: Sequence[str] = ("direct", "fft"),
    requested: str = "auto",
) -> dict[str, float]:
    """Estimated seconds of each method of ``methods`` for a ``conv`` call in ``dtype``.
    Winograd appears where it applies (:func:`convkit.algorithms.winograd.applies`);
    unless ``requested``, it is ruled out (``inf``) where its rounding error in
    ``dtype`` could exceed the conformance tolerance
    (:func:`convkit.algorithms.winograd.tile_for`).

    >>> spec = ConvSpec.build((1, 4, 64, 64), (4, 4, 3, 3))
    >>> sorted(method_costs(CostModel(), spec, "float64", ("direct", "fft", "winograd")))
    ['direct', 'fft', 'winograd']
    """
    costs = {"direct": model.conv_direct(spec)}
    if "fft" in methods:
        costs["fft"] = model.conv_fft(spec)
    if "winograd" in methods and winograd.applies(spec) and dtype in TOLERANCE:
        tile = winograd_tile(dtype, spec)
        if tile is not None:
            costs["winograd"] = model.conv_winograd(spec, tile)
        elif requested == "winograd":
            costs["winograd"] = model.conv_winograd(spec, min(winograd.TILES))
        else:
            costs["winograd"] = math.inf
    return costs


@functools.lru_cache(maxsize=1024)
def cheapest(
    model: CostModel, spec: ConvSpec, dtype: str, methods: tuple[str, ...] = ("direct", "fft")
) -> tuple[str, float]:
    """The method of ``methods`` estimated fastest for a ``conv`` call, and its
    estimate (:func:`method_costs`); remembered, since the algorithms ask again for
    every call of the same shapes.

    >>> cheapest(CostModel(), ConvSpec.build((1, 1, 4096, 4096), (1, 1, 63, 63)), "float32")[0]
    'fft'
    """
    costs = method_costs(model, spec, dtype, methods)
    best = min(costs, key=costs.__getitem__)
    return best, costs[best]


def winograd_tile(dtype: str, spec: ConvSpec) -> int | None:
    """The largest Winograd tile whose measured rounding error in ``dtype`` for
    ``spec``'s channels per group (:func:`convkit.algorithms.winograd.error_bound`)
    stays within the conformance tolerance :data:`convkit.dtypes.TOLERANCE`; ``None``
    if none does.

    >>> winograd_tile("float32", ConvSpec.build((1, 64, 8, 8), (64, 64, 3, 3)))
    4
    >>> winograd_tile("float32", ConvSpec.build((1, 2048, 8, 8), (8, 2048, 3, 3)))
    2
    """
    channels = spec.in_channels // spec.groups
    tol = TOLERANCE[dtype]
    fits = [
        t
        for t in winograd.TILES
        if winograd.error_bound(t, dtype, spec.ndim, max(channels, 1)) <= tol
    ]
    return max(fits) if fits else None


def cost_model(backend: ArrayBackend, options: Mapping[str, Any]) -> CostModel:
    """The cost model a backend's internal choices use: the one the core planned the
    call with (this machine's calibrated rates, on the call's device), handed over as
    ``options.cost_model``, else the backend's built-in one."""
    model = getattr(options, "cost_model", None)
    return model if isinstance(model, CostModel) else backend.cost_model(options)
