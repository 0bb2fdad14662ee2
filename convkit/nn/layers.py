"""Layers around the convolutions: activation, dropout, flattening, dense, and the
:class:`Sequential` container. Each keeps its forward and backward passes side by side,
as autograd keeps a primitive beside its vector-Jacobian product."""

from __future__ import annotations

import math
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


class ReLU(Module):
    """``max(x, 0)``.

    >>> ReLU()(np.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    def __init__(self) -> None:
        self._mask: np.ndarray | None = None

    def forward(self, x: Any) -> np.ndarray:
        x = host_array(self, x)
        self._mask = x > 0
        return np.where(self._mask, x, 0).astype(x.dtype)

    def backward(self, grad_out: Any) -> np.ndarray:
        need_forward(self, self._mask)
        assert self._mask is not None
        g = host_array(self, grad_out, "grad_out")
        check_grad_shape(self, g, self._mask.shape)
        return np.where(self._mask, g, 0).astype(g.dtype)


class Flatten(Module):
    """``(N, ...)`` to ``(N, prod(...))``: ``torch.nn.Flatten()`` with its defaults.

    >>> Flatten()(np.zeros((2, 3, 4))).shape
    (2, 12)
    """

    def extra_repr(self) -> str:
        return "start_dim=1, end_dim=-1"

    def forward(self, x: Any) -> np.ndarray:
        x = host_array(self, x)
        self._shape: tuple[int, ...] | None = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out: Any) -> np.ndarray:
        shape = getattr(self, "_shape", None)
        need_forward(self, shape)
        assert shape is not None
        check_grad_shape(self, grad_out, (shape[0], math.prod(shape[1:])))
        return host_array(self, grad_out, "grad_out").reshape(shape)


class Linear(Module):
    """``y = x @ W.T + b`` with ``W`` ``(out, in)``, initialised as PyTorch does
    (uniform in ±1/√in_features).

    >>> layer = Linear(3, 2, seed=0)
    >>> layer(np.ones((4, 3), dtype=np.float32)).shape
    (4, 2)
    >>> layer
    Linear(in_features=3, out_features=2, bias=True)
    """

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
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        dtype = float_dtype(dtype)
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
        x = host_array(self, x)
        if x.ndim < 1 or x.shape[-1] != self.weight.shape[1]:
            raise ValueError(
                f"Linear expects inputs (..., {self.weight.shape[1]}); got shape {x.shape}"
            )
        check_input_dtype(self, x, self.weight.value.dtype)
        self._x = x
        y = self._x @ self.weight.value.T
        return y + self.bias.value if self.bias is not None else y

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )

    def backward(self, grad_out: Any) -> np.ndarray:
        need_forward(self, self._x)
        assert self._x is not None
        g = host_array(self, grad_out, "grad_out")
        check_grad_shape(self, g, (*self._x.shape[:-1], self.weight.shape[0]))
        self.weight.grad += g.reshape(-1, g.shape[-1]).T @ self._x.reshape(-1, self._x.shape[-1])
        if self.bias is not None:
            self.bias.grad += g.reshape(-1, g.shape[-1]).sum(axis=0)
        return g @ self.weight.value


class Dropout(Module):
    """In training mode, zero each element with probability ``p`` and scale the rest by
    ``1 / (1 - p)``; in evaluation mode, the identity (``torch.nn.Dropout``'s rule).

    >>> layer = Dropout(0.5, seed=0)
    >>> y = layer(np.ones((2, 1000), dtype=np.float32))
    >>> sorted(set(y.ravel().tolist())), round(float(y.mean()), 1)
    ([0.0, 2.0], 1.0)
    >>> layer.eval()(np.ones(3, dtype=np.float32)).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, p: float = 0.5, *, seed: int | None = None) -> None:
        if isinstance(p, bool) or not isinstance(p, int | float | np.floating) or not 0 <= p <= 1:
            raise ValueError(f"p={p!r}: a dropout probability must lie in [0, 1]")
        self.p = float(p)
        self._rng = np.random.default_rng(seed)
        self._scale: np.ndarray | None = None

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: Any) -> np.ndarray:
        x = host_array(self, x)
        if not self.training or self.p == 0:
            self._scale = np.ones((), dtype=x.dtype)
            return x
        keep = self._rng.random(x.shape) >= self.p
        factor = 0.0 if self.p == 1 else 1 / (1 - self.p)
        self._scale = (keep * factor).astype(x.dtype)
        return x * self._scale

    def backward(self, grad_out: Any) -> np.ndarray:
        need_forward(self, self._scale)
        assert self._scale is not None
        g = host_array(self, grad_out, "grad_out")
        return g * self._scale


class Sequential(Module):
    """Layers applied in order; :meth:`backward` runs them in reverse. Children are
    named by index, as in ``torch.nn.Sequential``.

    >>> model = Sequential(Linear(3, 2, seed=0), ReLU())
    >>> model
    Sequential(
      (0): Linear(in_features=3, out_features=2, bias=True)
      (1): ReLU()
    )
    >>> len(model), type(model[0]).__name__
    (2, 'Linear')
    """

    def __init__(self, *layers: Module) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(
                    f"Sequential takes convkit.nn modules; argument {i} is a {type(layer).__name__}"
                )
        self.layers = list(layers)

    def children(self) -> list[Module]:
        return self.layers

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, grad_out: Any) -> Any:
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out
