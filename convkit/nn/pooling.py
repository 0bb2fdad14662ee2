"""Pooling: maximum or mean over windows of the spatial axes, or over all of them."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from convkit.nn.checks import check_grad_shape, host_array, need_forward
from convkit.nn.module import Module
from convkit.spec import per_dim


class _Pool(Module):
    """Pooling over windows of the spatial axes (all axes after the first two)."""

    def __init__(self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None):
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self._x: np.ndarray | None = None

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"

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
    along every spatial axis, for any number of them (no padding: a partial window at
    the end is left out, as PyTorch's default ``ceil_mode=False``). The gradient goes to
    the first maximum of each window.

    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> MaxPool(2)(x)[0, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    """

    def forward(self, x: Any) -> np.ndarray:
        self._x = host_array(self, x)
        view, _, _ = self._windows(self._x)
        flat = view.reshape(*view.shape[: self._x.ndim], -1)
        self._arg = np.argmax(flat, axis=-1)
        return np.take_along_axis(flat, self._arg[..., None], axis=-1)[..., 0]

    def backward(self, grad_out: Any) -> np.ndarray:
        need_forward(self, self._x)
        assert self._x is not None
        x = self._x
        check_grad_shape(self, grad_out, self._arg.shape)
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
    """Mean over windows of ``kernel_size`` every ``stride`` (default: the kernel),
    along every spatial axis.

    >>> AvgPool(2)(np.arange(6, dtype=np.float32).reshape(1, 1, 6)).tolist()
    [[[0.5, 2.5, 4.5]]]
    """

    def forward(self, x: Any) -> np.ndarray:
        self._x = host_array(self, x)
        view, _, _ = self._windows(self._x)
        d = self._x.ndim - 2
        return view.mean(axis=tuple(range(-d, 0))).astype(self._x.dtype)

    def backward(self, grad_out: Any) -> np.ndarray:
        need_forward(self, self._x)
        assert self._x is not None
        x = self._x
        view, kernel, stride = self._windows(x)
        out = view.shape[2 : x.ndim]
        check_grad_shape(self, grad_out, (*x.shape[:2], *out))
        grad = np.zeros_like(x)
        share = host_array(self, grad_out, "grad_out") / math.prod(kernel)
        for tap in itertools.product(*(range(k) for k in kernel)):
            where = tuple(
                slice(a, a + (o - 1) * s + 1, s) for a, o, s in zip(tap, out, stride, strict=True)
            )
            grad[(slice(None), slice(None), *where)] += share
        return grad


class GlobalAvgPool(Module):
    """Mean over all spatial axes: ``(N, C, *S)`` to ``(N, C)``.

    >>> GlobalAvgPool()(np.ones((2, 3, 4, 4), dtype=np.float32)).shape
    (2, 3)
    """

    def forward(self, x: Any) -> np.ndarray:
        self._shape: tuple[int, ...] | None = np.shape(x)
        x = host_array(self, x)
        return x.mean(axis=tuple(range(2, x.ndim))).astype(x.dtype)

    def backward(self, grad_out: Any) -> np.ndarray:
        shape = getattr(self, "_shape", None)
        need_forward(self, shape)
        assert shape is not None
        check_grad_shape(self, grad_out, shape[:2])
        g = host_array(self, grad_out, "grad_out") / math.prod(shape[2:])
        return np.broadcast_to(g.reshape(*shape[:2], *(1,) * (len(shape) - 2)), shape).copy()


class GlobalMaxPool(Module):
    """Maximum over all spatial axes: ``(N, C, *S)`` to ``(N, C)``.

    >>> GlobalMaxPool()(np.arange(8, dtype=np.float32).reshape(1, 2, 4)).tolist()
    [[3.0, 7.0]]
    """

    def forward(self, x: Any) -> np.ndarray:
        x = host_array(self, x)
        flat = x.reshape(*x.shape[:2], -1)
        self._arg: np.ndarray | None = np.argmax(flat, axis=-1)
        self._shape = x.shape
        return np.take_along_axis(flat, self._arg[..., None], axis=-1)[..., 0]

    def backward(self, grad_out: Any) -> np.ndarray:
        arg = getattr(self, "_arg", None)
        need_forward(self, arg)
        assert arg is not None
        g = host_array(self, grad_out, "grad_out")
        check_grad_shape(self, g, arg.shape)
        flat = np.zeros((*self._shape[:2], math.prod(self._shape[2:])), dtype=g.dtype)
        np.put_along_axis(flat, arg[..., None], g[..., None], axis=-1)
        return flat.reshape(self._shape)
