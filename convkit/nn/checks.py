"""Checks shared by the layers: integral arguments, parameter dtypes, and the inputs of
``forward`` and ``backward``, each error naming the argument and what was expected."""

from __future__ import annotations

from typing import Any

import numpy as np

from convkit.spec import positive_int

__all__ = [
    "check_grad_shape",
    "check_input_dtype",
    "float_dtype",
    "host_array",
    "need_forward",
    "positive_int",
]


def float_dtype(dtype: Any) -> str:
    """A layer's parameter dtype: ``"float32"`` or ``"float64"``."""
    if str(dtype) not in ("float32", "float64"):
        raise TypeError(f"dtype={dtype!r}: layers train in 'float32' or 'float64'")
    return str(dtype)


def need_forward(layer: Any, state: Any) -> None:
    """Raise when ``backward`` comes before any ``forward``."""
    if state is None:
        raise RuntimeError(
            f"{type(layer).__name__}.backward() called before forward(): there is no "
            f"input to differentiate at"
        )


def check_grad_shape(layer: Any, grad_out: Any, shape: tuple[int, ...]) -> None:
    """Raise when ``grad_out`` does not have the last output's shape."""
    if tuple(np.shape(grad_out)) != tuple(shape):
        raise ValueError(
            f"{type(layer).__name__}.backward() expects grad_out of the output's shape "
            f"{tuple(shape)}; got {tuple(np.shape(grad_out))}"
        )


def check_input_dtype(layer: Any, x: np.ndarray, dtype: np.dtype) -> None:
    """Refuse an input whose dtype is not the layer's (PyTorch's rule: no silent cast)."""
    if x.dtype != dtype:
        model = {
            "float64": " or the model (model.double())",
            "float32": " or the model (model.float())",
        }
        raise TypeError(
            f"{type(layer).__name__} has {dtype} parameters but got {x.dtype} input; "
            f"convert the input (x.astype(np.{dtype})){model.get(str(x.dtype), '')}: "
            f"layers do not cast"
        )


def host_array(layer: Any, value: Any, argument: str = "input") -> np.ndarray:
    """``value`` as a NumPy array, or a ``TypeError`` that says why it cannot be one (a
    tensor on a GPU, a tensor that requires grad): the layers of :mod:`convkit.nn` hold
    NumPy parameters and compute in host memory; GPU training and autograd are
    :mod:`convkit.nn.torch`'s.

    >>> host_array(None, [1.0, 2.0]).tolist()
    [1.0, 2.0]
    """
    try:
        return np.asarray(value)
    except Exception as exc:  # each array library refuses in its own words
        cls = type(value)
        where = f" on {value.device}" if hasattr(value, "device") else ""
        raise TypeError(
            f"{type(layer).__name__} computes on NumPy arrays in host memory; its "
            f"{argument} is a {cls.__module__}.{cls.__qualname__}{where}, which is not one "
            f"({type(exc).__name__}: {exc}). Pass a NumPy array (a tensor's "
            f".detach().cpu()), or train with the torch.nn.Modules of convkit.nn.torch, "
            f"on the GPU and in autograd"
        ) from exc
