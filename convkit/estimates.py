"""What a call is estimated to cost on one candidate backend, per method: the functions
``auto`` (:mod:`convkit.planner`) calls for each candidate, after checking that the
candidate can run the call at all."""

from __future__ import annotations

import math
from typing import Any

from convkit import calibration, dtypes, planner, selection
from convkit.algorithms import direct, vjp
from convkit.algorithms.fft import oa_blocks
from convkit.backend import Backend
from convkit.checks import check_capabilities, check_options
from convkit.costs import CostModel
from convkit.dtypes import INTEGER_DTYPES, signal_compute_dtype
from convkit.planner import MethodChoice
from convkit.signalspec import METHODS, SignalSpec
from convkit.spec import ConvSpec


def rates_note(calibrated: bool) -> str:
    return "calibrated rates" if calibrated else "built-in rates"


def conv_costs(spec: ConvSpec, dtype: str, op: str, method: str = "auto") -> planner.MethodCosts:
    """The estimates of a ``conv`` (``op="conv"``), its gradients (``"conv_vjp"``) or
    its adjoint (``"transpose"``) on one candidate backend, after checking that the
    backend supports the call (and the ``method`` asked for)."""

    def costs(target: Backend, sel: selection.Selection) -> tuple[dict[str, float], str]:
        check_capabilities(target, sel, spec, dtype)
        model, calibrated = calibration.lookup(target, sel.options)
        model = model.for_dtype(dtype)
        note = rates_note(calibrated)
        methods = target.capabilities.conv_methods
        if op == "conv_vjp":
            return {"auto": vjp_seconds(target, model, spec, dtype)}, note
        if op == "transpose":
            return {
                "auto": direct.cheapest(model, vjp.input_grad_spec(spec), dtype, methods)[1]
            }, note
        missing = dict(target.capabilities.missing)
        if method in missing:
            raise ValueError(f"{missing[method]}; use method='direct'")
        if method not in ("auto", *methods):
            raise ValueError(
                f"method={method!r} is not a method of backend {target.name!r}; it "
                f"implements {', '.join(repr(m) for m in methods)}"
            )
        found = direct.method_costs(model, spec, dtype, methods, method)
        if method == "winograd" and "winograd" not in found:
            raise ValueError(
                f"method='winograd' needs a floating dtype, 1 or 2 spatial dimensions, a "
                f"kernel of 3 taps in each, stride 1 and dilation 1; got dtype {dtype}, "
                f"kernel_size={spec.kernel_size}, stride={spec.stride}, "
                f"dilation={spec.dilation}"
            )
        return found, note

    return costs


def vjp_seconds(target: Backend, model: CostModel, spec: ConvSpec, dtype: str) -> float:
    """Estimated seconds of ``conv_vjp`` on ``target``: the default, which runs two
    convolutions through the backend's ``conv``, by the estimates of those two
    (:func:`convkit.algorithms.vjp.generic_seconds`); a backend with gradients of its
    own (it overrides :meth:`Backend.conv_vjp <convkit.backend.Backend.conv_vjp>`) by
    its model's :meth:`~convkit.costs.CostModel.conv_vjp`, or the cheaper of the two
    when it also takes the default where that is cheaper
    (:attr:`Backend.vjp_falls_back <convkit.backend.Backend.vjp_falls_back>`)."""
    generic = vjp.generic_seconds(model, spec, dtype, target.capabilities.conv_methods)
    if type(target).conv_vjp is Backend.conv_vjp:
        return generic
    native = model.conv_vjp(spec)
    return min(native, generic) if target.vjp_falls_back else native


def signal_costs(
    spec: SignalSpec, dtype: str, method: str, mags: dtypes.Magnitudes
) -> planner.MethodCosts:
    """The estimates of a ``convolve``/``correlate`` on one candidate backend, after
    checking that it supports the call (``mags``: :func:`convkit.dtypes.magnitudes`)."""
    exact = dtypes.fft_exact(mags, spec)

    def costs(target: Backend, sel: selection.Selection) -> tuple[dict[str, float], str]:
        caps = target.capabilities
        has_f64 = "float64" in caps.dtypes
        compute = signal_compute_dtype(dtype, has_f64)
        if compute not in caps.dtypes and compute not in INTEGER_DTYPES:
            via = f" (computed in {compute})" if compute != dtype else ""
            why = dict(caps.missing).get(compute)
            via += f" ({why})" if why else ""
            raise TypeError(
                f"backend {target.name!r} does not support dtype {dtype}{via}; it supports "
                f"{', '.join(caps.dtypes)}"
            )
        check_options(target, sel)
        if dtype in INTEGER_DTYPES and method == "fft" and not has_f64:
            raise ValueError(
                f"backend {target.name!r} has no float64, so its FFT cannot keep integers "
                f"exact; use method='direct' or cast to float"
            )
        choice = signal_method(target, spec, method, compute, has_f64 and exact, sel.options)
        if choice.reason not in ("lowest estimated cost", "requested"):
            return choice.costs, choice.reason
        return choice.costs, rates_note(calibration.is_calibrated(target, sel.options))

    return costs


def signal_method(
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
        "fft": model.convolve_fft(spec, oa_blocks(spec)),
    }
    if method == "direct" and not target.capabilities.supports_ndim(max(1, len(spec.conv_axes))):
        raise ValueError(
            f"method='direct' on backend {target.name!r} needs a {len(spec.conv_axes)}-d conv; "
            f"it supports {target.capabilities.describe_ndim()} spatial dimensions (use "
            f"method='fft' or 'auto')"
        )
    missing = dict(target.capabilities.missing)
    if method in missing:
        raise ValueError(f"{missing[method]}; use method='direct'")
    if method != "auto":
        return MethodChoice(method, target.name, costs, "requested")
    if "fft" in missing:
        costs["fft"] = math.inf
        return MethodChoice("direct", target.name, costs, missing["fft"])
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
