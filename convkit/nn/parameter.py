"""A trainable array with its gradient, and conversion of other arrays to NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np


class Parameter:
    """A trainable array and its accumulated gradient.

    ``value`` can be replaced by an array of the same shape and dtype; ``grad`` holds the
    sum of the gradients since the last :meth:`zero_grad`.

    >>> p = Parameter(np.zeros(3, dtype=np.float32))
    >>> p.value = np.ones(3, dtype=np.float32)
    >>> p.value.tolist(), p.grad.tolist()
    ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    """

    def __init__(self, value: np.ndarray, name: str = "parameter") -> None:
        self.name = name
        self._value = np.array(value)
        self._grad = np.zeros_like(self._value)

    @property
    def value(self) -> np.ndarray:
        """The parameter's array."""
        return self._value

    @value.setter
    def value(self, new: Any) -> None:
        new = np.asarray(new)
        if new.shape != self._value.shape or new.dtype != self._value.dtype:
            raise ValueError(
                f"{self.name} must be an array of shape {self._value.shape} and dtype "
                f"{self._value.dtype}; got shape {new.shape} and dtype {new.dtype}"
            )
        self._value = np.array(new)

    @property
    def grad(self) -> np.ndarray:
        """The accumulated gradient, of the parameter's shape and dtype."""
        return self._grad

    @grad.setter
    def grad(self, new: Any) -> None:
        new = np.asarray(new)
        if new.shape != self._value.shape:
            raise ValueError(
                f"the gradient of {self.name} must have shape {self._value.shape}; got {new.shape}"
            )
        self._grad = new.astype(self._value.dtype, copy=True)

    @property
    def shape(self) -> tuple[int, ...]:
        """The parameter's shape."""
        return tuple(self._value.shape)

    @property
    def size(self) -> int:
        """The number of elements."""
        return int(self._value.size)

    def zero_grad(self) -> None:
        """Reset the accumulated gradient to zeros."""
        self._grad = np.zeros_like(self._value)

    def astype(self, dtype: Any) -> None:
        """Convert the value (and reset the gradient) to ``dtype``, in place."""
        self._value = self._value.astype(dtype)
        self._grad = np.zeros_like(self._value)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._value if dtype is None else self._value.astype(dtype)

    def __repr__(self) -> str:
        return f"Parameter({self.name}, shape={self.shape}, dtype={self._value.dtype})"


def to_numpy(value: Any) -> np.ndarray:
    """A NumPy array from a NumPy array, a torch tensor (any device, grad or not) or
    anything :func:`numpy.asarray` takes.

    >>> to_numpy([1, 2]).tolist()
    [1, 2]
    """
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: widen exactly
            value = value.float()
        value = value.numpy()
    return np.asarray(value)
