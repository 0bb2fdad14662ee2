"""One call's path, written once: owner → selection and plan → convert once → backend
→ check → convert back.

The public operations (:mod:`convkit.ops`) build a spec and hand :func:`run` the
operands, the estimates of each candidate (:mod:`convkit.estimates`) and how to call
the backend; :func:`run` does the rest, the same way for every operation:

1. the backend that owns each operand's array type (:func:`owner_of`);
2. the backend and method: the selected backend, or under ``auto`` the cheapest
   candidate (:func:`choose`, :mod:`convkit.planner`);
3. each operand converted to that backend's type and the call's dtype, once
   (:func:`to_backend`);
4. the backend's operation, under the ``threads`` setting if one is set
   (:func:`compute`); an exception there becomes a :class:`BackendError` naming it;
5. each result checked against the shape and dtype the core computed
   (:func:`check_result`) and converted back to its operand's type and device
   (:func:`back`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from convkit import calibration, planner, plugins, registry, selection, threads
from convkit.backend import Backend
from convkit.checks import check_available, check_options, registered
from convkit.costs import CostModel
from convkit.planner import MethodChoice, MethodCosts, plan
from convkit.signalspec import METHODS


class Operand(NamedTuple):
    """One array argument of a call: its name (for messages), the array, and the
    backend that owns its type."""

    argument: str
    array: Any
    owner: Backend


class Output(NamedTuple):
    """What the core expects back for one result: its shape and dtype, the operand whose
    array type (and device) it returns in, and how messages name it."""

    shape: tuple[int, ...]
    dtype: str
    like: Operand
    what: str = "its result"


class CallOptions(selection.BackendOptions):
    """The options a backend receives for one call: the selection's options, and
    :attr:`cost_model`, the rates its own choices within the call should use (this
    machine's calibrated ones on the call's device, else the built-in ones), looked up
    only if the backend asks."""

    def __init__(self, options: Mapping[str, Any], backend: Backend, device: str) -> None:
        super().__init__(options, getattr(options, "from_config", ()))
        self._backend = backend
        self._device = device

    @functools.cached_property
    def cost_model(self) -> CostModel:
        """The cost model the call was planned with."""
        options = dict(self)
        if self._device != "cpu" and "device" not in options:
            options["device"] = self._device
        return calibration.cost_model(self._backend, options)


def operands(host: plugins.PluginHost, **arrays: Any) -> dict[str, Operand]:
    """Each named array as an :class:`Operand` (lists and scalars become NumPy arrays,
    non-native byte order becomes native); ``None`` stays out."""
    out = {}
    for argument, obj in arrays.items():
        if obj is not None:
            array = as_array(obj)
            out[argument] = Operand(argument, array, owner_of(host, array, argument))
    return out


def run(
    host: plugins.PluginHost,
    sel: selection.Selection,
    inputs: Sequence[Operand],
    *,
    op: str,
    costs: MethodCosts,
    arguments: Callable[[list[Any], MethodChoice], tuple[Any, ...]],
    outputs: Callable[[Backend, Any, str], tuple[Any, ...]],
    expected: Sequence[Output | None],
    dtype: str | Callable[[Backend, MethodChoice], str],
    method: str = "auto",
    cross: bool = True,
) -> tuple[Any, ...]:
    """Run backend operation ``op`` on ``inputs`` and return its results in the
    operands' array types.

    ``arguments(converted, choice)`` gives the backend method's positional arguments
    (before ``options``) from the converted inputs; ``dtype`` is the dtype the inputs
    are converted to, or a function of the chosen backend and method that says it;
    ``outputs(target, result, computed_in)`` turns the backend's return value, computed
    in that dtype, into one array per :class:`Output` (``None`` where there is none, as
    a gradient of no bias). ``cross`` lets ``auto``
    look beyond the owner of the first input.
    """
    target, bsel, choice = choose(
        host, sel, [(o.owner, o.array) for o in inputs], method, costs, cross
    )
    compute_dtype = dtype(target, choice) if callable(dtype) else dtype
    converted = [to_backend(target, o.owner, o.array, compute_dtype, bsel.options) for o in inputs]
    device = inputs[0].owner.device_of(inputs[0].array)
    options = CallOptions(bsel.options, target, device if target is inputs[0].owner else "cpu")
    result = compute(host, target, bsel, op, *arguments(converted, choice), options)
    results = outputs(target, result, compute_dtype)
    done: list[Any] = []
    for y, want in zip(results, expected, strict=True):
        if y is None or want is None:
            done.append(None)
            continue
        check_result(host, target, y, want.shape, want.dtype, want.what)
        done.append(back(target, want.like.owner, y, want.like.array))
    return tuple(done)


def choose(
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
    lets ``auto`` look beyond the input's owner. When the call will ``run``, a backend
    ``auto`` weighed by its installed modules alone gets its full availability check
    first, and is dropped if it fails it."""
    if method not in METHODS:
        raise ValueError(
            f"method={method!r} is not a method; expected one of "
            f"{', '.join(repr(m) for m in METHODS)}"
        )
    owner = inputs[0][0]
    if sel.name == selection.AUTO:
        host_inputs = cross and all(o.in_host_memory(a) for o, a in inputs)
        backends = planner.candidates(host, sel, check_available(owner), host_inputs)
        for candidate in backends:  # a bad option in a backend's own table is an error
            bsel = selection.for_backend(sel, candidate.name)
            own = {k: v for k, v in bsel.options.items() if k not in sel.options}
            if own:
                check_options(candidate, selection.Selection(candidate.name, own, bsel.source))
    else:
        backends = [check_available(registered(host, sel), sel.source)]
    device = owner.device_of(inputs[0][1])

    def on_input_device(
        backend: Backend, bsel: selection.Selection
    ) -> tuple[dict[str, float], str]:
        """Estimates for the owner on the input's own device (a CUDA tensor is
        estimated with CUDA rates even when no ``device`` was given)."""
        if backend is owner and device != "cpu" and "device" not in bsel.options:
            bsel = selection.Selection(bsel.name, {**bsel.options, "device": device}, bsel.source)
        return method_costs(backend, bsel)

    target, sel_target, choice = plan(backends, sel, method, on_input_device, owner)
    while run and target is not owner and registry.unavailable_reason(target) is not None:
        # auto weighed it from its installed files; its libraries do not load together
        backends = [b for b in backends if b is not target]
        target, sel_target, choice = plan(backends, sel, method, on_input_device, owner)
    return target, sel_target, choice


class BackendError(RuntimeError):
    """A backend failed during a call, or returned something other than what the core
    computed it must return; the message names the backend and the plugin."""


def call(host: plugins.PluginHost, target: Backend, method: str, *args: Any) -> Any:
    """``target.method(*args)``; a failure inside the backend is re-raised as a
    :class:`BackendError` that names the backend and its plugin."""
    try:
        return getattr(target, method)(*args)
    except Exception as exc:
        raise BackendError(
            f"backend {target.name!r} from {host.origin(target.name)} failed in {method}(): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def compute(
    host: plugins.PluginHost, target: Backend, sel: selection.Selection, method: str, *args: Any
) -> Any:
    """:func:`call` of a backend's computation, under the ``threads`` setting if the user
    gave one (:func:`convkit.threads.limited`; without one no thread count changes)."""
    count = threads.get_threads(selection.config_of(sel) or selection.NO_CONFIG)[0]
    if count is None:  # the common case, and a cheap one: nothing to set or restore
        return call(host, target, method, *args)
    with threads.limited(target, count):
        return call(host, target, method, *args)


def check_result(
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


def back(target: Backend, owner: Backend, y: Any, like: Any) -> Any:
    """A result of ``target`` in the array type (and device) of ``like``."""
    host = plugins.host()
    if owner is not target:
        y = call(host, target, "to_numpy", y)
    return call(host, owner, "restore", y, like)


def as_array(obj: Any) -> Any:
    """Arrays pass through; lists, tuples and scalars become NumPy arrays. A NumPy
    array in non-native byte order (``>f8`` on a little-endian machine) is converted to
    native order here, once, so every later step sees ``float64``."""
    if not (hasattr(obj, "shape") and hasattr(obj, "dtype")):
        obj = np.asarray(obj)
    if isinstance(obj, np.ndarray | np.generic) and not obj.dtype.isnative:
        obj = obj.astype(obj.dtype.newbyteorder("="))
    return obj


def owner_of(host: plugins.PluginHost, obj: Any, argument: str) -> Backend:
    """The backend whose array type ``obj`` is (the first registered that owns it),
    remembered per type for this set of plugins."""
    kind = type(obj)
    found = host.owners.get(kind)
    if found is not None:
        return found
    registry = host.registry
    for name in registry.names():
        candidate = registry.get(name)
        if candidate is not None and candidate.owns(obj):
            host.owners[kind] = candidate
            return candidate
    raise TypeError(
        f"{argument} is a {kind.__module__}.{kind.__qualname__}, which no registered "
        f"backend handles; registered "
        f"backends: {', '.join(registry.names()) or '(none)'}"
    )


def to_backend(target: Backend, owner: Backend, obj: Any, dtype: str, options: Any) -> Any:
    """``obj`` (owned by ``owner``) in ``target``'s array type and ``dtype``, once."""
    host = plugins.host()
    if owner is not target:
        obj = call(host, owner, "to_numpy", obj)
    return call(host, target, "asarray", obj, dtype, options)
