"""SciPy's ``convolve`` and ``correlate`` on every backend: :func:`convolve`,
:func:`correlate`. The arguments become a :class:`~convkit.signalspec.SignalSpec`; the
dtype policy (integers kept exact, float16 and bool computed as SciPy does) is applied
around :func:`convkit.dispatch.run`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from convkit import checks, dispatch, dtypes, plans, selection
from convkit.algorithms import integers
from convkit.backend import Backend
from convkit.dispatch import Operand, Output
from convkit.dtypes import COMPLEX_DTYPES, FLOAT_DTYPES, INTEGER_DTYPES
from convkit.estimates import signal_costs
from convkit.planner import MethodChoice
from convkit.signalspec import METHODS, SignalSpec


def convolve(
    in1: Any,
    in2: Any,
    mode: str = "full",
    *,
    axes: int | Sequence[int] | None = None,
    method: str = "auto",
    backend: str | None = None,
    precision: str = "highest",
) -> Any:
    """N-dimensional convolution, ``(f * g)[i] = sum_a f[a] g[i - a]``, as SciPy defines it.

    Follows ``scipy.signal.convolve`` (and ``fftconvolve`` when ``axes`` is given):
    ``mode`` is ``"full"``, ``"same"`` (centred, the size of ``in1``) or ``"valid"``
    (where one input covers the other; the inputs are swapped if ``in2`` is the larger).
    With ``axes``, only those axes are convolved and the others broadcast. ``method``
    is ``"direct"``, ``"fft"`` (overlap-add when one input is much longer) or ``"auto"``
    (the lower estimated cost, and under the default backend the cheaper backend too;
    never an FFT that could lose integer exactness; see :func:`explain`). Integers stay exact on the direct method.
    The result has ``result_type(in1, in2)`` and the array type of ``in1``. Inputs may be
    bool, integer, float16/32/64 or complex, in either byte order; 0-d inputs give their
    product and an empty input an empty result, as SciPy (``docs/signal.md``).
    ``precision`` is ``"highest"`` or ``"fast"``, as for :func:`convkit.conv`.

    >>> import numpy as np, convkit as ck
    >>> ck.convolve(np.array([1, 2, 3]), np.array([0, 1, 0.5]))
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> ck.convolve(np.ones((2, 5)), np.ones((1, 3)), "valid", axes=1)
    array([[3., 3., 3.],
           [3., 3., 3.]])
    """
    return _signal(in1, in2, mode, axes, method, backend, precision, correlate=False)


def correlate(
    in1: Any,
    in2: Any,
    mode: str = "full",
    *,
    axes: int | Sequence[int] | None = None,
    method: str = "auto",
    backend: str | None = None,
    precision: str = "highest",
) -> Any:
    """N-dimensional cross-correlation, as ``scipy.signal.correlate``: the convolution of
    ``in1`` with ``in2`` reversed (along ``axes``) and conjugated. Not commutative:
    ``correlate(g, f)`` is ``correlate(f, g)`` reversed and conjugated. Arguments as
    :func:`convolve`.

    >>> import numpy as np, convkit as ck
    >>> ck.correlate(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5]))
    array([0.5, 2. , 3.5, 3. , 0. ])
    """
    return _signal(in1, in2, mode, axes, method, backend, precision, correlate=True)


def _signal(
    in1: Any,
    in2: Any,
    mode: str,
    axes: int | Sequence[int] | None,
    method: str,
    backend: str | None,
    precision: str,
    *,
    correlate: bool,
) -> Any:
    op = "correlate" if correlate else "convolve"
    host, signature, plan = plans.lookup(op, (in1, in2), (mode, axes, method, backend, precision))
    if plan is not None:
        out = plan(in1, in2)[0]
        return out[()] if out.ndim == 0 else out
    sel = selection.resolve(backend)
    ops = dispatch.operands(host, in1=in1, in2=in2)
    a, b = ops["in1"], ops["in2"]
    spec = SignalSpec.build(
        tuple(a.array.shape), tuple(b.array.shape), mode, axes, correlate=correlate
    )
    dtype = dtypes.signal_dtype(a.owner.dtype_name(a.array), b.owner.dtype_name(b.array))
    if spec.empty:  # nothing to compute: SciPy's empty result, in the caller's type
        if method not in METHODS:
            raise ValueError(
                f"method={method!r} is not a method; expected one of "
                f"{', '.join(repr(m) for m in METHODS)}"
            )
        checks.check_selection(sel)
        dispatch.check_precision(precision)
        empty = np.zeros(spec.output_shape, dtype=dtype)
        return dispatch.call(host, a.owner, "restore", empty, a.array)
    integer = dtype in INTEGER_DTYPES
    with dispatch.calling([a.array, b.array]):  # a backend of many libraries: theirs
        mags = dtypes.magnitudes(
            dtype, (a.owner.namespace(), a.array), (b.owner.namespace(), b.array)
        )

    def compute_dtype(target: Backend, choice: MethodChoice) -> str:
        """The dtype ``target`` computes in, by the method chosen; warns where SciPy
        does."""
        caps = target.capabilities
        has_f64 = "float64" in caps.dtypes
        compute = dtypes.signal_compute_dtype(dtype, has_f64)
        if integer and not spec.conv_axes:
            pass  # an elementwise product: exact in the dtype itself (wrapping, as SciPy's)
        elif integer and choice.method == "fft":
            compute = "float64"  # what the transform computes in; rounded back below
        elif mags is not None and choice.method == "direct":  # integers
            taps = math.prod(min(spec.shape1[i], spec.shape2[i]) for i in spec.conv_axes)
            if has_f64 and integers.integer_exact(*mags, taps):
                compute = "float64"  # exact there, and BLAS-fast
            elif not caps.integer_conv:
                why = "their partial sums may exceed 2**53" if has_f64 else "it has no float64"
                raise ValueError(
                    f"backend {target.name!r} cannot convolve these integers exactly: {why}; "
                    f"use backend='numpy' (exact integer arithmetic) or cast to float"
                )
        if choice.method == "fft":
            warn_non_finite([a, b])
            if compute != dtype and integer and not dtypes.fft_exact(mags, spec):
                warnings.warn(
                    f"method='fft' cannot keep these {dtype} inputs exact: their sums of "
                    f"products may reach 2**52, beyond what float64 holds exactly, so the "
                    f"result is rounded from an approximation; use method='direct' (or "
                    f"'auto', which never picks an inexact FFT) for exact integers",
                    RuntimeWarning,
                    stacklevel=5,
                )
        return compute

    def outputs(target: Backend, y: Any, computed_in: str) -> tuple[Any]:
        if computed_in != dtype:  # computed in another dtype: back to the result
            xp = target.namespace()
            # float16 is outside the array API standard: a namespace may name it only as
            # NumPy does (Dask)
            back = getattr(xp, dtype, None) or np.dtype(dtype)
            if integer or dtype == "bool":  # exact in float: round, wrap as integers do
                y = integers.round_to_integers(xp, y, back)
            else:
                y = xp.astype(y, back)
        return (y,)

    (out,) = dispatch.run(
        host,
        sel,
        [a, b],
        op="convolve",
        costs=signal_costs(spec, dtype, method, mags),
        method=method,
        cross=not integer,
        arguments=lambda arrays, choice: (*arrays, spec, choice.method),
        outputs=outputs,
        expected=[Output(spec.output_shape, dtype, "in1")],
        dtype=compute_dtype,
        signature=signature,
        # integer inputs are planned by their values' size, and the FFT warns on
        # non-finite values: those calls take the full path every time
        keep_plan=lambda choice: not integer and dtype != "bool" and choice.method != "fft",
        precision=precision,
    )
    # 0-d inputs: their product, as the array library gives a 0-d element (a NumPy
    # scalar for NumPy arrays, as SciPy and `in1 * in2` give)
    return out[()] if spec.ndim == 0 else out


def warn_non_finite(inputs: list[Operand]) -> None:
    """Warn, as SciPy does, when the FFT method gets NaN or inf: the transform spreads
    them over (nearly) every output, where the direct method keeps them local. Checked
    only for floating inputs in host memory (no device sync, no Dask compute)."""
    for operand in inputs:
        argument, owner, a = operand.argument, operand.owner, operand.array
        if owner.dtype_name(a) not in ("float16", *FLOAT_DTYPES, *COMPLEX_DTYPES):
            continue
        if not owner.in_host_memory(a):
            continue
        xp = owner.namespace()
        if not bool(xp.all(xp.isfinite(a))):
            warnings.warn(
                f"Use of fft convolution on input with NaN or inf ({argument} has some) "
                f"results in NaN or inf output far beyond those samples; consider "
                f"method='direct', which keeps them local",
                RuntimeWarning,
                stacklevel=6,
            )
            return
