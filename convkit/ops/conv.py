"""The convolutional layer's operation and its derivatives: :func:`conv`,
:func:`conv_vjp` (its gradients) and :func:`conv_transpose` (its adjoint). Each checks
its arguments into a :class:`~convkit.spec.ConvSpec` and hands the call to
:func:`convkit.dispatch.run`."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from convkit import dispatch, plans, selection
from convkit.dispatch import Output
from convkit.dtypes import FLOAT_DTYPES, check_dtype, result_dtype
from convkit.estimates import conv_costs
from convkit.spec import CONV_METHODS, ConvSpec, transpose_spec


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
    precision: str = "highest",
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
    estimates). ``precision`` is ``"highest"`` (every product in the dtype itself: no
    TF32 for float32 on a GPU) or ``"fast"`` (a backend may lower float32 arithmetic
    where its hardware gains, as TF32 on NVIDIA tensor cores; relative errors up to
    about 1e-3); backends without such a choice compute ``"fast"`` at the highest. The
    call runs on the device of ``x`` (or the selected one; other arguments join it
    there). The result has the dtype
    ``result_type(x, weight)`` and comes back in the type (and on the device) of ``x``.

    >>> import numpy as np, convkit as ck
    >>> x = np.arange(5.0).reshape(1, 5)          # unbatched: 1 channel, 5 samples
    >>> w = np.array([[[1.0, 0.0, -1.0]]])        # 1 -> 1 channel, 3 taps
    >>> ck.conv(x, w, padding="same", padding_mode="replicate")
    array([[-1., -2., -2., -2., -1.]])
    """
    host, signature, plan = plans.lookup(
        "conv",
        (x, weight, bias),
        (stride, padding, dilation, groups, padding_mode, method, backend, precision),
    )
    if plan is not None:
        return plan(x, weight, bias)[0]
    sel = selection.resolve(backend)
    ops = dispatch.operands(host, x=x, weight=weight, bias=bias)
    x_op, w_op, b_op = ops["x"], ops["weight"], ops.get("bias")
    x_shape, w_shape = tuple(x_op.array.shape), tuple(w_op.array.shape)
    batched = len(x_shape) != len(w_shape) - 1  # a wrong ndim is reported by build()
    spec = ConvSpec.build(
        x_shape,
        w_shape,
        None if b_op is None else tuple(b_op.array.shape),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    dtype = result_dtype(x_op.owner.dtype_name(x_op.array), w_op.owner.dtype_name(w_op.array))
    if b_op is not None:
        bias_dtype = check_dtype("bias", b_op.owner.dtype_name(b_op.array))
        if not np.can_cast(bias_dtype, dtype, casting="same_kind"):
            raise TypeError(
                f"bias has dtype {bias_dtype}, which cannot be cast to the result dtype "
                f"{dtype} of x and weight"
            )

    planned = functools.cache(lambda method: dataclasses.replace(spec, method=method))

    def arguments(arrays: list[Any], choice: Any) -> tuple[Any, ...]:
        xb, wb, *bb = arrays
        return (xb if batched else xb[None, ...], wb, bb[0] if bb else None, planned(choice.method))

    (y,) = dispatch.run(
        host,
        sel,
        list(ops.values()),
        op="conv",
        costs=conv_costs(spec, dtype, "conv", method),
        method=method,
        methods=("auto", *CONV_METHODS),
        arguments=arguments,
        outputs=lambda target, y, computed_in: (y if batched else y[0, ...],),
        expected=[Output(_unbatched(spec.output_shape, batched), dtype, "x")],
        dtype=dtype,
        signature=signature,
        precision=precision,
    )
    return y


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
    precision: str = "highest",
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
    host, signature, plan = plans.lookup(
        "conv_vjp",
        (x, weight, grad_out),
        (stride, padding, dilation, groups, padding_mode, bias, backend, precision),
    )
    if plan is not None:
        return plan(x, weight, grad_out)
    sel = selection.resolve(backend)
    ops = dispatch.operands(host, x=x, weight=weight, grad_out=grad_out)
    x_op, w_op, g_op = ops["x"], ops["weight"], ops["grad_out"]
    batched = len(x_op.array.shape) != len(w_op.array.shape) - 1
    spec = ConvSpec.build(
        tuple(x_op.array.shape),
        tuple(w_op.array.shape),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    expected = _unbatched(spec.output_shape, batched)
    if tuple(g_op.array.shape) != expected:
        raise ValueError(
            f"grad_out must have the forward output's shape {expected}; got "
            f"grad_out.shape={tuple(g_op.array.shape)}"
        )
    dtype = result_dtype(x_op.owner.dtype_name(x_op.array), w_op.owner.dtype_name(w_op.array))
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"conv_vjp computes real gradients; x and weight have dtype {dtype}")
    check_dtype("grad_out", g_op.owner.dtype_name(g_op.array))

    def arguments(arrays: list[Any], choice: Any) -> tuple[Any, ...]:
        xb, wb, gb = arrays
        return (xb if batched else xb[None, ...], wb, gb if batched else gb[None, ...], spec, bias)

    def outputs(target: Any, grads: tuple[Any, Any, Any], computed_in: str) -> tuple[Any, ...]:
        grad_x, grad_w, grad_b = grads
        return (grad_x if batched else grad_x[0, ...], grad_w, grad_b)

    grad_x, grad_w, grad_b = dispatch.run(
        host,
        sel,
        [x_op, w_op, g_op],
        op="conv_vjp",
        costs=conv_costs(spec, dtype, "conv_vjp"),
        arguments=arguments,
        outputs=outputs,
        expected=[
            Output(tuple(x_op.array.shape), dtype, "x", "grad_x"),
            Output(spec.weight_shape, dtype, "weight", "grad_weight"),
            Output((spec.out_channels,), dtype, "weight", "grad_bias") if bias else None,
        ],
        dtype=dtype,
        signature=signature,
        precision=precision,
    )
    return grad_x, grad_w, grad_b


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
    precision: str = "highest",
) -> Any:
    """Transposed convolution, the adjoint of :func:`conv` with respect to its input, as
    ``torch.nn.functional.conv_transpose1d/2d/3d`` defines it, for any number of
    spatial dimensions.

    ``x`` is ``(N, C_in, *S)`` or unbatched; ``weight`` is ``(C_in, C_out // groups,
    *K)``. The output has ``(S - 1) * stride - pad_low - pad_high + dilation * (K - 1) +
    output_padding + 1`` positions per dimension; ``output_padding`` (each below
    ``max(stride, dilation)``) picks among the sizes a strided ``conv`` maps to ``S``.
    ``precision`` as for :func:`conv`.

    >>> import numpy as np, convkit as ck
    >>> ck.conv_transpose(np.ones((1, 1, 3)), np.array([[[1.0, 2.0]]]), stride=2)
    array([[[1., 2., 1., 2., 1., 2.]]])
    """
    host, signature, plan = plans.lookup(
        "conv_transpose",
        (x, weight, bias),
        (stride, padding, output_padding, dilation, groups, backend, precision),
    )
    if plan is not None:
        return plan(x, weight, bias)[0]
    sel = selection.resolve(backend)
    ops = dispatch.operands(host, x=x, weight=weight, bias=bias)
    x_op, w_op = ops["x"], ops["weight"]
    x_shape, w_shape = tuple(x_op.array.shape), tuple(w_op.array.shape)
    spec = transpose_spec(
        x_shape,
        w_shape,
        None if "bias" not in ops else tuple(ops["bias"].array.shape),
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
    )
    batched = len(x_shape) == len(w_shape)
    dtype = result_dtype(x_op.owner.dtype_name(x_op.array), w_op.owner.dtype_name(w_op.array))

    def arguments(arrays: list[Any], choice: Any) -> tuple[Any, ...]:
        xb, wb, *bb = arrays
        return (xb if batched else xb[None, ...], wb, bb[0] if bb else None, spec)

    shape = (spec.batch, spec.in_channels, *spec.input_size)
    (y,) = dispatch.run(
        host,
        sel,
        list(ops.values()),
        op="conv_transpose",
        costs=conv_costs(spec, dtype, "transpose"),
        arguments=arguments,
        outputs=lambda target, y, computed_in: (y if batched else y[0, ...],),
        expected=[Output(_unbatched(shape, batched), dtype, "x")],
        dtype=dtype,
        signature=signature,
        precision=precision,
    )
    return y


def _unbatched(shape: tuple[int, ...], batched: bool) -> tuple[int, ...]:
    return shape if batched else shape[1:]
