"""Layers: convolution, and the few others a small conv net needs.

Why this module is long: each layer keeps its forward and backward passes side by side
(as autograd keeps a primitive beside its vector-Jacobian product), and the conv layers'
parameter checks mirror PyTorch's; the layers share helpers and no layer is long.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from convkit import ops
from convkit.nn.module import Module, Parameter
from convkit.padding import canonical_padding_mode
from convkit.spec import explicit_padding, per_dim


def _need_forward(layer: Module, state: Any) -> None:
    if state is None:
        raise RuntimeError(
            f"{type(layer).__name__}.backward() called before forward(): there is no "
            f"input to differentiate at"
        )


def _check_grad_shape(layer: Module, grad_out: np.ndarray, shape: tuple[int, ...]) -> None:
    if tuple(np.shape(grad_out)) != tuple(shape):
        raise ValueError(
            f"{type(layer).__name__}.backward() expects grad_out of the output's shape "
            f"{tuple(shape)}; got {tuple(np.shape(grad_out))}"
        )


class ConvNd(Module):
    """A convolutional layer over ``len(kernel_size)`` spatial dimensions.

    Weights ``(C_out, C_in // groups, *K)`` and bias ``(C_out,)`` are initialised as
    PyTorch does: Kaiming-uniform with ``a = sqrt(5)``, which is uniform in
    ``±1/sqrt(fan_in)``, and the bias uniform in ``±1/sqrt(fan_in)``.

    >>> layer = ConvNd(3, 8, (3, 3), padding=1, seed=0)
    >>> layer(np.ones((2, 3, 16, 16), dtype=np.float32)).shape
    (2, 8, 16, 16)
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
                    "use Conv1d, Conv2d or Conv3d for an int"
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
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding={padding!r}; expected 'same', 'valid' or sizes")
        else:
            explicit_padding(padding, d)  # a clear error now rather than at the first call
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
        self._x = np.asarray(x)
        b = None if self.bias is None else self.bias.value
        return np.asarray(ops.conv(self._x, self.weight.value, b, **self._kwargs()))

    def backward(self, grad_out: Any) -> np.ndarray:
        _need_forward(self, self._x)
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

    def to_torch(self) -> Any:
        """The equivalent ``torch.nn.Conv1d/2d/3d`` with the same weights."""
        import torch

        d = len(self.kernel_size)
        if d > 3:
            raise ValueError(f"torch has no Conv{d}d; to_torch() works for 1 to 3 dimensions")
        modes = {
            "zeros": "zeros",
            "reflect": "reflect",
            "replicate": "replicate",
            "circular": "circular",
        }
        if self.padding_mode not in modes:
            raise ValueError(f"torch has no padding_mode={self.padding_mode!r}")
        padding: Any = self.padding
        if not isinstance(padding, str):
            pairs = explicit_padding(padding, d)
            if any(lo != hi for lo, hi in pairs):
                raise ValueError(f"torch pads symmetrically; padding={padding!r} is not")
            padding = tuple(lo for lo, _ in pairs)
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
            padding_mode=modes[self.padding_mode],
            dtype=getattr(torch, str(self.weight.value.dtype)),
        )
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(self.weight.value))
            if self.bias is not None:
                module.bias.copy_(torch.from_numpy(self.bias.value))
        return module

    @classmethod
    def from_torch(cls, module: Any, *, backend: str | None = None) -> ConvNd:
        """A layer with the configuration and weights of a ``torch.nn.Conv1d/2d/3d``."""
        import torch

        convs = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
        if not isinstance(module, convs):
            raise TypeError(
                f"from_torch() takes a torch.nn.Conv1d, Conv2d or Conv3d; got "
                f"{type(module).__name__} (transposed convolutions are not ConvNd layers)"
            )
        weight = module.weight.detach().cpu().numpy()
        d = weight.ndim - 2
        layer = ConvNd(
            module.in_channels,
            module.out_channels,
            tuple(module.kernel_size),
            stride=tuple(module.stride),
            padding=module.padding if isinstance(module.padding, str) else tuple(module.padding),
            dilation=tuple(module.dilation),
            groups=module.groups,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
            dtype=str(weight.dtype),
            backend=backend,
            _ndim=d,
        )
        layer.weight.value = weight
        if module.bias is not None and layer.bias is not None:
            layer.bias.value = module.bias.detach().cpu().numpy()
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
    """:class:`ConvNd` over three spatial dimensions (volumes, video)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], **kwargs: Any
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, _ndim=3, **kwargs)


class ReLU(Module):
    """``max(x, 0)``."""

    def __init__(self) -> None:
        self._mask: np.ndarray | None = None

    def forward(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        self._mask = x > 0
        return np.where(self._mask, x, 0).astype(x.dtype)

    def backward(self, grad_out: Any) -> np.ndarray:
        _need_forward(self, self._mask)
        assert self._mask is not None
        _check_grad_shape(self, grad_out, self._mask.shape)
        return np.where(self._mask, grad_out, 0).astype(np.asarray(grad_out).dtype)


class _Pool(Module):
    """Pooling over windows of the spatial axes (all axes after the first two)."""

    def __init__(self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None):
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self._x: np.ndarray | None = None

    def _windows(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]]:
        d = x.ndim - 2
        kernel = per_dim("kernel_size", self.kernel_size, d)
        stride = per_dim("stride", self.stride, d)
        if any(k > s for k, s in zip(kernel, x.shape[2:], strict=True)):
            raise ValueError(f"pooling window {kernel} is larger than the input {x.shape[2:]}")
        view = sliding_window_view(x, kernel, axis=tuple(range(2, 2 + d)))
        view = view[(slice(None), slice(None), *(slice(None, None, s) for s in stride))]
        return view, kernel, stride


class MaxPool(_Pool):
    """Maximum over windows of ``kernel_size`` every ``stride`` (default: the kernel)
    along every spatial axis. The gradient goes to the first maximum of each window."""

    def forward(self, x: Any) -> np.ndarray:
        self._x = np.asarray(x)
        view, _, _ = self._windows(self._x)
        flat = view.reshape(*view.shape[: self._x.ndim], -1)
        self._arg = np.argmax(flat, axis=-1)
        return np.take_along_axis(flat, self._arg[..., None], axis=-1)[..., 0]

    def backward(self, grad_out: Any) -> np.ndarray:
        _need_forward(self, self._x)
        assert self._x is not None
        x = self._x
        _check_grad_shape(self, grad_out, self._arg.shape)
        d = x.ndim - 2
        _, kernel, stride = self._windows(x)
        offsets = np.unravel_index(self._arg, kernel)  # tap of the maximum, per window
        grad = np.zeros_like(x)
        index: list[np.ndarray] = list(np.indices(self._arg.shape, sparse=True)[:2])
        starts = np.indices(self._arg.shape[2:], sparse=True)
        for i in range(d):
            index.append(starts[i] * stride[i] + offsets[i])
        np.add.at(grad, tuple(index), grad_out)
        return grad


class AvgPool(_Pool):
    """Mean over windows of ``kernel_size`` every ``stride`` (default: the kernel)."""

    def forward(self, x: Any) -> np.ndarray:
        self._x = np.asarray(x)
        view, _, _ = self._windows(self._x)
        d = self._x.ndim - 2
        return view.mean(axis=tuple(range(-d, 0))).astype(self._x.dtype)

    def backward(self, grad_out: Any) -> np.ndarray:
        _need_forward(self, self._x)
        assert self._x is not None
        x = self._x
        view, kernel, stride = self._windows(x)
        out = view.shape[2 : x.ndim]
        _check_grad_shape(self, grad_out, (*x.shape[:2], *out))
        grad = np.zeros_like(x)
        share = np.asarray(grad_out) / math.prod(kernel)
        for tap in itertools.product(*(range(k) for k in kernel)):
            where = tuple(
                slice(a, a + (o - 1) * s + 1, s) for a, o, s in zip(tap, out, stride, strict=True)
            )
            grad[(slice(None), slice(None), *where)] += share
        return grad


class GlobalAvgPool(Module):
    """Mean over all spatial axes: ``(N, C, *S)`` to ``(N, C)``."""

    def forward(self, x: Any) -> np.ndarray:
        self._shape: tuple[int, ...] | None = np.shape(x)
        x = np.asarray(x)
        return x.mean(axis=tuple(range(2, x.ndim))).astype(x.dtype)

    def backward(self, grad_out: Any) -> np.ndarray:
        shape = getattr(self, "_shape", None)
        _need_forward(self, shape)
        assert shape is not None
        _check_grad_shape(self, grad_out, shape[:2])
        g = np.asarray(grad_out) / math.prod(shape[2:])
        return np.broadcast_to(g.reshape(*shape[:2], *(1,) * (len(shape) - 2)), shape).copy()


class GlobalMaxPool(Module):
    """Maximum over all spatial axes: ``(N, C, *S)`` to ``(N, C)``."""

    def forward(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        flat = x.reshape(*x.shape[:2], -1)
        self._arg: np.ndarray | None = np.argmax(flat, axis=-1)
        self._shape = x.shape
        return np.take_along_axis(flat, self._arg[..., None], axis=-1)[..., 0]

    def backward(self, grad_out: Any) -> np.ndarray:
        arg = getattr(self, "_arg", None)
        _need_forward(self, arg)
        assert arg is not None
        _check_grad_shape(self, grad_out, arg.shape)
        flat = np.zeros(
            (*self._shape[:2], math.prod(self._shape[2:])), dtype=np.asarray(grad_out).dtype
        )
        np.put_along_axis(flat, arg[..., None], np.asarray(grad_out)[..., None], axis=-1)
        return flat.reshape(self._shape)


class Flatten(Module):
    """``(N, ...)`` to ``(N, prod(...))``."""

    def forward(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        self._shape: tuple[int, ...] | None = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out: Any) -> np.ndarray:
        shape = getattr(self, "_shape", None)
        _need_forward(self, shape)
        assert shape is not None
        _check_grad_shape(self, grad_out, (shape[0], math.prod(shape[1:])))
        return np.asarray(grad_out).reshape(shape)


class Linear(Module):
    """``y = x @ W.T + b`` with ``W`` ``(out, in)``, initialised as PyTorch does."""

    parameter_names = ("weight", "bias")

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        dtype: str = "float32",
        seed: int | None = None,
    ) -> None:
        rng = np.random.default_rng(seed)
        bound = 1 / math.sqrt(in_features)
        self.weight = Parameter(
            rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype), "weight"
        )
        self.bias: Parameter | None = (
            Parameter(rng.uniform(-bound, bound, out_features).astype(dtype), "bias")
            if bias
            else None
        )
        self._x: np.ndarray | None = None

    def forward(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.weight.shape[1]:
            raise ValueError(
                f"Linear expects inputs (..., {self.weight.shape[1]}); got shape {x.shape}"
            )
        self._x = x
        y = self._x @ self.weight.value.T
        return y + self.bias.value if self.bias is not None else y

    def backward(self, grad_out: Any) -> np.ndarray:
        _need_forward(self, self._x)
        assert self._x is not None
        g = np.asarray(grad_out)
        _check_grad_shape(self, g, (*self._x.shape[:-1], self.weight.shape[0]))
        self.weight.grad += g.reshape(-1, g.shape[-1]).T @ self._x.reshape(-1, self._x.shape[-1])
        if self.bias is not None:
            self.bias.grad += g.reshape(-1, g.shape[-1]).sum(axis=0)
        return g @ self.weight.value


class Sequential(Module):
    """Layers applied in order; :meth:`backward` runs them in reverse."""

    def __init__(self, *layers: Module) -> None:
        self.layers = list(layers)

    def children(self) -> list[Module]:
        return self.layers

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, grad_out: Any) -> Any:
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out
