"""The public operations: validate, resolve the backend, convert once, dispatch, check.

Every operation follows the same path: the arguments become a
:class:`~convkit.spec.ConvSpec` (all errors are raised here, naming the argument), the
backend is resolved with its source (:mod:`convkit.selection`), the arrays are converted
to the backend's type once, the backend computes, the core checks the result's shape and
dtype, and the result goes back to the caller's array type and device.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np

from convkit import plugins, selection
from convkit.backend import COMPLEX_DTYPES, FLOAT_DTYPES, Backend, BackendInfo
from convkit.spec import ConvSpec


class BackendUnavailableError(RuntimeError):
    """The selected backend is registered but cannot run here (a dependency is missing)."""


def get_backend(backend: str | None = None) -> selection.Selection:
    """The backend a call would use now, with its options and where the choice came from.

    Pass ``backend`` to see what a call with that ``backend=`` argument resolves to.
    ``name`` is ``'auto'`` when the input's array type decides.

    >>> import convkit as ck
    >>> ck.get_backend("torch:cuda")
    Selection(name='torch', options={'device': 'cuda'}, source='argument')
    """
    return selection.resolve(backend)


def list_backends() -> list[BackendInfo]:
    """One record per registered backend: name, availability and why not, the plugin
    and distribution that registered it, and its capabilities.

    >>> import convkit as ck
    >>> "numpy" in [b.name for b in ck.list_backends()]
    True
    """
    return plugins.host().registry.info()


def conv(
    x: Any,
    weight: Any,
    bias: Any | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | str | Sequence[int] | Sequence[Sequence[int]] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    backend: str | None = None,
) -> Any:
    """The convolutional layer's operation (a cross-correlation) over any number of
    spatial dimensions.

    ``x`` is ``(N, C_in, *S)`` or unbatched ``(C_in, *S)``, ``weight`` is
    ``(C_out, C_in // groups, *K)`` and ``bias`` ``(C_out,)`` or ``None``; then::

        y[n, o, i] = bias[o] + sum_{c, a} weight[o, c, a] * xpad[n, g*Cg + c, i*stride + a*dilation]

    with ``g`` the group of output channel ``o``. ``stride`` and ``dilation`` are ints
    or one per spatial dimension. ``padding`` is an int, one int per dimension, one
    ``(low, high)`` pair per dimension, ``"valid"`` or ``"same"`` (output size
    ``ceil(S / stride)``, odd extra padding on the high side). ``padding_mode`` is one of
    ``zeros``, ``reflect``, ``symmetric``, ``replicate``, ``circular`` (see
    :mod:`convkit.padding`). The result has the dtype ``result_type(x, weight)`` and
    comes back in the type (and on the device) of ``x``.

    >>> import numpy as np, convkit as ck
    >>> x = np.arange(5.0).reshape(1, 5)          # unbatched: 1 channel, 5 samples
    >>> w = np.array([[[1.0, 0.0, -1.0]]])        # 1 -> 1 channel, 3 taps
    >>> ck.conv(x, w, padding="same", padding_mode="replicate")
    array([[-1., -2., -2., -2., -1.]])
    """
    host = plugins.host()
    sel = selection.resolve(backend)
    x = _as_array(x)
    weight = _as_array(weight)
    bias = None if bias is None else _as_array(bias)
    x_owner = _owner(host, x, "x")
    w_owner = _owner(host, weight, "weight")
    b_owner = None if bias is None else _owner(host, bias, "bias")

    x_shape, w_shape = tuple(x.shape), tuple(weight.shape)
    batched = len(x_shape) != len(w_shape) - 1  # a wrong ndim is reported by build()
    spec = ConvSpec.build(
        x_shape,
        w_shape,
        None if bias is None else tuple(bias.shape),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    dtype = _result_dtype(x_owner.dtype_name(x), w_owner.dtype_name(weight))
    if bias is not None and b_owner is not None:
        bias_dtype = _check_dtype("bias", b_owner.dtype_name(bias))
        if not np.can_cast(bias_dtype, dtype, casting="same_kind"):
            raise TypeError(
                f"bias has dtype {bias_dtype}, which cannot be cast to the result dtype "
                f"{dtype} of x and weight"
            )

    target = _backend(host, sel, x_owner)
    _check_capabilities(target, sel, spec, dtype)

    xb = _to_backend(target, x_owner, x, dtype, sel.options)
    wb = _to_backend(target, w_owner, weight, dtype, sel.options)
    bb = None
    if bias is not None and b_owner is not None:
        bb = _to_backend(target, b_owner, bias, dtype, sel.options)
    if not batched:
        xb = xb[None]
    y = target.conv(xb, wb, bb, spec, sel.options)
    if tuple(y.shape) != spec.output_shape or target.dtype_name(y) != dtype:
        raise RuntimeError(
            f"backend {target.name!r} returned shape {tuple(y.shape)} and dtype "
            f"{target.dtype_name(y)}; expected {spec.output_shape} and {dtype}. This is "
            f"a bug in the backend."
        )
    if not batched:
        y = y[0]
    if x_owner is target:
        return x_owner.restore(y, like=x)
    return x_owner.restore(target.to_numpy(y), like=x)


# -- helpers shared by the operations ------------------------------------------------


def _as_array(obj: Any) -> Any:
    """Arrays pass through; lists, tuples and scalars become NumPy arrays."""
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return obj
    return np.asarray(obj)


def _owner(host: plugins.PluginHost, obj: Any, argument: str) -> Backend:
    registry = host.registry
    for name in registry.names():
        candidate = registry.get(name)
        if candidate is not None and candidate.owns(obj):
            return candidate
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    raise TypeError(
        f"{argument} is a {kind}, which no registered backend handles; registered "
        f"backends: {', '.join(registry.names()) or '(none)'}"
    )


def _check_dtype(argument: str, name: str) -> str:
    if name not in FLOAT_DTYPES + COMPLEX_DTYPES:
        raise TypeError(
            f"{argument} has dtype {name}; convkit computes in "
            f"{', '.join(FLOAT_DTYPES + COMPLEX_DTYPES)} (cast integer data first, e.g. "
            f"x.astype('float32'))"
        )
    return name


def _result_dtype(x_dtype: str, w_dtype: str) -> str:
    _check_dtype("x", x_dtype)
    _check_dtype("weight", w_dtype)
    return str(np.result_type(np.dtype(x_dtype), np.dtype(w_dtype)))


def _backend(host: plugins.PluginHost, sel: selection.Selection, owner: Backend) -> Backend:
    """The backend object for a selection; ``auto`` means the input's owner."""
    if sel.name == selection.AUTO:
        return _check_available(owner)
    return _check_available(_registered(host, sel), sel.source)


def _registered(host: plugins.PluginHost, sel: selection.Selection) -> Backend:
    """The registered backend a (non-auto) selection names, or a ValueError."""
    registry = host.registry
    found = registry.get(sel.name)
    if found is None:
        names = registry.names()
        close = difflib.get_close_matches(sel.name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        broken = [f.plugin for f in host.failures]
        note = f" (plugins that failed to load: {', '.join(broken)})" if broken else ""
        raise ValueError(
            f"unknown backend {sel.name!r} (from {sel.source}); registered backends: "
            f"{', '.join(names) or '(none)'}{hint}{note}"
        )
    return found


def check_selection(sel: selection.Selection) -> None:
    """Raise the error a call would raise for this selection (unknown or unavailable
    backend, unusable options), or return ``None``."""
    if sel.name == selection.AUTO:
        return
    backend = _check_available(_registered(plugins.host(), sel), sel.source)
    unknown = sorted(set(sel.options) - set(backend.capabilities.options))
    if unknown:
        raise ValueError(f"backend {backend.name!r} does not take option(s) {', '.join(unknown)}")
    backend.check_options(sel.options)


def _check_available(backend: Backend, source: str | None = None) -> Backend:
    reason = plugins._unavailable_reason(backend)
    if reason is not None:
        origin = f" (selected by {source})" if source else ""
        raise BackendUnavailableError(
            f"backend {backend.name!r}{origin} is not available: {reason}"
        )
    return backend


def _check_capabilities(
    backend: Backend, sel: selection.Selection, spec: ConvSpec, dtype: str
) -> None:
    caps = backend.capabilities
    name = backend.name
    if not caps.supports_ndim(spec.ndim):
        raise ValueError(
            f"backend {name!r} supports {caps.describe_ndim()} spatial dimensions; this "
            f"call has {spec.ndim}"
        )
    if dtype not in caps.dtypes:
        raise TypeError(
            f"backend {name!r} does not support dtype {dtype}; it supports {', '.join(caps.dtypes)}"
        )
    if spec.groups > 1 and not caps.groups:
        raise ValueError(f"backend {name!r} does not support groups > 1")
    if any(d > 1 for d in spec.dilation) and not caps.dilation:
        raise ValueError(f"backend {name!r} does not support dilation > 1")
    if spec.padding_mode not in caps.padding_modes and spec.has_padding:
        raise ValueError(
            f"backend {name!r} does not support padding_mode={spec.padding_mode!r}; it "
            f"supports {', '.join(caps.padding_modes)}"
        )
    unknown = sorted(set(sel.options) - set(caps.options))
    if unknown:
        raise ValueError(
            f"backend {name!r} does not take option(s) {', '.join(unknown)} (from "
            f"{sel.source}); it takes {', '.join(caps.options) or 'no options'}"
        )
    backend.check_options(sel.options)


def _to_backend(target: Backend, owner: Backend, obj: Any, dtype: str, options: Any) -> Any:
    if owner is target:
        return target.asarray(obj, dtype, options)
    return target.asarray(owner.to_numpy(obj), dtype, options)
