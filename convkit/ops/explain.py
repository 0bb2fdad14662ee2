"""What a call would use, without running it: :func:`get_backend`,
:func:`list_backends`, and what ``auto`` would pick with every estimate behind the
choice (:func:`explain`, :func:`choose_conv_method`, :func:`choose_method`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from convkit import dispatch, plugins, selection
from convkit.backend import BackendInfo
from convkit.dispatch import as_array
from convkit.dtypes import INTEGER_DTYPES, magnitudes, result_dtype, signal_dtype
from convkit.estimates import conv_costs, signal_costs
from convkit.planner import MethodChoice
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec


def get_backend(backend: str | None = None) -> selection.Selection:
    """The backend a call would use now, with its options and where the choice came from.

    Pass ``backend`` to see what a call with that ``backend=`` argument resolves to.
    ``name`` is ``'auto'`` when the input's array type decides.

    >>> import convkit as ck
    >>> ck.get_backend("torch:cuda")
    Selection(name='torch', options={'device': 'cuda'}, source='argument')
    """
    sel = selection.resolve(backend)
    return sel if sel.name == selection.AUTO else selection.for_backend(sel, sel.name)


def list_backends() -> list[BackendInfo]:
    """One record per registered backend: name, availability and why not, the plugin
    and distribution that registered it, and its capabilities.

    >>> import convkit as ck
    >>> "numpy" in [b.name for b in ck.list_backends()]
    True
    """
    return plugins.host().registry.info()


def choose_conv_method(
    x: Any,
    weight: Any,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | str | Sequence[int] | Sequence[Sequence[int]] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    backend: str | None = None,
) -> MethodChoice:
    """What ``conv(..., method="auto")`` would pick for these arguments, and why.

    >>> import numpy as np, convkit as ck
    >>> ck.choose_conv_method(np.ones((1, 1, 512, 512)), np.ones((1, 1, 31, 31))).method
    'fft'
    >>> ck.choose_conv_method(np.ones((8, 16, 4096)), np.ones((16, 16, 5))).method
    'direct'
    """
    return _choose_conv(
        "conv",
        x,
        weight,
        backend,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )


def _choose_conv(op: str, x: Any, weight: Any, backend: str | None, **kwargs: Any) -> MethodChoice:
    """What ``auto`` picks for a ``conv`` (``op="conv"``) or its gradients
    (``"conv_vjp"``) with these ``conv`` arguments."""
    host = plugins.host()
    sel = selection.resolve(backend)
    ops = dispatch.operands(host, x=x, weight=weight)
    x_op, w_op = ops["x"], ops["weight"]
    spec = ConvSpec.build(tuple(x_op.array.shape), tuple(w_op.array.shape), **kwargs)
    dtype = result_dtype(x_op.owner.dtype_name(x_op.array), w_op.owner.dtype_name(w_op.array))
    inputs = [(x_op.owner, x_op.array), (w_op.owner, w_op.array)]
    costs = conv_costs(spec, dtype, op)
    return dispatch.choose(host, sel, inputs, "auto", costs, run=False)[2]


def explain(
    x: Any,
    weight: Any,
    *,
    op: str = "conv",
    dtype: str = "float32",
    backend: str | None = None,
    **kwargs: Any,
) -> MethodChoice:
    """What ``auto`` would pick for a call, and the estimated cost of every backend and
    method it considered. ``str()`` of the result is a table.

    ``x`` and ``weight`` are arrays, or shapes (NumPy arrays of ``dtype`` are assumed:
    nothing is allocated). ``op`` is ``"conv"``, ``"conv_vjp"``, ``"convolve"`` or
    ``"correlate"``; ``kwargs`` are that operation's arguments (``padding``, ``mode``,
    ``axes``, ...).

    >>> import convkit as ck
    >>> choice = ck.explain((1, 1, 2048, 2048), (1, 1, 31, 31))
    >>> choice.method
    'fft'
    >>> print(ck.explain((1, 1, 64), (1, 1, 3), backend="numpy"))  # doctest: +ELLIPSIS
    picks numpy / direct (...)
     * numpy      direct ...
    """
    x, weight = _placeholder(x, dtype), _placeholder(weight, dtype)
    if op == "conv":
        return choose_conv_method(x, weight, backend=backend, **kwargs)
    if op == "conv_vjp":
        return _choose_conv("conv_vjp", x, weight, backend, **kwargs)
    if op in ("convolve", "correlate"):
        return choose_method(x, weight, backend=backend, **kwargs)
    raise ValueError(
        f"op={op!r} is not an operation auto chooses for; expected 'conv', 'conv_vjp', "
        f"'convolve' or 'correlate'"
    )


def _placeholder(obj: Any, dtype: str) -> Any:
    """An array, or a zero-stride NumPy array of ``dtype`` standing for a shape."""
    if isinstance(obj, tuple | list) and all(isinstance(n, int) for n in obj):
        return np.broadcast_to(np.zeros((), dtype=dtype), tuple(obj))
    return as_array(obj)


def choose_method(
    in1: Any,
    in2: Any,
    mode: str = "full",
    *,
    axes: int | Sequence[int] | None = None,
    backend: str | None = None,
) -> MethodChoice:
    """What ``convolve``/``correlate`` with ``method="auto"`` would pick, and why.

    >>> import numpy as np, convkit as ck
    >>> choice = ck.choose_method(np.ones(2**16), np.ones(1025))
    >>> choice.method, choice.costs["direct"] > choice.costs["fft"]
    ('fft', True)
    """
    host = plugins.host()
    sel = selection.resolve(backend)
    ops = dispatch.operands(host, in1=in1, in2=in2)
    a, b = ops["in1"], ops["in2"]
    spec = SignalSpec.build(tuple(a.array.shape), tuple(b.array.shape), mode, axes)
    dtype = signal_dtype(a.owner.dtype_name(a.array), b.owner.dtype_name(b.array))
    with dispatch.calling([a.array, b.array]):  # a backend of many libraries: theirs
        mags = magnitudes(dtype, (a.owner.namespace(), a.array), (b.owner.namespace(), b.array))
    costs = signal_costs(spec, dtype, "auto", mags)
    cross = dtype not in INTEGER_DTYPES
    inputs = [(a.owner, a.array), (b.owner, b.array)]
    return dispatch.choose(host, sel, inputs, "auto", costs, cross, run=False)[2]
