"""``conv``'s derivatives from its forward operation, on any array-API namespace: the
input gradient is a transposed convolution folded back through the padding's adjoint
(:func:`convkit.padding.pad_adjoint`), the weight gradient a correlation of the padded
input with the output gradient (:func:`conv_vjp`, :func:`conv_transpose`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from convkit.algorithms.direct import ConvFn, cheapest, dilate
from convkit.costs import CostModel
from convkit.padding import array_device as _device
from convkit.padding import pad_adjoint
from convkit.spec import ConvSpec


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
    return conv(gyd, wt, input_grad_spec(spec, tuple(grad_out.shape[2:])))


def input_grad_spec(spec: ConvSpec, grad_size: tuple[int, ...] | None = None) -> ConvSpec:
    """The ``conv`` :func:`conv_input_grad` runs for the forward call ``spec`` (with an
    output gradient of ``grad_size`` positions, by default the forward output's).

    >>> input_grad_spec(ConvSpec.build((1, 2, 8), (3, 2, 3), stride=2)).output_size
    (8,)
    """
    size = spec.output_size if grad_size is None else grad_size
    pads = []
    dilated = []
    for p, o, st, e in zip(spec.padded_size, size, spec.stride, spec.kernel_extent, strict=True):
        unreached = p - ((o - 1) * st + e)
        pads.append((e - 1, e - 1 + unreached))
        dilated.append((o - 1) * st + 1 if o else 0)
    og = spec.out_channels // spec.groups
    return ConvSpec.build(
        (spec.batch, spec.out_channels, *dilated),
        (spec.in_channels, og, *spec.kernel_size),
        padding=pads,
        dilation=spec.dilation,
        groups=spec.groups,
    )


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
    dw = conv(xs, ws, weight_grad_spec(spec))  # (Cg, C_out, *K') with K' >= K
    dw = dw[(slice(None), slice(None), *(slice(0, k) for k in spec.kernel_size))]
    return xp.permute_dims(dw, (1, 0, *range(2, 2 + d)))


def weight_grad_spec(spec: ConvSpec) -> ConvSpec:
    """The ``conv`` :func:`conv_weight_grad` runs for the forward call ``spec`` (batch
    ``N > 0``): the padded input's channels of a group as the batch, (group, sample)
    pairs as channels, ``grad_out`` as the kernel.

    >>> weight_grad_spec(ConvSpec.build((4, 2, 9), (3, 2, 3))).kernel_size
    (7,)
    """
    g = spec.groups
    cg, og = spec.in_channels // g, spec.out_channels // g
    return ConvSpec.build(
        (cg, g * spec.batch, *spec.padded_size),
        (g * og, spec.batch, *spec.output_size),
        stride=spec.dilation,
        dilation=spec.stride,
        groups=g,
    )


@functools.lru_cache(maxsize=1024)
def generic_seconds(
    model: CostModel, spec: ConvSpec, dtype: str, methods: tuple[str, ...] = ("direct", "fft")
) -> float:
    """Estimated seconds of :func:`conv_vjp` for the forward call ``spec``: its two
    convolutions (:func:`input_grad_spec`, :func:`weight_grad_spec`), each by its
    cheapest method among ``methods``.

    >>> spec = ConvSpec.build((1, 2, 256, 192), (3, 2, 5, 5), padding=2)
    >>> generic_seconds(CostModel(), spec, "float32") > 0
    True
    """
    seconds = model.call_overhead + cheapest(model, input_grad_spec(spec), dtype, methods)[1]
    if spec.batch:
        seconds += cheapest(model, weight_grad_spec(spec), dtype, methods)[1]
    return seconds


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


def conv_transpose(
    xp: Any, conv: ConvFn, x: Any, weight: Any, bias: Any | None, spec: ConvSpec
) -> Any:
    """The adjoint of ``conv`` with respect to its input: ``spec`` describes the forward
    ``conv`` whose output has ``x``'s shape; returns its input's shape."""
    y = unpad_adjoint(xp, conv_input_grad(xp, conv, x, weight, spec), spec)
    if bias is not None:
        y = y + xp.reshape(bias, (-1, *(1,) * spec.ndim))
    return y
