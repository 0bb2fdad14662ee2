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
