"""Batch normalisation with running statistics, as ``torch.nn.BatchNorm1d/2d/3d``."""

from __future__ import annotations

from typing import Any

import numpy as np

from convkit.nn.checks import (
    check_grad_shape,
    check_input_dtype,
    float_dtype,
    host_array,
    need_forward,
    positive_int,
)
from convkit.nn.module import Module
from convkit.nn.parameter import Parameter


class _BatchNorm(Module):
    """Normalise each channel (axis 1) by the batch's mean and variance in training
    mode, updating running estimates; by the running estimates in evaluation mode.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``; in training mode ``var`` is
    the biased batch variance, and the running variance is updated with the unbiased
    one: ``running = (1 - momentum) * running + momentum * batch`` (with
    ``momentum=None``, a cumulative average), as PyTorch does.
    """

    parameter_names = ("weight", "bias")
    buffer_names = ("running_mean", "running_var", "num_batches_tracked")
    spatial_dims: tuple[int, ...] = ()
    """The numbers of spatial axes this variant accepts after ``(N, C)``."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype: str = "float32",
    ) -> None:
        num_features = positive_int("num_features", num_features)
        dtype = float_dtype(dtype)
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps > 0:
            raise ValueError(f"eps={eps!r} must be a positive number")
        if momentum is not None and (
            isinstance(momentum, bool)
            or not isinstance(momentum, int | float)
            or not 0 <= momentum <= 1
        ):
            raise ValueError(f"momentum={momentum!r} must be a number in [0, 1] or None")
        self.num_features, self.eps, self.momentum = num_features, float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight: Parameter | None = (
            Parameter(np.ones(num_features, dtype=dtype), "weight") if affine else None
        )
        self.bias: Parameter | None = (
            Parameter(np.zeros(num_features, dtype=dtype), "bias") if affine else None
        )
        self.running_mean: np.ndarray | None = None
        self.running_var: np.ndarray | None = None
        self.num_batches_tracked: np.ndarray | None = None
        if track_running_stats:
            self.running_mean = np.zeros(num_features, dtype=dtype)
            self.running_var = np.ones(num_features, dtype=dtype)
            self.num_batches_tracked = np.zeros((), dtype=np.int64)
        self._cache: tuple[np.ndarray, np.ndarray, bool] | None = None

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )

    def _check(self, x: np.ndarray) -> None:
        ok = x.ndim - 2 in self.spatial_dims and x.shape[1] == self.num_features
        if not ok:
            shapes = " or ".join(
                "(N, C" + "".join(f", S{i + 1}" for i in range(d)) + ")" for d in self.spatial_dims
            )
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) expects input {shapes} with "
                f"C={self.num_features}; got shape {x.shape}"
            )
        dtype = self.weight.value.dtype if self.weight is not None else None
        dtype = dtype if dtype is not None else getattr(self.running_mean, "dtype", x.dtype)
        check_input_dtype(self, x, np.dtype(dtype))

    def forward(self, x: Any) -> np.ndarray:
        x = host_array(self, x)
        self._check(x)
        axes = (0, *range(2, x.ndim))
        shape = (1, -1, *(1,) * (x.ndim - 2))
        batch_stats = self.training or self.running_mean is None
        if batch_stats:
            count = x.size // x.shape[1]
            if count < 2 and self.training:
                raise ValueError(
                    f"{type(self).__name__} in training mode needs more than one value per "
                    f"channel to estimate a variance; got input of shape {x.shape}"
                )
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            if self.training and self.running_mean is not None:
                self._update(mean, var * count / max(count - 1, 1))
        else:
            assert self.running_var is not None
            mean, var = self.running_mean, self.running_var
        inv_std = (1 / np.sqrt(var + self.eps)).astype(x.dtype)
        xhat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
        self._cache = (xhat, inv_std, batch_stats)
        if self.weight is None or self.bias is None:
            return xhat
        return xhat * self.weight.value.reshape(shape) + self.bias.value.reshape(shape)

    def _update(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked = self.num_batches_tracked + 1
        m = 1 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        dtype = self.running_mean.dtype
        self.running_mean = ((1 - m) * self.running_mean + m * mean).astype(dtype)
        self.running_var = ((1 - m) * self.running_var + m * unbiased_var).astype(dtype)

    def backward(self, grad_out: Any) -> np.ndarray:
        need_forward(self, self._cache)
        assert self._cache is not None
        xhat, inv_std, batch_stats = self._cache
        g = host_array(self, grad_out, "grad_out")
        check_grad_shape(self, g, xhat.shape)
        axes = (0, *range(2, g.ndim))
        shape = (1, -1, *(1,) * (g.ndim - 2))
        if self.weight is not None and self.bias is not None:
            self.weight.grad += (g * xhat).sum(axis=axes)
            self.bias.grad += g.sum(axis=axes)
            g = g * self.weight.value.reshape(shape)
        if not batch_stats:  # a fixed affine map
            return g * inv_std.reshape(shape)
        # the batch's mean and variance depend on every input: d xhat / d x
        mean_g = g.mean(axis=axes).reshape(shape)
        mean_gx = (g * xhat).mean(axis=axes).reshape(shape)
        return (g - mean_g - xhat * mean_gx) * inv_std.reshape(shape)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of ``(N, C)`` or ``(N, C, L)`` (``torch.nn.BatchNorm1d``).

    >>> bn = BatchNorm1d(2)
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32)
    >>> bn(x).round(4).tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    >>> bn.running_mean.tolist(), bn.eval()(x).shape
    ([0.20000000298023224, 2.0], (2, 2))
    >>> bn
    BatchNorm1d(2, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
    """

    spatial_dims = (0, 1)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of images ``(N, C, H, W)`` per channel
    (``torch.nn.BatchNorm2d``).

    >>> bn = BatchNorm2d(3)
    >>> y = bn(np.random.default_rng(0).normal(5, 2, (8, 3, 4, 4)).astype(np.float32))
    >>> bool(abs(y.mean()) < 1e-5), bn.num_batches_tracked.item()
    (True, 1)
    """

    spatial_dims = (2,)


class BatchNorm3d(_BatchNorm):
    """Batch normalisation of volumes ``(N, C, D, H, W)`` per channel
    (``torch.nn.BatchNorm3d``).

    >>> BatchNorm3d(2).eval()(np.ones((1, 2, 2, 2, 2), dtype=np.float32)).shape
    (1, 2, 2, 2, 2)
    """

    spatial_dims = (3,)
