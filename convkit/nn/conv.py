"""Convolutional layers on NumPy arrays, for any number of spatial dimensions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from convkit import ops
from convkit.nn.checks import check_input_dtype, float_dtype, host_array, need_forward, positive_int
from convkit.nn.module import Module
from convkit.nn.parameter import Parameter, to_numpy
from convkit.nn.torchstyle import TORCH_PADDING_MODES, canonical_padding, conv_repr
from convkit.padding import canonical_padding_mode
from convkit.spec import explicit_padding, per_dim


class ConvNd(Module):
    """A convolutional layer over ``len(kernel_size)`` spatial dimensions:
    ``convkit.conv`` with trained weights ``(C_out, C_in // groups, *K)`` and bias
    ``(C_out,)``.

    Initialised as PyTorch does: Kaiming-uniform with ``a = sqrt(5)``, which is uniform
    in ``±1/sqrt(fan_in)``, and the bias uniform in ``±1/sqrt(fan_in)``. The input must
    have the weights' dtype (PyTorch's rule; :meth:`Module.double` converts a model).

    >>> layer = ConvNd(3, 8, (3, 3), padding=1, seed=0)
    >>> layer(np.ones((2, 3, 16, 16), dtype=np.float32)).shape
    (2, 8, 16, 16)
    >>> layer
    ConvNd(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    """

    parameter_names = ("weight", "bias")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: int | str | Sequence[int] | Sequence[Sequence[int]] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        dtype: str = "float32",
        backend: str | None = None,
        seed: int | None = None,
        _ndim: int | None = None,
    ) -> None:
        if _ndim is None:
            if isinstance(kernel_size, int):
                raise TypeError(
                    "ConvNd needs kernel_size as a tuple (one entry per spatial dimension); "
                    "use Conv1d, Conv2d, Conv3d or Conv4d for an int"
                )
            _ndim = len(kernel_size)
        d = _ndim
        kernel = per_dim("kernel_size", kernel_size, d)
        in_channels = positive_int("in_channels", in_channels)
        out_channels = positive_int("out_channels", out_channels)
        groups = positive_int("groups", groups)
        dtype = float_dtype(dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel
        self.stride = per_dim("stride", stride, d)
        self.dilation = per_dim("dilation", dilation, d)
        self.padding = padding
        self.groups = groups
        self.padding_mode = canonical_padding_mode(padding_mode)
        self.backend = backend
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide both in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        canonical_padding(padding, d)  # a clear error now rather than at the first call
        rng = np.random.default_rng(seed)
        fan_in = in_channels // groups * math.prod(kernel)
        bound = 1 / math.sqrt(fan_in)
        shape = (out_channels, in_channels // groups, *kernel)
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype), "weight")
        self.bias: Parameter | None = (
            Parameter(rng.uniform(-bound, bound, out_channels).astype(dtype), "bias")
            if bias
            else None
        )
        self._x: np.ndarray | None = None

    def _kwargs(self) -> dict[str, Any]:
        return dict(
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
            backend=self.backend,
        )

    def forward(self, x: Any) -> np.ndarray:
        x = host_array(self, x)
        check_input_dtype(self, x, self.weight.value.dtype)
        self._x = x
        b = None if self.bias is None else self.bias.value
        return np.asarray(ops.conv(x, self.weight.value, b, **self._kwargs()))

    def backward(self, grad_out: Any) -> np.ndarray:
        need_forward(self, self._x)
        assert self._x is not None
        gx, gw, gb = ops.conv_vjp(
            self._x,
            self.weight.value,
            host_array(self, grad_out, "grad_out"),
            bias=self.bias is not None,
            **self._kwargs(),
        )
        self.weight.grad += np.asarray(gw, dtype=self.weight.grad.dtype)
        if self.bias is not None and gb is not None:
            self.bias.grad += np.asarray(gb, dtype=self.bias.grad.dtype)
        return np.asarray(gx)

    def extra_repr(self) -> str:
        return conv_repr(self)

    def _torch_padding(self) -> Any:
        """The padding as ``torch.nn.ConvNd`` takes it, or ``None`` where it cannot."""
        d = len(self.kernel_size)
        if isinstance(self.padding, str):
            same_strided = self.padding == "same" and self.stride != (1,) * d
            return None if same_strided else self.padding
        pairs = explicit_padding(self.padding, d)
        if any(lo != hi for lo, hi in pairs):
            return None
        return tuple(lo for lo, _ in pairs)

    def to_torch(self) -> Any:
        """A torch module with this layer's configuration and weights: the
        ``torch.nn.Conv1d/2d/3d`` where torch has one with these options, otherwise
        (four or more dimensions, ``symmetric`` padding, strided ``'same'``, unequal
        padding sides) a :class:`convkit.nn.torch.ConvNd`."""
        import torch

        from convkit.nn import torch as cktorch

        d = len(self.kernel_size)
        padding = self._torch_padding()
        dtype = getattr(torch, str(self.weight.value.dtype))
        native = d <= 3 and padding is not None and self.padding_mode in TORCH_PADDING_MODES
        module: Any
        if native:
            cls: Any = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[d]
            module = cls(
                self.in_channels,
                self.out_channels,
                self.kernel_size,
                stride=self.stride,
                padding=padding,
                dilation=self.dilation,
                groups=self.groups,
                bias=self.bias is not None,
                padding_mode=self.padding_mode,
                dtype=dtype,
            )
        else:
            module = cktorch.ConvNd(
                self.in_channels,
                self.out_channels,
                self.kernel_size,
                stride=self.stride,
                padding=self.padding,
                dilation=self.dilation,
                groups=self.groups,
                bias=self.bias is not None,
                padding_mode=self.padding_mode,
                dtype=dtype,
            )
        module.load_state_dict(
            {k: torch.from_numpy(v) for k, v in self.state_dict().items()}, strict=True
        )
        return module

    @classmethod
    def from_torch(cls, module: Any, *, backend: str | None = None) -> ConvNd:
        """A layer with the configuration and weights of a ``torch.nn.Conv1d/2d/3d`` or a
        :class:`convkit.nn.torch.ConvNd`: a :class:`Conv1d` … :class:`Conv4d` for one to
        four dimensions, a :class:`ConvNd` beyond.

        >>> import torch
        >>> layer = ConvNd.from_torch(torch.nn.Conv2d(1, 4, 3, padding=1))
        >>> layer
        Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
        """
        import torch

        from convkit.nn import torch as cktorch

        convs = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, cktorch.ConvNd)
        if not isinstance(module, convs):
            raise TypeError(
                f"from_torch() takes a torch.nn.Conv1d, Conv2d, Conv3d or a "
                f"convkit.nn.torch.ConvNd; got {type(module).__name__} (transposed "
                f"convolutions are not ConvNd layers)"
            )
        weight = to_numpy(module.weight)
        padding = module.padding
        d = weight.ndim - 2
        options: dict[str, Any] = dict(
            stride=tuple(module.stride),
            padding=padding if isinstance(padding, str | int) else tuple(padding),
            dilation=tuple(module.dilation),
            groups=module.groups,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
            dtype=str(weight.dtype),
            backend=backend,
        )
        sizes = (module.in_channels, module.out_channels, tuple(module.kernel_size))
        layer = FIXED[d](*sizes, **options) if d in FIXED else ConvNd(*sizes, **options)
        layer.load_state_dict(module.state_dict())
        return layer


class _FixedConv(ConvNd):
    """:class:`ConvNd` with ``d`` fixed by the class, taking ``torch.nn.Conv2d``'s
    positional order (convkit's own options are keywords)."""

    ndim = 0

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | str | Sequence[int] | Sequence[Sequence[int]] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        dtype: str = "float32",
        backend: str | None = None,
        seed: int | None = None,
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
            dtype=dtype,
            backend=backend,
            seed=seed,
            _ndim=self.ndim,
        )


class Conv1d(_FixedConv):
    """:class:`ConvNd` over one spatial dimension (audio, text): input ``(N, C, T)``.

    >>> layer = Conv1d(2, 4, 5, padding="same", padding_mode="reflect", seed=0)
    >>> layer(np.zeros((8, 2, 100), dtype=np.float32)).shape
    (8, 4, 100)
    """

    ndim = 1


class Conv2d(_FixedConv):
    """:class:`ConvNd` over two spatial dimensions (images): input ``(N, C, H, W)``.

    >>> layer = Conv2d(3, 16, 3, 2, 1, seed=0)  # torch's order: stride 2, padding 1
    >>> layer(np.zeros((1, 3, 32, 32), dtype=np.float32)).shape
    (1, 16, 16, 16)
    """

    ndim = 2


class Conv3d(_FixedConv):
    """:class:`ConvNd` over three spatial dimensions (volumes, video): input
    ``(N, C, D, H, W)``.

    >>> Conv3d(1, 2, (3, 3, 1), seed=0)(np.zeros((1, 1, 5, 5, 5), np.float32)).shape
    (1, 2, 3, 3, 5)
    """

    ndim = 3


class Conv4d(_FixedConv):
    """:class:`ConvNd` over four spatial dimensions (volumes over time): input
    ``(N, C, T, D, H, W)``.

    >>> Conv4d(1, 2, 3, padding=1, seed=0)(np.zeros((1, 1, 4, 4, 4, 4), np.float32)).shape
    (1, 2, 4, 4, 4, 4)
    """

    ndim = 4


FIXED: dict[int, type[ConvNd]] = {1: Conv1d, 2: Conv2d, 3: Conv3d, 4: Conv4d}
"""The fixed-dimension class for each ``d``."""
