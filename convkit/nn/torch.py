"""Convolution layers as real ``torch.nn.Module`` s, computed by :func:`convkit.conv`.

``ConvNd`` and ``ConvTransposeNd`` work over any number ``d >= 1`` of spatial
dimensions; ``Conv1d`` … ``Conv4d`` and ``ConvTranspose1d`` … ``ConvTranspose4d`` fix
``d`` and take the positional arguments of ``torch.nn.Conv2d`` and
``torch.nn.ConvTranspose2d``, so they drop into existing code. Their parameters are
``torch.nn.Parameter`` s initialised exactly as PyTorch initialises its own (the same
calls in the same order, so the same seed gives the same weights), their ``state_dict``
keys and ``repr`` are PyTorch's, and the forward pass runs :func:`convkit.conv` (or
:func:`convkit.conv_transpose`) on the torch backend, on the device where the module's
parameters are, inside torch's autograd graph: optimisers, ``.to()``, ``.double()``,
``torch.nn.Sequential`` and ``load_state_dict`` work as for any module.

Beyond ``torch.nn``: four or more spatial dimensions, the ``symmetric`` padding mode
(with ``zeros``, ``reflect``, ``replicate`` and ``circular``), ``padding="same"`` with
any stride, and explicit ``(low, high)`` padding pairs. As in PyTorch, the input's dtype
must equal the weight's (no silent cast); convkit computes in float32, float64,
complex64 and complex128.

This module needs torch (``pip install -e '.[torch]'``); :mod:`convkit.nn` does not.

Why this module is long: the convolution and its transpose share one base (parameters,
PyTorch's initialisation, argument checks, ``repr``), and the eight ``Conv1d`` …
``ConvTranspose4d`` classes exist only to take torch's positional arguments and carry
their own docstring examples.

>>> import torch
>>> from convkit.nn.torch import Conv4d
>>> layer = Conv4d(2, 4, 3, padding="same", padding_mode="circular")
>>> layer(torch.randn(1, 2, 5, 5, 5, 5)).shape
torch.Size([1, 4, 5, 5, 5, 5])
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch.nn import init

import convkit
from convkit.nn.torchstyle import canonical_padding, conv_repr
from convkit.spec import per_dim, positive_int

__all__ = [
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "Conv4d",
    "ConvNd",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "ConvTranspose4d",
    "ConvTransposeNd",
]

PADDING_MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")
"""The padding modes of :class:`ConvNd` (defined in :mod:`convkit.padding`)."""

_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)

IntOrTuple = int | Sequence[int]
Padding = str | int | Sequence[int] | Sequence[Sequence[int]]
Device = torch.device | str | int | None


class _ConvBase(torch.nn.Module):
    """What the convolutions and transposed convolutions share: argument checks,
    PyTorch's initialisation, PyTorch's ``extra_repr`` and the input checks."""

    _ndim: ClassVar[int | None] = None
    """The number of spatial dimensions a subclass fixes; ``None``: ``len(kernel_size)``."""

    transposed: ClassVar[bool] = False

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: str | tuple[Any, ...]
    dilation: tuple[int, ...]
    output_padding: tuple[int, ...]
    groups: int
    padding_mode: str
    weight: torch.nn.Parameter
    bias: torch.nn.Parameter | None

    def _setup(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple,
        dilation: IntOrTuple,
        groups: int,
        bias: bool,
        dtype: torch.dtype | None,
    ) -> int:
        """Check and store the arguments common to both kinds; returns ``d``. The
        parameters are created by :meth:`_make_parameters` once the rest is checked."""
        name = type(self).__name__
        d = self._ndim
        if d is None:
            if isinstance(kernel_size, numbers.Integral):
                raise TypeError(
                    f"{name} takes kernel_size as a tuple with one entry per spatial "
                    f"dimension; got kernel_size={kernel_size!r}. Use Conv1d, Conv2d, "
                    f"Conv3d or Conv4d (or their ConvTranspose counterparts) for an int, "
                    f"or pass e.g. kernel_size=({kernel_size}, {kernel_size})"
                )
            if not isinstance(kernel_size, Sequence) or isinstance(kernel_size, str):
                raise TypeError(f"kernel_size must be a tuple of ints; got {kernel_size!r}")
            d = len(kernel_size)
            if d == 0:
                raise ValueError(
                    "kernel_size=() has no entries; expected one per spatial dimension (d >= 1)"
                )
        in_channels = positive_int("in_channels", in_channels)
        out_channels = positive_int("out_channels", out_channels)
        groups = positive_int("groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide both in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        if not isinstance(bias, bool):
            raise TypeError(f"bias={bias!r}; expected True or False")
        if dtype is not None and dtype not in _DTYPES:
            raise TypeError(f"dtype={dtype}; convkit computes in {_dtype_list()}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = per_dim("kernel_size", kernel_size, d, 1)
        self.stride = per_dim("stride", stride, d, 1)
        self.dilation = per_dim("dilation", dilation, d, 1)
        self.groups = int(groups)
        return d

    def _make_parameters(self, bias: bool, device: Device, dtype: torch.dtype | None) -> None:
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        if self.transposed:
            shape = (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        else:
            shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = torch.nn.Parameter(torch.empty(shape, **factory))
        if self.weight.dtype not in _DTYPES:  # dtype=None and an unusual default dtype
            raise TypeError(
                f"{type(self).__name__} would hold {self.weight.dtype} weights (the "
                f"default dtype); convkit computes in {_dtype_list()}: pass one as dtype="
            )
        if bias:
            self.bias = torch.nn.Parameter(torch.empty(self.out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's initialisation (``torch.nn.modules.conv._ConvNd.reset_parameters``):
        Kaiming-uniform with ``a = sqrt(5)``, i.e. uniform in ``±1/sqrt(fan_in)``, then
        the bias uniform in ``±1/sqrt(fan_in)`` — the same calls in the same order, so
        the same seed gives PyTorch's weights."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        """PyTorch's ``_ConvNd.extra_repr``: the options that differ from the defaults."""
        return conv_repr(self)

    def _check_input(self, input: torch.Tensor) -> None:
        name = type(self).__name__
        d = len(self.kernel_size)
        channels = self.in_channels
        expected = (
            f"(N, {channels}, *S) or unbatched ({channels}, *S) with {d} spatial "
            f"dimension{'s' if d > 1 else ''} S"
        )
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"{name} takes a torch.Tensor {expected}; got {type(input).__name__}")
        if input.dim() not in (d + 1, d + 2) or input.shape[-d - 1] != channels:
            raise ValueError(f"{name} expects input of shape {expected}; got {tuple(input.shape)}")
        if input.dtype != self.weight.dtype:
            raise TypeError(
                f"{name}: the input has dtype {input.dtype} but the weight has dtype "
                f"{self.weight.dtype}; convert one to the other, e.g. input.to("
                f"{self.weight.dtype}) or module.to({input.dtype}) (convkit's layers, like "
                f"PyTorch's, do not cast silently)"
            )
        if self.weight.dtype not in _DTYPES:
            raise TypeError(
                f"{name} holds {self.weight.dtype} weights; convkit computes in "
                f"{_dtype_list()}: convert the module, e.g. module.float()"
            )
        if input.device != self.weight.device:
            raise RuntimeError(
                f"{name}: the input is on {input.device} but the weight is on "
                f"{self.weight.device}; move one, e.g. input.to('{self.weight.device}')"
            )

    def _backend(self) -> str:
        """The torch backend, on the device of the parameters (whatever a config file
        or an enclosing ``use_backend`` block says)."""
        return f"torch:{self.weight.device}"


def _dtype_list() -> str:
    return ", ".join(str(t) for t in _DTYPES)


class ConvNd(_ConvBase):
    """A convolution layer over ``d = len(kernel_size)`` spatial dimensions, any
    ``d >= 1``: ``torch.nn.Conv1d/2d/3d`` generalised, computed by :func:`convkit.conv`.

    Input ``(N, C_in, *S)`` or unbatched ``(C_in, *S)``; weight ``(C_out, C_in //
    groups, *K)`` and bias ``(C_out,)``, initialised as PyTorch does. ``stride`` and
    ``dilation`` are ints or one per dimension; ``padding`` is an int, one int or one
    ``(low, high)`` pair per dimension, ``"valid"`` or ``"same"`` (output size
    ``ceil(S / stride)`` for any stride and dilation); ``padding_mode`` is ``zeros``,
    ``reflect``, ``symmetric``, ``replicate`` or ``circular``.

    >>> import torch
    >>> conv = ConvNd(2, 3, (3, 3, 3, 3), stride=2, padding="same", padding_mode="symmetric")
    >>> conv
    ConvNd(2, 3, kernel_size=(3, 3, 3, 3), stride=(2, 2, 2, 2), padding=same, padding_mode=symmetric)
    >>> conv(torch.randn(4, 2, 5, 6, 7, 8)).shape
    torch.Size([4, 3, 3, 3, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        *,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        d = self._setup(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            dilation,
            groups,
            bias,
            dtype,
        )
        if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
            modes = ", ".join(repr(m) for m in PADDING_MODES)
            raise ValueError(f"padding_mode={padding_mode!r}; expected one of {modes}")
        self.padding = canonical_padding(padding, d)
        self.output_padding = (0,) * d
        self.padding_mode = padding_mode
        self._make_parameters(bias, device, dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """The convolution of ``input`` (``(N, C_in, *S)`` or ``(C_in, *S)``)."""
        self._check_input(input)
        out: torch.Tensor = convkit.conv(
            input,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
            backend=self._backend(),
        )
        return out


class _FixedConv(ConvNd):
    """``ConvNd`` with ``d`` fixed by the class, taking ``torch.nn.Conv2d``'s
    positional order."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )


class Conv1d(_FixedConv):
    """:class:`ConvNd` over one spatial dimension, a drop-in ``torch.nn.Conv1d``.

    >>> import torch
    >>> conv = Conv1d(1, 2, 3, padding="same", padding_mode="symmetric")
    >>> conv(torch.randn(1, 1, 10)).shape
    torch.Size([1, 2, 10])
    """

    _ndim = 1


class Conv2d(_FixedConv):
    """:class:`ConvNd` over two spatial dimensions, a drop-in ``torch.nn.Conv2d``.

    >>> import torch
    >>> conv = Conv2d(3, 8, 3, 2, "same", padding_mode="reflect")  # strided 'same'
    >>> conv(torch.randn(2, 3, 9, 9)).shape
    torch.Size([2, 8, 5, 5])
    """

    _ndim = 2


class Conv3d(_FixedConv):
    """:class:`ConvNd` over three spatial dimensions, a drop-in ``torch.nn.Conv3d``.

    >>> import torch
    >>> conv = Conv3d(2, 4, (3, 1, 1), padding=(1, 0, 0), bias=False)
    >>> conv(torch.randn(2, 6, 5, 5)).shape  # unbatched
    torch.Size([4, 6, 5, 5])
    """

    _ndim = 3


class Conv4d(_FixedConv):
    """:class:`ConvNd` over four spatial dimensions (volumes over time, light
    fields), which ``torch.nn`` lacks; arguments as ``torch.nn.Conv3d``'s.

    >>> import torch
    >>> conv = Conv4d(1, 4, 3, padding=1)
    >>> conv
    Conv4d(1, 4, kernel_size=(3, 3, 3, 3), stride=(1, 1, 1, 1), padding=(1, 1, 1, 1))
    >>> conv(torch.randn(2, 1, 4, 5, 6, 7)).shape
    torch.Size([2, 4, 4, 5, 6, 7])
    """

    _ndim = 4


class ConvTransposeNd(_ConvBase):
    """A transposed convolution over ``d = len(kernel_size)`` spatial dimensions, any
    ``d >= 1`` (``torch.nn.ConvTranspose1d/2d/3d`` generalised), computed by
    :func:`convkit.conv_transpose`: the adjoint of :class:`ConvNd`'s convolution with
    respect to its input, as PyTorch defines it.

    Weight ``(C_in, C_out // groups, *K)``, initialised as PyTorch does. Each output
    dimension has ``(S - 1) * stride - 2 * padding + dilation * (K - 1) + output_padding
    + 1`` positions; ``padding`` is an int or one int per dimension (as in PyTorch), and
    ``output_padding`` (each below ``max(stride, dilation)``) picks among the sizes a
    strided convolution maps to ``S`` — or pass ``output_size`` to ``forward``.
    ``padding_mode`` exists for PyTorch's signature and must be ``"zeros"``.

    >>> import torch
    >>> up = ConvTransposeNd(4, 2, (2, 2, 2, 2), stride=2)
    >>> up(torch.randn(1, 4, 3, 3, 3, 3)).shape
    torch.Size([1, 2, 6, 6, 6, 6])
    >>> up(torch.randn(1, 4, 3, 3, 3, 3), output_size=(7, 7, 6, 6)).shape
    torch.Size([1, 2, 7, 7, 6, 6])
    """

    transposed = True
    padding: tuple[int, ...]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        *,
        stride: IntOrTuple = 1,
        padding: IntOrTuple = 0,
        output_padding: IntOrTuple = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntOrTuple = 1,
        padding_mode: str = "zeros",
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        d = self._setup(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            dilation,
            groups,
            bias,
            dtype,
        )
        name = type(self).__name__
        if padding_mode != "zeros":
            raise ValueError(
                f"padding_mode={padding_mode!r}; {name} supports only 'zeros' (as "
                f"PyTorch's transposed convolutions)"
            )
        if isinstance(padding, str):
            raise ValueError(
                f"padding={padding!r}; {name} takes an int or a tuple of {d} ints (as "
                f"PyTorch's transposed convolutions), not 'same' or 'valid'"
            )
        self.padding = per_dim("padding", padding, d, 0)
        self.output_padding = per_dim("output_padding", output_padding, d, 0)
        for op, s, dl in zip(self.output_padding, self.stride, self.dilation, strict=True):
            if op >= max(s, dl):
                raise ValueError(
                    f"output_padding={output_padding!r} must be smaller than max(stride, "
                    f"dilation) in every dimension; stride={self.stride}, "
                    f"dilation={self.dilation}"
                )
        self.padding_mode = "zeros"
        self._make_parameters(bias, device, dtype)

    def _output_padding_for(
        self, input: torch.Tensor, output_size: Sequence[int] | None
    ) -> tuple[int, ...]:
        """``output_padding``, or the one that gives ``output_size`` (PyTorch's rule)."""
        if output_size is None:
            return self.output_padding
        d = len(self.kernel_size)
        size = tuple(int(s) for s in output_size)
        non_spatial = input.dim() - d
        if len(size) == non_spatial + d:
            size = size[non_spatial:]
        if len(size) != d:
            raise ValueError(
                f"output_size={tuple(output_size)!r}; expected {d} spatial sizes (or "
                f"{non_spatial + d} with the leading dimensions) for input of shape "
                f"{tuple(input.shape)}"
            )
        spatial = input.shape[-d:]
        smallest = [
            (n - 1) * s - 2 * p + dl * (k - 1) + 1
            for n, s, p, dl, k in zip(
                spatial, self.stride, self.padding, self.dilation, self.kernel_size, strict=True
            )
        ]
        largest = [lo + s - 1 for lo, s in zip(smallest, self.stride, strict=True)]
        if any(not lo <= n <= hi for n, lo, hi in zip(size, smallest, largest, strict=True)):
            raise ValueError(
                f"output_size={size} is not reachable: for an input of spatial size "
                f"{tuple(spatial)} the sizes range from {tuple(smallest)} to {tuple(largest)}"
            )
        return tuple(n - lo for n, lo in zip(size, smallest, strict=True))

    def forward(
        self, input: torch.Tensor, output_size: Sequence[int] | None = None
    ) -> torch.Tensor:
        """The transposed convolution of ``input``; ``output_size`` (spatial sizes, or
        the whole shape) chooses ``output_padding`` as PyTorch does."""
        self._check_input(input)
        out: torch.Tensor = convkit.conv_transpose(
            input,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            output_padding=self._output_padding_for(input, output_size),
            dilation=self.dilation,
            groups=self.groups,
            backend=self._backend(),
        )
        return out


class _FixedConvTranspose(ConvTransposeNd):
    """``ConvTransposeNd`` with ``d`` fixed by the class, taking
    ``torch.nn.ConvTranspose2d``'s positional order."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: IntOrTuple = 0,
        output_padding: IntOrTuple = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntOrTuple = 1,
        padding_mode: str = "zeros",
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            groups=groups,
            bias=bias,
            dilation=dilation,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )


class ConvTranspose1d(_FixedConvTranspose):
    """:class:`ConvTransposeNd` over one dimension, a drop-in
    ``torch.nn.ConvTranspose1d``.

    >>> import torch
    >>> ConvTranspose1d(2, 1, 4, stride=2, padding=1)(torch.randn(1, 2, 8)).shape
    torch.Size([1, 1, 16])
    """

    _ndim = 1


class ConvTranspose2d(_FixedConvTranspose):
    """:class:`ConvTransposeNd` over two dimensions, a drop-in
    ``torch.nn.ConvTranspose2d``.

    >>> import torch
    >>> ConvTranspose2d(4, 2, 3, 2, 1, 1)(torch.randn(1, 4, 5, 5)).shape
    torch.Size([1, 2, 10, 10])
    """

    _ndim = 2


class ConvTranspose3d(_FixedConvTranspose):
    """:class:`ConvTransposeNd` over three dimensions, a drop-in
    ``torch.nn.ConvTranspose3d``.

    >>> import torch
    >>> ConvTranspose3d(2, 2, 2, stride=2, groups=2)(torch.randn(2, 3, 3, 3)).shape
    torch.Size([2, 6, 6, 6])
    """

    _ndim = 3


class ConvTranspose4d(_FixedConvTranspose):
    """:class:`ConvTransposeNd` over four dimensions, which ``torch.nn`` lacks;
    arguments as ``torch.nn.ConvTranspose3d``'s.

    >>> import torch
    >>> ConvTranspose4d(3, 1, 2, stride=2)(torch.randn(1, 3, 2, 2, 2, 2)).shape
    torch.Size([1, 1, 4, 4, 4, 4])
    """

    _ndim = 4
