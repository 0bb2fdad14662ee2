"""What a call would use, without running it: :func:`get_backend`,
:func:`list_backends`, and what ``auto`` would pick with every estimate behind the
choice (:func:`explain`, :func:`choose_conv_method`, :func:`choose_method`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from convkit import plugins, selection
from convkit.backend import BackendInfo
from convkit.dispatch import as_array, choose, owner_of
from convkit.dtypes import INTEGER_DTYPES, result_dtype, signal_dtype
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
    >>> ck.choose_conv_method(np.ones((8, 64, 56, 56)), np.ones((64, 64, 3, 3))).method
    'direct'
    """
    host = plugins.host()
    sel = selection.resolve(backend)
    x, weight = as_array(x), as_array(weight)
    spec = ConvSpec.build(
        tuple(x.shape),
        tuple(weight.shape),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    x_owner, w_owner = owner_of(host, x, "x"), owner_of(host, weight, "weight")
    dtype = result_dtype(x_owner.dtype_name(x), w_owner.dtype_name(weight))
    inputs = [(x_owner, x), (w_owner, weight)]
    return choose(host, sel, inputs, "auto", conv_costs(spec, dtype, "conv"), run=False)[2]


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
        host = plugins.host()
        sel = selection.resolve(backend)
        spec = ConvSpec.build(tuple(x.shape), tuple(weight.shape), **kwargs)
        x_owner, w_owner = owner_of(host, x, "x"), owner_of(host, weight, "weight")
        dtype = result_dtype(x_owner.dtype_name(x), w_owner.dtype_name(weight))
        inputs = [(x_owner, x), (w_owner, weight)]
        costs = conv_costs(spec, dtype, "conv_vjp")
        return choose(host, sel, inputs, "auto", costs, run=False)[2]
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
    a, b = as_array(in1), as_array(in2)
    a_owner, b_owner = owner_of(host, a, "in1"), owner_of(host, b, "in2")
    spec = SignalSpec.build(tuple(a.shape), tuple(b.shape), mode, axes)
    dtype = signal_dtype(a_owner.dtype_name(a), b_owner.dtype_name(b))
    costs = signal_costs(spec, dtype, "auto", a_owner, a, b_owner, b)
    cross = dtype not in INTEGER_DTYPES
    return choose(host, sel, [(a_owner, a), (b_owner, b)], "auto", costs, cross, run=False)[2]
