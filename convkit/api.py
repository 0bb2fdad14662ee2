"""The public operations: validate, resolve the backend, convert once, dispatch, check.

Every operation follows the same path: the arguments become a
:class:`~convkit.spec.ConvSpec` (all errors are raised here, naming the argument), the
backend is resolved with its source (:mod:`convkit.selection`), the arrays are converted
to the backend's type once, the backend computes, the core checks the result's shape and
dtype, and the result goes back to the caller's array type and device.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from convkit import calibration, planner, plugins, selection, threads, xpsignal
from convkit.backend import COMPLEX_DTYPES, FLOAT_DTYPES, Backend, BackendInfo
from convkit.planner import MethodChoice
from convkit.signalspec import METHODS, SignalSpec
from convkit.spec import ConvSpec, explicit_padding, per_dim

INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
SIGNAL_DTYPES = ("bool", *INTEGER_DTYPES, "float16", *FLOAT_DTYPES, *COMPLEX_DTYPES)
"""The dtypes ``convolve``/``correlate`` take (SciPy's, but for long double and object)."""


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
    method: str = "auto",
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
    :mod:`convkit.padding`). ``method`` is ``"direct"``, ``"fft"`` (transform input and
    weights, sum the channels per frequency, invert; fast for large kernels) or
    ``"auto"``, which picks the cheaper by the backend's cost model; under the default
    backend ``"auto"`` the backend is chosen the same way (:func:`explain` shows the
    estimates). The result has the dtype
    ``result_type(x, weight)`` and comes back in the type (and on the device) of ``x``.

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

    inputs = [(x_owner, x), (w_owner, weight)]
    if bias is not None and b_owner is not None:
        inputs.append((b_owner, bias))
    target, sel, choice = _choose(host, sel, inputs, method, _conv_costs(spec, dtype, "conv"))
    spec = dataclasses.replace(spec, method=choice.method)

    xb = _to_backend(target, x_owner, x, dtype, sel.options)
    wb = _to_backend(target, w_owner, weight, dtype, sel.options)
    bb = None
    if bias is not None and b_owner is not None:
        bb = _to_backend(target, b_owner, bias, dtype, sel.options)
    if not batched:
        xb = xb[None]
    y = _compute(host, target, sel, "conv", xb, wb, bb, spec, sel.options)
    _check_result(host, target, y, spec.output_shape, dtype, "its result")
    if not batched:
        y = y[0]
    return _back(target, x_owner, y, x)


def conv_vjp(
    x: Any,
    weight: Any,
    grad_out: Any,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | str | Sequence[int] | Sequence[Sequence[int]] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    bias: bool = True,
    backend: str | None = None,
) -> tuple[Any, Any, Any | None]:
    """Gradients of :func:`conv`: ``(grad_x, grad_weight, grad_bias)`` for ``grad_out``.

    The arguments are those of the forward call; ``grad_out`` has the forward output's
    shape. The input gradient is a transposed convolution folded back through the
    padding (border gradients go to the samples the padding copied), the weight gradient
    a correlation of the padded input with ``grad_out`` — both computed by the backend's
    own forward ``conv``, unless the backend brings a native backward (torch autograd).
    ``grad_bias`` is ``None`` when ``bias=False``. Real dtypes only.

    >>> import numpy as np, convkit as ck
    >>> x, w = np.arange(5.0).reshape(1, 1, 5), np.array([[[1.0, -1.0]]])
    >>> gx, gw, gb = ck.conv_vjp(x, w, np.ones((1, 1, 4)))
    >>> gx.tolist(), gw.tolist(), gb.tolist()
    ([[[1.0, 0.0, 0.0, 0.0, -1.0]]], [[[6.0, 10.0]]], [4.0])
    """
    host = plugins.host()
    sel = selection.resolve(backend)
    x, weight, grad_out = _as_array(x), _as_array(weight), _as_array(grad_out)
    x_owner, w_owner = _owner(host, x, "x"), _owner(host, weight, "weight")
    g_owner = _owner(host, grad_out, "grad_out")
    batched = len(x.shape) != len(weight.shape) - 1
    spec = ConvSpec.build(
        tuple(x.shape),
        tuple(weight.shape),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    expected = spec.output_shape if batched else spec.output_shape[1:]
    if tuple(grad_out.shape) != expected:
        raise ValueError(
            f"grad_out must have the forward output's shape {expected}; got "
            f"grad_out.shape={tuple(grad_out.shape)}"
        )
    dtype = _result_dtype(x_owner.dtype_name(x), w_owner.dtype_name(weight))
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"conv_vjp computes real gradients; x and weight have dtype {dtype}")
    _check_dtype("grad_out", g_owner.dtype_name(grad_out))
    inputs = [(x_owner, x), (w_owner, weight), (g_owner, grad_out)]
    target, sel, _ = _choose(host, sel, inputs, "auto", _conv_costs(spec, dtype, "conv_vjp"))
    xb = _to_backend(target, x_owner, x, dtype, sel.options)
    wb = _to_backend(target, w_owner, weight, dtype, sel.options)
    gb = _to_backend(target, g_owner, grad_out, dtype, sel.options)
    if not batched:
        xb, gb = xb[None], gb[None]
    grad_x, grad_w, grad_b = _compute(
        host, target, sel, "conv_vjp", xb, wb, gb, spec, bias, sel.options
    )
    if not batched:
        grad_x = grad_x[0]
    _check_result(host, target, grad_x, tuple(x.shape), dtype, "grad_x")
    _check_result(host, target, grad_w, spec.weight_shape, dtype, "grad_weight")
    if grad_b is not None:
        _check_result(host, target, grad_b, (spec.out_channels,), dtype, "grad_bias")
    return (
        _back(target, x_owner, grad_x, x),
        _back(target, w_owner, grad_w, weight),
        None if grad_b is None else _back(target, w_owner, grad_b, weight),
    )


def conv_transpose(
    x: Any,
    weight: Any,
    bias: Any | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | Sequence[Sequence[int]] = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    backend: str | None = None,
) -> Any:
    """Transposed convolution, the adjoint of :func:`conv` with respect to its input, as
    ``torch.nn.functional.conv_transpose1d/2d/3d`` defines it, for any number of
    spatial dimensions.

    ``x`` is ``(N, C_in, *S)`` or unbatched; ``weight`` is ``(C_in, C_out // groups,
    *K)``. The output has ``(S - 1) * stride - pad_low - pad_high + dilation * (K - 1) +
    output_padding + 1`` positions per dimension; ``output_padding`` (each below
    ``max(stride, dilation)``) picks among the sizes a strided ``conv`` maps to ``S``.

    >>> import numpy as np, convkit as ck
    >>> ck.conv_transpose(np.ones((1, 1, 3)), np.array([[[1.0, 2.0]]]), stride=2)
    array([[[1., 2., 1., 2., 1., 2.]]])
    """
    host = plugins.host()
    sel = selection.resolve(backend)
    x, weight = _as_array(x), _as_array(weight)
    bias = None if bias is None else _as_array(bias)
    x_owner, w_owner = _owner(host, x, "x"), _owner(host, weight, "weight")
    b_owner = None if bias is None else _owner(host, bias, "bias")
    w_shape = tuple(weight.shape)
    if len(w_shape) < 3:
        raise ValueError(
            f"weight must have shape (C_in, C_out // groups, *kernel_size); got "
            f"weight.shape={w_shape}"
        )
    d = len(w_shape) - 2
    batched = len(x.shape) != d + 1
    x_shape = tuple(x.shape) if batched else (1, *x.shape)
    if len(x_shape) != d + 2:
        raise ValueError(
            f"x has {len(x.shape)} dimensions but weight.shape={w_shape} has {d} spatial "
            f"dimension(s); expected (N, C_in, *S) or (C_in, *S)"
        )
    if x_shape[1] != w_shape[0]:
        raise ValueError(
            f"x has C_in={x_shape[1]} channels (x.shape={tuple(x.shape)}) but weight.shape="
            f"{w_shape} expects C_in={w_shape[0]}"
        )
    if not isinstance(groups, int) or groups < 1 or x_shape[1] % groups:
        raise ValueError(
            f"groups={groups!r} must be a positive divisor of C_in={x_shape[1]} (the "
            f"channels of x); the output gets C_out = weight.shape[1] * groups channels"
        )
    if isinstance(padding, str):
        raise ValueError(
            f"padding={padding!r}: conv_transpose takes an int, one int per dimension or "
            f"(low, high) pairs, as the conv it is the adjoint of"
        )
    strides = per_dim("stride", stride, d)
    dilations = per_dim("dilation", dilation, d)
    pads = explicit_padding(padding, d)
    out_pad = per_dim("output_padding", output_padding, d, minimum=0)
    size = []
    for i, (s_in, k, st, dl, (lo, hi), op) in enumerate(
        zip(x_shape[2:], w_shape[2:], strides, dilations, pads, out_pad, strict=True)
    ):
        if op >= max(st, dl):
            raise ValueError(
                f"output_padding must be smaller than max(stride, dilation) in every "
                f"dimension; got output_padding={output_padding!r} with stride="
                f"{stride!r}, dilation={dilation!r} (dimension {i})"
            )
        n = (s_in - 1) * st - lo - hi + (k - 1) * dl + 1 + op
        if n < 1:
            raise ValueError(
                f"conv_transpose would produce {n} positions in spatial dimension {i} "
                f"(x.shape={tuple(x.shape)}, padding={padding!r}); expected at least 1"
            )
        size.append(n)
    spec = ConvSpec.build(
        (x_shape[0], w_shape[1] * groups, *size),
        w_shape,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
    if bias is not None and tuple(bias.shape) != (spec.in_channels,):
        raise ValueError(
            f"bias must have shape (C_out,) = ({spec.in_channels},); got bias.shape="
            f"{tuple(bias.shape)}"
        )
    dtype = _result_dtype(x_owner.dtype_name(x), w_owner.dtype_name(weight))
    inputs = [(x_owner, x), (w_owner, weight)]
    if bias is not None and b_owner is not None:
        inputs.append((b_owner, bias))
    target, sel, _ = _choose(host, sel, inputs, "auto", _conv_costs(spec, dtype, "transpose"))
    xb = _to_backend(target, x_owner, x, dtype, sel.options)
    wb = _to_backend(target, w_owner, weight, dtype, sel.options)
    bb = None
    if bias is not None and b_owner is not None:
        bb = _to_backend(target, b_owner, bias, dtype, sel.options)
    if not batched:
        xb = xb[None]
    y = _compute(host, target, sel, "conv_transpose", xb, wb, bb, spec, sel.options)
    if not batched:
        y = y[0]
    shape = (spec.batch, spec.in_channels, *size)
    _check_result(host, target, y, shape if batched else shape[1:], dtype, "its result")
    return _back(target, x_owner, y, x)


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
    x, weight = _as_array(x), _as_array(weight)
    spec = ConvSpec.build(
        tuple(x.shape),
        tuple(weight.shape),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    x_owner, w_owner = _owner(host, x, "x"), _owner(host, weight, "weight")
    dtype = _result_dtype(x_owner.dtype_name(x), w_owner.dtype_name(weight))
    inputs = [(x_owner, x), (w_owner, weight)]
    return _choose(host, sel, inputs, "auto", _conv_costs(spec, dtype, "conv"), run=False)[2]


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
        x_owner, w_owner = _owner(host, x, "x"), _owner(host, weight, "weight")
        dtype = _result_dtype(x_owner.dtype_name(x), w_owner.dtype_name(weight))
        inputs = [(x_owner, x), (w_owner, weight)]
        costs = _conv_costs(spec, dtype, "conv_vjp")
        return _choose(host, sel, inputs, "auto", costs, run=False)[2]
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
    return _as_array(obj)


def _conv_costs(spec: ConvSpec, dtype: str, op: str) -> planner.MethodCosts:
    """The estimates of a ``conv`` (``op="conv"``), its gradients (``"conv_vjp"``) or
    its adjoint (``"transpose"``) on one candidate backend, after checking that the
    backend supports the call."""

    def costs(target: Backend, sel: selection.Selection) -> tuple[dict[str, float], str]:
        _check_capabilities(target, sel, spec, dtype)
        model, calibrated = calibration.lookup(target, sel.options)
        model = model.for_dtype(dtype)
        note = _rates_note(calibrated)
        if op == "conv_vjp":
            return {"auto": model.conv_vjp(spec)}, note
        direct, fft = model.conv_direct(spec), model.conv_fft(spec)
        if op == "transpose":
            return {"auto": min(direct, fft)}, note
        return {"direct": direct, "fft": fft}, note

    return costs


def _rates_note(calibrated: bool) -> str:
    return "calibrated rates" if calibrated else "built-in rates"


def _choose(
    host: plugins.PluginHost,
    sel: selection.Selection,
    inputs: list[tuple[Backend, Any]],
    method: str,
    method_costs: planner.MethodCosts,
    cross: bool = True,
    run: bool = True,
) -> tuple[Backend, selection.Selection, MethodChoice]:
    """The backend, its selection and the method a call runs with: the selected
    backend, or for ``auto`` the cheapest candidate (:mod:`convkit.planner`); ``cross``
    lets ``auto`` look beyond the input's owner. When the call will ``run``, the thread
    setting is applied to the backend."""
    if method not in METHODS:
        raise ValueError(
            f"method={method!r} is not a method; expected one of "
            f"{', '.join(repr(m) for m in METHODS)}"
        )
    owner = inputs[0][0]
    if sel.name == selection.AUTO:
        host_inputs = cross and all(o.in_host_memory(a) for o, a in inputs)
        backends = planner.candidates(host, sel, _check_available(owner), host_inputs)
        for candidate in backends:  # a bad option in a backend's own table is an error
            bsel = selection.for_backend(sel, candidate.name)
            own = {k: v for k, v in bsel.options.items() if k not in sel.options}
            if own:
                _check_options(candidate, selection.Selection(candidate.name, own, bsel.source))
    else:
        backends = [_check_available(_registered(host, sel), sel.source)]
    device = owner.device_of(inputs[0][1])

    def on_input_device(
        backend: Backend, bsel: selection.Selection
    ) -> tuple[dict[str, float], str]:
        """Estimates for the owner on the input's own device (a CUDA tensor is
        estimated with CUDA rates even when no ``device`` was given)."""
        if backend is owner and device != "cpu" and "device" not in bsel.options:
            bsel = selection.Selection(bsel.name, {**bsel.options, "device": device}, bsel.source)
        return method_costs(backend, bsel)

    target, sel_target, choice = planner.plan(backends, sel, method, on_input_device, owner)
    while run and target is not owner and planner.unavailable_reason(target) is not None:
        # auto weighed it from its installed files; its libraries do not load together
        backends = [b for b in backends if b is not target]
        target, sel_target, choice = planner.plan(backends, sel, method, on_input_device, owner)
    return target, sel_target, choice


def convolve(
    in1: Any,
    in2: Any,
    mode: str = "full",
    *,
    axes: int | Sequence[int] | None = None,
    method: str = "auto",
    backend: str | None = None,
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

    >>> import numpy as np, convkit as ck
    >>> ck.convolve(np.array([1, 2, 3]), np.array([0, 1, 0.5]))
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> ck.convolve(np.ones((2, 5)), np.ones((1, 3)), "valid", axes=1)
    array([[3., 3., 3.],
           [3., 3., 3.]])
    """
    return _signal(in1, in2, mode, axes, method, backend, correlate=False)


def correlate(
    in1: Any,
    in2: Any,
    mode: str = "full",
    *,
    axes: int | Sequence[int] | None = None,
    method: str = "auto",
    backend: str | None = None,
) -> Any:
    """N-dimensional cross-correlation, as ``scipy.signal.correlate``: the convolution of
    ``in1`` with ``in2`` reversed (along ``axes``) and conjugated. Not commutative:
    ``correlate(g, f)`` is ``correlate(f, g)`` reversed and conjugated. Arguments as
    :func:`convolve`.

    >>> import numpy as np, convkit as ck
    >>> ck.correlate(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5]))
    array([0.5, 2. , 3.5, 3. , 0. ])
    """
    return _signal(in1, in2, mode, axes, method, backend, correlate=True)


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
    a, b = _as_array(in1), _as_array(in2)
    a_owner, b_owner = _owner(host, a, "in1"), _owner(host, b, "in2")
    spec = SignalSpec.build(tuple(a.shape), tuple(b.shape), mode, axes)
    dtype = _signal_dtype(a_owner.dtype_name(a), b_owner.dtype_name(b))
    costs = _signal_costs(spec, dtype, "auto", a_owner, a, b_owner, b)
    cross = dtype not in INTEGER_DTYPES
    return _choose(host, sel, [(a_owner, a), (b_owner, b)], "auto", costs, cross, run=False)[2]


def _signal_costs(
    spec: SignalSpec, dtype: str, method: str, a_owner: Backend, a: Any, b_owner: Backend, b: Any
) -> planner.MethodCosts:
    """The estimates of a ``convolve``/``correlate`` on one candidate backend, after
    checking that it supports the call."""
    exact: list[bool] = []  # computed once: it reads the inputs

    def costs(target: Backend, sel: selection.Selection) -> tuple[dict[str, float], str]:
        caps = target.capabilities
        has_f64 = "float64" in caps.dtypes
        compute = _signal_compute_dtype(dtype, has_f64)
        if compute not in caps.dtypes and compute not in INTEGER_DTYPES:
            via = f" (computed in {compute})" if compute != dtype else ""
            raise TypeError(
                f"backend {target.name!r} does not support dtype {dtype}{via}; it supports "
                f"{', '.join(caps.dtypes)}"
            )
        _check_options(target, sel)
        if dtype in INTEGER_DTYPES and method == "fft" and not has_f64:
            raise ValueError(
                f"backend {target.name!r} has no float64, so its FFT cannot keep integers "
                f"exact; use method='direct' or cast to float"
            )
        if not exact:
            exact.append(_fft_exact(a_owner, a, b_owner, b, spec, dtype))
        choice = _signal_method(target, spec, method, compute, has_f64 and exact[0], sel.options)
        if choice.reason not in ("lowest estimated cost", "requested"):
            return choice.costs, choice.reason
        return choice.costs, _rates_note(calibration.is_calibrated(target, sel.options))

    return costs


def _signal_dtype(d1: str, d2: str) -> str:
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


def _signal_compute_dtype(dtype: str, has_f64: bool) -> str:
    """The dtype a backend computes a ``convolve`` whose result has ``dtype`` in: float16
    in float32 (rounded back, as SciPy's FFT does), bool in float64 (float32 without it;
    exact, a count of products, then nonzero is true), the others in their own dtype
    (integers may still be computed in float64 where that is exact: see ``_signal``)."""
    if dtype == "float16":
        return "float32"
    if dtype == "bool":
        return "float64" if has_f64 else "float32"
    return dtype


def _max_abs(owner: Backend, a: Any) -> int:
    """The largest magnitude in an integer array, as a Python int (no int64 overflow)."""
    return xpsignal.max_magnitude(owner.namespace(), a)


def _warn_non_finite(inputs: list[tuple[str, Backend, Any]]) -> None:
    """Warn, as SciPy does, when the FFT method gets NaN or inf: the transform spreads
    them over (nearly) every output, where the direct method keeps them local. Checked
    only for floating inputs in host memory (no device sync, no Dask compute)."""
    for argument, owner, a in inputs:
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
                stacklevel=4,
            )
            return


def _fft_exact(
    a_owner: Backend, a: Any, b_owner: Backend, b: Any, spec: SignalSpec, dtype: str
) -> bool:
    """Whether an FFT keeps integer results exact (SciPy's test: below 2**52)."""
    if dtype not in INTEGER_DTYPES:
        return True
    taps = min(math.prod(spec.shape1), math.prod(spec.shape2))
    return xpsignal.integer_exact(_max_abs(a_owner, a), _max_abs(b_owner, b), taps, 2**52)


def _signal_method(
    target: Backend,
    spec: SignalSpec,
    method: str,
    dtype: str,
    fft_exact: bool,
    options: Any,
) -> MethodChoice:
    if method not in METHODS:
        raise ValueError(
            f"method={method!r} is not a method; expected one of "
            f"{', '.join(repr(m) for m in METHODS)}"
        )
    model = calibration.lookup(target, options)[0].for_dtype(dtype)
    costs = {
        "direct": model.convolve_direct(spec),
        "fft": model.convolve_fft(spec, xpsignal.oa_blocks(spec)),
    }
    if method == "direct" and not target.capabilities.supports_ndim(max(1, len(spec.conv_axes))):
        raise ValueError(
            f"method='direct' on backend {target.name!r} needs a {len(spec.conv_axes)}-d conv; "
            f"it supports {target.capabilities.describe_ndim()} spatial dimensions (use "
            f"method='fft' or 'auto')"
        )
    if method != "auto":
        return MethodChoice(method, target.name, costs, "requested")
    if not fft_exact:
        costs["fft"] = math.inf
        return MethodChoice(
            "direct", target.name, costs, "integer inputs too large for an exact FFT"
        )
    if not target.capabilities.supports_ndim(max(1, len(spec.conv_axes))):
        costs["direct"] = math.inf
        return MethodChoice(
            "fft",
            target.name,
            costs,
            f"the direct method would need {len(spec.conv_axes)}-d conv, which the backend "
            f"does not declare",
        )
    best = min(costs, key=costs.__getitem__)
    return MethodChoice(best, target.name, costs, "lowest estimated cost")


def _signal(
    in1: Any,
    in2: Any,
    mode: str,
    axes: int | Sequence[int] | None,
    method: str,
    backend: str | None,
    *,
    correlate: bool,
) -> Any:
    host = plugins.host()
    sel = selection.resolve(backend)
    a, b = _as_array(in1), _as_array(in2)
    a_owner, b_owner = _owner(host, a, "in1"), _owner(host, b, "in2")
    spec = SignalSpec.build(tuple(a.shape), tuple(b.shape), mode, axes, correlate=correlate)
    dtype = _signal_dtype(a_owner.dtype_name(a), b_owner.dtype_name(b))
    if spec.empty:  # nothing to compute: SciPy's empty result, in the caller's type
        if method not in METHODS:
            raise ValueError(
                f"method={method!r} is not a method; expected one of "
                f"{', '.join(repr(m) for m in METHODS)}"
            )
        check_selection(sel)
        return _call(host, a_owner, "restore", np.zeros(spec.output_shape, dtype=dtype), a)
    integer = dtype in INTEGER_DTYPES
    costs = _signal_costs(spec, dtype, method, a_owner, a, b_owner, b)
    target, sel, choice = _choose(
        host, sel, [(a_owner, a), (b_owner, b)], method, costs, not integer
    )
    caps = target.capabilities
    has_f64 = "float64" in caps.dtypes
    compute = _signal_compute_dtype(dtype, has_f64)
    if integer and not spec.conv_axes:
        pass  # an elementwise product: exact in the dtype itself (wrapping, as SciPy's)
    elif integer and choice.method == "fft":
        compute = "float64"  # what the transform computes in; rounded back below
    elif integer and choice.method == "direct":
        taps = math.prod(min(spec.shape1[i], spec.shape2[i]) for i in spec.conv_axes)
        exact = xpsignal.integer_exact(_max_abs(a_owner, a), _max_abs(b_owner, b), taps)
        if has_f64 and exact:
            compute = "float64"  # exact there, and BLAS-fast
        elif not caps.integer_conv:
            why = "their partial sums may exceed 2**53" if has_f64 else "it has no float64"
            raise ValueError(
                f"backend {target.name!r} cannot convolve these integers exactly: {why}; "
                f"use backend='numpy' (exact integer arithmetic) or cast to float"
            )
    if choice.method == "fft":
        _warn_non_finite([("in1", a_owner, a), ("in2", b_owner, b)])
        if compute != dtype and integer and not _fft_exact(a_owner, a, b_owner, b, spec, dtype):
            warnings.warn(
                f"method='fft' cannot keep these {dtype} inputs exact: their sums of "
                f"products may reach 2**52, beyond what float64 holds exactly, so the "
                f"result is rounded from an approximation; use method='direct' (or "
                f"'auto', which never picks an inexact FFT) for exact integers",
                RuntimeWarning,
                stacklevel=3,
            )
    an = _to_backend(target, a_owner, a, compute, sel.options)
    bn = _to_backend(target, b_owner, b, compute, sel.options)
    y = _compute(host, target, sel, "convolve", an, bn, spec, choice.method, sel.options)
    if compute != dtype:
        xp = target.namespace()
        # float16 is outside the array API standard: a namespace may name it only as
        # NumPy does (Dask)
        back = getattr(xp, dtype, None) or np.dtype(dtype)
        if integer or dtype == "bool":  # exact in float: round, wrap as integers do
            y = xpsignal.round_to_integers(xp, y, back)
        else:
            y = xp.astype(y, back)
    _check_result(host, target, y, spec.output_shape, dtype, "its result")
    out = _back(target, a_owner, y, a)
    # 0-d inputs: their product, as the array library gives a 0-d element (a NumPy
    # scalar for NumPy arrays, as SciPy and `in1 * in2` give)
    return out[()] if spec.ndim == 0 else out


# -- helpers shared by the operations ------------------------------------------------


class BackendError(RuntimeError):
    """A backend failed during a call, or returned something other than what the core
    computed it must return; the message names the backend and the plugin."""


def _call(host: plugins.PluginHost, target: Backend, method: str, *args: Any) -> Any:
    """``target.method(*args)``; a failure inside the backend is re-raised as a
    :class:`BackendError` that names the backend and its plugin."""
    try:
        return getattr(target, method)(*args)
    except Exception as exc:
        raise BackendError(
            f"backend {target.name!r} from {host.origin(target.name)} failed in {method}(): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _compute(
    host: plugins.PluginHost, target: Backend, sel: selection.Selection, method: str, *args: Any
) -> Any:
    """:func:`_call` of a backend's computation, under the ``threads`` setting if the user
    gave one (:func:`convkit.threads.limited`; without one no thread count changes)."""
    with threads.limited(target, selection.config_of(sel) or selection.NO_CONFIG):
        return _call(host, target, method, *args)


def _check_result(
    host: plugins.PluginHost,
    target: Backend,
    y: Any,
    shape: tuple[int, ...],
    dtype: str,
    what: str,
) -> None:
    got_shape = tuple(getattr(y, "shape", ()))
    try:
        got_dtype = target.dtype_name(y)
    except Exception:
        got_dtype = type(y).__name__
    if got_shape != shape or got_dtype != dtype:
        raise BackendError(
            f"backend {target.name!r} from {host.origin(target.name)} returned {what} with "
            f"shape {got_shape} and dtype {got_dtype}; expected shape {shape} and dtype "
            f"{dtype}"
        )


def _back(target: Backend, owner: Backend, y: Any, like: Any) -> Any:
    """A result of ``target`` in the array type (and device) of ``like``."""
    host = plugins.host()
    if owner is not target:
        y = _call(host, target, "to_numpy", y)
    return _call(host, owner, "restore", y, like)


def _as_array(obj: Any) -> Any:
    """Arrays pass through; lists, tuples and scalars become NumPy arrays. A NumPy
    array in non-native byte order (``>f8`` on a little-endian machine) is converted to
    native order here, once, so every later step sees ``float64``."""
    if not (hasattr(obj, "shape") and hasattr(obj, "dtype")):
        obj = np.asarray(obj)
    if isinstance(obj, np.ndarray | np.generic) and not obj.dtype.isnative:
        obj = obj.astype(obj.dtype.newbyteorder("="))
    return obj


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
            f"{', '.join(FLOAT_DTYPES + COMPLEX_DTYPES)}; cast first, e.g. "
            f"x.astype('float32')"
        )
    return name


def _result_dtype(x_dtype: str, w_dtype: str) -> str:
    _check_dtype("x", x_dtype)
    _check_dtype("weight", w_dtype)
    return str(np.result_type(np.dtype(x_dtype), np.dtype(w_dtype)))


def registered_backend(name: str) -> Backend:
    """The registered backend called ``name`` (available or not), or a ``ValueError``."""
    return _registered(plugins.host(), selection.Selection(name, {}, "argument"))


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
    _check_options(backend, selection.for_backend(sel, backend.name))


def _check_available(backend: Backend, source: str | None = None) -> Backend:
    reason = planner.unavailable_reason(backend)
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
    _check_options(backend, sel)


def _check_options(backend: Backend, sel: selection.Selection) -> None:
    caps = backend.capabilities
    unknown = sorted(set(sel.options) - set(caps.options))
    if unknown:
        raise ValueError(
            f"backend {backend.name!r} does not take option(s) {', '.join(unknown)} (from "
            f"{sel.source}); it takes {', '.join(caps.options) or 'no options'}"
        )
    try:
        backend.check_options(sel.options)
    except ValueError as exc:
        raise ValueError(f"{exc} (from {sel.source})") from exc


def _to_backend(target: Backend, owner: Backend, obj: Any, dtype: str, options: Any) -> Any:
    """``obj`` (owned by ``owner``) in ``target``'s array type and ``dtype``, once."""
    host = plugins.host()
    if owner is not target:
        obj = _call(host, owner, "to_numpy", obj)
    return _call(host, target, "asarray", obj, dtype, options)
