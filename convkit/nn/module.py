"""Parameters and the module protocol shared by every layer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from convkit.fileio import atomic_output


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

    def zero_grad(self) -> None:
        """Reset the accumulated gradient to zeros."""
        self._grad = np.zeros_like(self._value)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._value if dtype is None else self._value.astype(dtype)

    def __repr__(self) -> str:
        return f"Parameter({self.name}, shape={self.shape}, dtype={self._value.dtype})"


class Module:
    """Base of the layers: ``layer(x)`` runs :meth:`forward`, :meth:`backward` takes the
    gradient of the loss with respect to the output, accumulates the parameters'
    gradients and returns the gradient with respect to the input.

    Layers work on NumPy arrays; the convolution inside runs on the backend the layer
    (or the selection) names.
    """

    parameter_names: tuple[str, ...] = ()
    """Attributes that hold a :class:`Parameter` (or ``None`` when the layer has none)."""

    def forward(self, x: Any) -> Any:
        """Compute the output and remember what :meth:`backward` needs."""
        raise NotImplementedError

    def backward(self, grad_out: Any) -> Any:
        """Gradient with respect to the input of the last :meth:`forward`."""
        raise NotImplementedError

    def __call__(self, x: Any) -> Any:
        return self.forward(x)

    def __setattr__(self, name: str, value: Any) -> None:
        current = self.__dict__.get(name)
        if isinstance(current, Parameter) and not isinstance(value, Parameter):
            current.value = value  # checked: same shape and dtype
            return
        optional = name in self.parameter_names and name in self.__dict__
        if optional and current is None and value is not None:
            raise ValueError(
                f"{type(self).__name__} has no {name} parameter (it was built without "
                f"one); build the layer with {name}=True to have one"
            )
        object.__setattr__(self, name, value)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(name, parameter)`` pairs of this module and its children, in order."""
        for name, value in self.__dict__.items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(f"{prefix}{name}.")
        for i, child in enumerate(self.children()):
            yield from child.named_parameters(f"{prefix}{i}.")

    def children(self) -> list[Module]:
        """Sub-modules held in a sequence (``Sequential``); attributes are found anyway."""
        return []

    def parameters(self) -> list[Parameter]:
        """Every parameter, for an optimiser."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Reset every parameter's gradient."""
        for p in self.parameters():
            p.zero_grad()

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter arrays by name (copies)."""
        return {name: p.value.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Set every parameter from ``state``; names, shapes and dtypes must match."""
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise ValueError(
                f"state does not fit this module: missing {missing}, unexpected {unexpected}"
            )
        for name, p in params.items():
            p.value = state[name]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the parameters to an ``.npz`` file, atomically: the file appears only
        complete, and a failure leaves any previous file untouched."""
        with atomic_output(path) as f:
            np.savez(f, **self.state_dict())  # type: ignore[arg-type]

    def load(self, path: str | os.PathLike[str]) -> None:
        """Read parameters written by :meth:`save`."""
        with np.load(path) as data:
            self.load_state_dict({k: data[k] for k in data.files})
