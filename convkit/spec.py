"""One normalised description of a convolution call, and its shape arithmetic.

:class:`ConvSpec` is what the core hands a backend: every per-dimension option as a
``d``-tuple, padding as explicit ``(low, high)`` pairs, the padding mode by its
canonical name, and the shapes involved. All checking of user arguments happens while
building it, so a backend never sees a malformed call.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from convkit.padding import canonical_padding_mode

CONV_METHODS: Final = ("direct", "fft", "winograd")
"""The methods of ``conv`` (``"auto"`` picks one of them)."""


@dataclass(frozen=True)
class ConvSpec:
    """A fully normalised ``conv`` call on a batched input ``(N, C_in, *S)``.

    >>> spec = ConvSpec.build((8, 3, 32, 32), (16, 3, 3, 3), padding="same", stride=2)
    >>> spec.padding, spec.output_shape
    (((0, 1), (0, 1)), (8, 16, 16, 16))
    """

    batch: int
    in_channels: int
    out_channels: int
    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    padding_mode: str
    groups: int
    method: str = "direct"

    @property
    def ndim(self) -> int:
        """The number of spatial dimensions ``d``."""
        return len(self.input_size)

    @functools.cached_property
    def kernel_extent(self) -> tuple[int, ...]:
        """The span of the dilated kernel, ``(K - 1) * dilation + 1`` per dimension."""
        return tuple(
            (k - 1) * dl + 1 for k, dl in zip(self.kernel_size, self.dilation, strict=True)
        )

    @functools.cached_property
    def padded_size(self) -> tuple[int, ...]:
        """Spatial size after padding."""
        return tuple(s + lo + hi for s, (lo, hi) in zip(self.input_size, self.padding, strict=True))

    @functools.cached_property
    def output_size(self) -> tuple[int, ...]:
        """Spatial size of the output, ``(P - E) // stride + 1`` per dimension."""
        return tuple(
            (p - e) // st + 1
            for p, e, st in zip(self.padded_size, self.kernel_extent, self.stride, strict=True)
        )

    @functools.cached_property
    def output_shape(self) -> tuple[int, ...]:
        """The full output shape ``(N, C_out, *O)``."""
        return (self.batch, self.out_channels, *self.output_size)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """The weight shape ``(C_out, C_in // groups, *K)``."""
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    @property
    def has_padding(self) -> bool:
        """Whether any side of any dimension is padded."""
        return any(lo or hi for lo, hi in self.padding)

    @classmethod
    def build(
        cls,
        x_shape: Sequence[int],
        weight_shape: Sequence[int],
        bias_shape: Sequence[int] | None = None,
        *,
        stride: int | Sequence[int] = 1,
        padding: int | str | Sequence[int] | Sequence[Sequence[int]] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        method: str = "direct",
    ) -> ConvSpec:
        """Check the arguments of a ``conv`` call and normalise them.

        ``x_shape`` is ``(N, C_in, *S)``, or ``(C_in, *S)`` for an unbatched input (then
        ``batch`` is 1).

        Raises ``ValueError`` or ``TypeError`` naming the argument, the value seen and
        what was expected.

        >>> ConvSpec.build((1, 2, 10), (4, 2, 3), dilation=2).output_size
        (6,)
        """
        x_shape = tuple(int(s) for s in x_shape)
        w_shape = tuple(int(s) for s in weight_shape)
        if len(w_shape) < 3:
            raise ValueError(
                f"weight must have shape (C_out, C_in // groups, *kernel_size) with at "
                f"least one spatial dimension; got weight.shape={w_shape}"
            )
        d = len(w_shape) - 2
        if len(x_shape) not in (d + 1, d + 2):
            raise ValueError(
                f"x has {len(x_shape)} dimensions but weight.shape={w_shape} has {d} "
                f"spatial dimension(s), so x must be (N, C_in, *S) with {d + 2} "
                f"dimensions or unbatched (C_in, *S) with {d + 1}; got x.shape={x_shape}"
            )
        groups = positive_int("groups", groups)
        n, c_in, *size = x_shape if len(x_shape) == d + 2 else (1, *x_shape)
        c_out, c_in_g, *kernel = w_shape
        if c_in < 1 or c_out < 1:
            raise ValueError(
                f"channel counts must be >= 1; got C_in={c_in} (x.shape={x_shape}) and "
                f"C_out={c_out} (weight.shape={w_shape})"
            )
        if c_in % groups or c_out % groups:
            raise ValueError(f"groups={groups} must divide both C_in={c_in} and C_out={c_out}")
        if c_in_g * groups != c_in:
            raise ValueError(
                f"weight.shape={w_shape} expects C_in // groups = {c_in_g} input "
                f"channels per group, but x.shape={x_shape} has C_in={c_in} with "
                f"groups={groups} (C_in // groups = {c_in // groups})"
            )
        if any(s < 1 for s in size):
            raise ValueError(f"x must have spatial sizes >= 1; got x.shape={x_shape}")
        if any(k < 1 for k in kernel):
            raise ValueError(f"weight must have kernel sizes >= 1; got weight.shape={w_shape}")
        if bias_shape is not None and tuple(bias_shape) != (c_out,):
            raise ValueError(
                f"bias must have shape (C_out,) = ({c_out},); got bias.shape={tuple(bias_shape)}"
            )
        stride_t = per_dim("stride", stride, d)
        dilation_t = per_dim("dilation", dilation, d)
        mode = canonical_padding_mode(padding_mode)
        if method not in CONV_METHODS:
            raise ValueError(
                f"method={method!r} is not a method; expected one of 'auto', "
                f"{', '.join(repr(m) for m in CONV_METHODS)}"
            )
        pads = _padding(padding, tuple(size), tuple(kernel), stride_t, dilation_t)
        spec = cls(
            batch=n,
            in_channels=c_in,
            out_channels=c_out,
            input_size=tuple(size),
            kernel_size=tuple(kernel),
            stride=stride_t,
            dilation=dilation_t,
            padding=pads,
            padding_mode=mode,
            groups=groups,
            method=method,
        )
        for i, (p, e) in enumerate(zip(spec.padded_size, spec.kernel_extent, strict=True)):
            if e > p:
                raise ValueError(
                    f"the kernel is larger than the padded input in spatial dimension "
                    f"{i}: kernel extent (K - 1) * dilation + 1 = {e} exceeds padded "
                    f"size {p} (x.shape={x_shape}, weight.shape={w_shape}, padding="
                    f"{spec.padding}); the output would be empty"
                )
        return spec


def transpose_spec(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None = None,
    *,
    stride: object = 1,
    padding: object = 0,
    output_padding: object = 0,
    dilation: object = 1,
    groups: object = 1,
) -> ConvSpec:
    """The forward :class:`ConvSpec` whose adjoint a ``conv_transpose`` of an input of
    ``x_shape`` (``(N, C_in, *S)`` or unbatched ``(C_in, *S)``) with a weight of
    ``w_shape`` (``(C_in, C_out // groups, *K)``) computes: its input is the
    transpose's (batched) output. Every error names the argument.

    >>> spec = transpose_spec((1, 1, 3), (1, 1, 2), stride=2)
    >>> spec.input_size, spec.output_size
    ((6,), (3,))
    """
    if len(w_shape) < 3:
        raise ValueError(
            f"weight must have shape (C_in, C_out // groups, *kernel_size); got "
            f"weight.shape={w_shape}"
        )
    d = len(w_shape) - 2
    given = x_shape
    if len(x_shape) == d + 1:
        x_shape = (1, *x_shape)
    if len(x_shape) != d + 2:
        raise ValueError(
            f"x has {len(given)} dimensions but weight.shape={w_shape} has {d} spatial "
            f"dimension(s); expected (N, C_in, *S) or (C_in, *S)"
        )
    if x_shape[1] != w_shape[0]:
        raise ValueError(
            f"x has C_in={x_shape[1]} channels (x.shape={given}) but weight.shape="
            f"{w_shape} expects C_in={w_shape[0]}"
        )
    if not isinstance(groups, int) or groups < 1 or x_shape[1] % groups:
        raise ValueError(
            f"groups={groups!r} must be a positive divisor of C_in={x_shape[1]} (the "
            f"channels of x); the output gets C_out = weight.shape[1] * groups channels"
        )
    if isinstance(padding, str):
        raise ValueError(
            f"padding={padding!r}: conv_transpose takes an int, one int per dimension or "
            f"(low, high) pairs, as the conv it is the adjoint of"
        )
    strides = per_dim("stride", stride, d)
    dilations = per_dim("dilation", dilation, d)
    pads = explicit_padding(padding, d)
    out_pad = per_dim("output_padding", output_padding, d, minimum=0)
    size = []
    for i, (s_in, k, st, dl, (lo, hi), op) in enumerate(
        zip(x_shape[2:], w_shape[2:], strides, dilations, pads, out_pad, strict=True)
    ):
        if op >= max(st, dl):
            raise ValueError(
                f"output_padding must be smaller than max(stride, dilation) in every "
                f"dimension; got output_padding={output_padding!r} with stride="
                f"{stride!r}, dilation={dilation!r} (dimension {i})"
            )
        n = (s_in - 1) * st - lo - hi + (k - 1) * dl + 1 + op
        if n < 1:
            raise ValueError(
                f"conv_transpose would produce {n} positions in spatial dimension {i} "
                f"(x.shape={given}, padding={padding!r}); expected at least 1"
            )
        size.append(n)
    spec = ConvSpec.build(
        (x_shape[0], w_shape[1] * groups, *size),
        w_shape,
        stride=stride,  # type: ignore[arg-type]
        padding=padding,  # type: ignore[arg-type]
        dilation=dilation,  # type: ignore[arg-type]
        groups=groups,
    )
    if bias_shape is not None and bias_shape != (spec.in_channels,):
        raise ValueError(
            f"bias must have shape (C_out,) = ({spec.in_channels},); got bias.shape={bias_shape}"
        )
    return spec


def same_padding(
    size: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> tuple[tuple[int, int], ...]:
    """The ``padding="same"`` rule: output length ``ceil(S / stride)`` per dimension.

    The total padding is ``max(0, (out - 1) * stride + (K - 1) * dilation + 1 - S)``,
    the odd extra going to the high side (TensorFlow's and JAX's ``SAME``; with stride
    1 it equals PyTorch's ``padding="same"``).

    >>> same_padding([10], [4], [1], [1])
    ((1, 2),)
    >>> same_padding([7], [3], [2], [1])
    ((1, 1),)
    """
    pads = []
    for s, k, st, dl in zip(size, kernel_size, stride, dilation, strict=True):
        out = math.ceil(s / st)
        total = max(0, (out - 1) * st + (k - 1) * dl + 1 - s)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def _is_int(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def positive_int(name: str, value: object, *, zero: bool = False) -> int:
    """``value`` as an ``int``: any integral number (``operator.index``: ``int``, NumPy
    integers) but a bool, at least 1 (or 0 with ``zero=True``); anything else is a
    :class:`ValueError` naming the argument.

    >>> positive_int("size", np.int64(3))
    3
    >>> positive_int("size", True)
    Traceback (most recent call last):
    ValueError: size=True must be a positive integer, not a bool
    """
    what = "non-negative" if zero else "positive"
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name}={value!r} must be a {what} integer, not a bool")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(
            f"{name}={value!r} must be a {what} integer; got {type(value).__name__}"
        ) from None
    if number < (0 if zero else 1):
        raise ValueError(f"{name}={value!r} must be a {what} integer")
    return number


def per_dim(name: str, value: object, d: int, minimum: int = 1) -> tuple[int, ...]:
    """``value`` (an int, or one int per spatial dimension) as a ``d``-tuple, each
    ``>= minimum``; errors name the argument.

    >>> per_dim("stride", 2, 3)
    (2, 2, 2)
    """
    if _is_int(value):
        values: tuple[object, ...] = (value,) * d
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(value)
        if len(values) != d:
            raise ValueError(
                f"{name}={value!r} has {len(values)} entries; expected an int or {d} "
                f"(one per spatial dimension)"
            )
    else:
        raise TypeError(f"{name} must be an int or a tuple of {d} ints; got {value!r}")
    if not all(_is_int(v) for v in values):
        raise TypeError(f"{name} must be an int or a tuple of {d} ints; got {value!r}")
    if any(int(v) < minimum for v in values):  # type: ignore[call-overload]
        raise ValueError(f"{name} must be >= {minimum} in every dimension; got {name}={value!r}")
    return tuple(int(v) for v in values)  # type: ignore[call-overload]


def explicit_padding(padding: object, d: int) -> tuple[tuple[int, int], ...]:
    """An int, one int per dimension, or ``(low, high)`` pairs, as ``d`` pairs.

    >>> explicit_padding((1, (0, 2)), 2)
    ((1, 1), (0, 2))
    """
    return _padding(padding, (1,) * d, (1,) * d, (1,) * d, (1,) * d)


def _padding(
    padding: object,
    size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[tuple[int, int], ...]:
    d = len(size)
    expected = (
        f"expected an int, a tuple of {d} ints, a tuple of {d} (low, high) pairs, 'valid' or 'same'"
    )
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * d
        if padding == "same":
            return same_padding(size, kernel, stride, dilation)
        raise ValueError(f"padding={padding!r} is not a padding; {expected}")
    if _is_int(padding):
        pairs: list[tuple[object, object]] = [(padding, padding)] * d
    elif isinstance(padding, Sequence):
        if len(padding) != d:
            raise ValueError(f"padding={padding!r} has {len(padding)} entries; {expected}")
        pairs = []
        for p in padding:
            if _is_int(p):
                pairs.append((p, p))
            elif isinstance(p, Sequence) and not isinstance(p, str) and len(p) == 2:
                pairs.append((p[0], p[1]))
            else:
                raise TypeError(f"padding={padding!r} is not a padding; {expected}")
    else:
        raise TypeError(f"padding={padding!r} is not a padding; {expected}")
    if not all(_is_int(lo) and _is_int(hi) for lo, hi in pairs):
        raise TypeError(f"padding={padding!r} is not a padding; {expected}")
    result = tuple((int(lo), int(hi)) for lo, hi in pairs)  # type: ignore[call-overload]
    if any(lo < 0 or hi < 0 for lo, hi in result):
        raise ValueError(f"padding must be >= 0 on every side; got padding={padding!r}")
    return result
