"""The dtypes convkit computes in, and the rules that pick a call's dtype.

``conv`` and its gradients compute in real and complex floating dtypes; ``convolve`` and
``correlate`` take what SciPy's do (bool, integers, float16 too) and keep integers exact
where the backend can. Dtypes are compared by NumPy name (``float64``), so byte order
never matters here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convkit.algorithms import integers
from convkit.signalspec import SignalSpec

FLOAT_DTYPES = ("float32", "float64")
COMPLEX_DTYPES = ("complex64", "complex128")
INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")

TOLERANCE = {"float32": 1e-5, "complex64": 1e-5, "float64": 1e-12, "complex128": 1e-12}
"""Largest allowed ``max|actual - expected| / max|expected|`` of a ``conv`` result per
dtype, against an exact reference: what the conformance suite holds every backend and
method to (:mod:`convkit.testing`), and what a method's rounding error must stay within
for ``auto`` to pick it."""
SIGNAL_DTYPES = ("bool", *INTEGER_DTYPES, "float16", *FLOAT_DTYPES, *COMPLEX_DTYPES)
"""The dtypes ``convolve``/``correlate`` take (SciPy's, but for long double and object)."""


def check_dtype(argument: str, name: str) -> str:
    if name not in FLOAT_DTYPES + COMPLEX_DTYPES:
        raise TypeError(
            f"{argument} has dtype {name}; convkit computes in "
            f"{', '.join(FLOAT_DTYPES + COMPLEX_DTYPES)}; cast first, e.g. "
            f"x.astype('float32')"
        )
    return name


def result_dtype(x_dtype: str, w_dtype: str) -> str:
    check_dtype("x", x_dtype)
    check_dtype("weight", w_dtype)
    return str(np.result_type(np.dtype(x_dtype), np.dtype(w_dtype)))


def signal_dtype(d1: str, d2: str) -> str:
    """The result dtype of ``convolve``/``correlate`` for inputs of dtypes ``d1`` and
    ``d2`` (NumPy names, byte order already native): their ``result_type``, as SciPy."""
    for argument, name in (("in1", d1), ("in2", d2)):
        if name not in SIGNAL_DTYPES:
            raise TypeError(
                f"{argument} has dtype {name}; convolve and correlate take bool, integer, "
                f"floating (float16, float32, float64) and complex (complex64, complex128) "
                f"arrays; cast first, e.g. {argument}.astype('float64')"
            )
    return np.result_type(np.dtype(d1), np.dtype(d2)).name


def signal_compute_dtype(dtype: str, has_f64: bool) -> str:
    """The dtype a backend computes a ``convolve`` whose result has ``dtype`` in: float16
    in float32 (rounded back, as SciPy's FFT does), bool in float64 (float32 without it;
    exact, a count of products, then nonzero is true), the others in their own dtype
    (integers may still be computed in float64 where that is exact: see ``_signal``)."""
    if dtype == "float16":
        return "float32"
    if dtype == "bool":
        return "float64" if has_f64 else "float32"
    return dtype


Magnitudes = tuple[int, int] | None
"""The largest magnitude in each input of an integer ``convolve`` (``None`` for other
dtypes): what decides whether float64 keeps it exact."""


def magnitudes(dtype: str, in1: tuple[Any, Any], in2: tuple[Any, Any]) -> Magnitudes:
    """For an integer ``dtype``, the largest magnitude of each ``(namespace, array)``
    input as a Python int (no int64 overflow at ``-2**63``), read once per call; else
    ``None``."""
    if dtype not in INTEGER_DTYPES:
        return None
    return integers.max_magnitude(*in1), integers.max_magnitude(*in2)


def fft_exact(mags: Magnitudes, spec: SignalSpec) -> bool:
    """Whether an FFT keeps integer results exact (SciPy's test: below 2**52)."""
    if mags is None:
        return True
    taps = min(math.prod(spec.shape1), math.prod(spec.shape2))
    return integers.integer_exact(*mags, taps, 2**52)
