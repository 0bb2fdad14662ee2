"""Convolutional layers on NumPy arrays, for any number of spatial dimensions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from convkit import ops
from convkit.nn.module import Module, check_input_dtype, need_forward
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
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel
        self.stride = per_dim("stride", stride, d)
        self.dilation = per_dim("dilation", dilation, d)
        self.padding = padding
        self.groups = groups
        self.padding_mode = canonical_padding_mode(padding_mode)
        self.backend = backend
        if dtype not in ("float32", "float64"):
            raise TypeError(f"dtype={dtype!r}: layers train in 'float32' or 'float64'")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if groups < 1 or in_channels % groups or out_channels % groups:
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
        x = np.asarray(x)
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
            np.asarray(grad_out),
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
        :class:`convkit.nn.torch.ConvNd`."""
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
        layer = ConvNd(
            module.in_channels,
            module.out_channels,
            tuple(module.kernel_size),
            stride=tuple(module.stride),
            padding=padding if isinstance(padding, str | int) else tuple(padding),
            dilation=tuple(module.dilation),
            groups=module.groups,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
            dtype=str(weight.dtype),
            backend=backend,
            _ndim=weight.ndim - 2,
        )
        layer.load_state_dict(module.state_dict())
        return layer


class Conv1d(ConvNd):
    """:class:`ConvNd` over one spatial dimension (audio, text): input ``(N, C, T)``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], **kwargs: Any
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, _ndim=1, **kwargs)


class Conv2d(ConvNd):
    """:class:`ConvNd` over two spatial dimensions (images): input ``(N, C, H, W)``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], **kwargs: Any
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, _ndim=2, **kwargs)


class Conv3d(ConvNd):
    """:class:`ConvNd` over three spatial dimensions (volumes, video): input ``(N, C, D, H, W)``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], **kwargs: Any
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, _ndim=3, **kwargs)


class Conv4d(ConvNd):
    """:class:`ConvNd` over four spatial dimensions (volumes over time): input ``(N, C, T, D, H, W)``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], **kwargs: Any
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, _ndim=4, **kwargs)
